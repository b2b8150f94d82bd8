"""CycleGAN data preprocessing, training step, schedule, pools, and whole runs on tiny real files and via the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import run_cli
from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import describe_checkpoint, require_model_checkpoint
from uda_trt.train.cyclegan import (
    LOSS_NAMES,
    CycleGANConfig,
    ImagePool,
    build_models,
    lr_factor,
    seed_everything,
    train_cyclegan,
    train_step,
)
from uda_trt.train.unpaired_data import scale_width_and_crop, to_tensor, unpaired_dataset


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the test machine's two cores are shared, and tiny models gain nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


NET_FILES = [f"latest_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")]


def tiny_config(source: Path, target: Path, output: Path, **overrides) -> CycleGANConfig:
    values = dict(
        ngf=4,
        n_blocks=2,
        ndf=4,
        load_width=40,
        crop_size=(32, 24),
        iterations=4,
        decay_iterations=2,
        num_workers=0,
        threads=1,
        device="cpu",
        sample_every=2,
        save_every=2,
        log_every=1,
    )
    values.update(overrides)
    return CycleGANConfig(source=source, target=target, output=output, **values)


def test_scale_width_keeps_aspect_then_crops_and_flips() -> None:
    columns = np.tile(np.arange(40, dtype=np.uint8)[None, :, None], (30, 1, 3))  # pixel value = x coordinate
    rng = random.Random(0)
    crops = [scale_width_and_crop(columns, 40, (16, 8), rng) for _ in range(40)]
    for crop in crops:
        assert crop.shape == (8, 16, 3) and crop.flags.c_contiguous
        row = crop[0, :, 0].astype(int)
        assert np.all(np.abs(np.diff(row)) == 1) and np.all(crop == crop[:1])  # a window of columns, maybe flipped
    assert {int(np.sign(c[0, 1, 0].astype(int) - c[0, 0, 0])) for c in crops} == {-1, 1}  # both flip states occur
    wide = np.zeros((27, 48, 3), np.uint8)
    assert scale_width_and_crop(wide, 64, (32, 24), rng).shape == (24, 32, 3)  # scaled to 64x36 first
    flat = np.zeros((10, 100, 3), np.uint8)
    assert scale_width_and_crop(flat, 50, (32, 24), rng).shape == (24, 32, 3)  # height raised to the crop


def test_to_tensor_maps_to_minus_one_one() -> None:
    t = to_tensor(np.array([[[0, 255, 128]]], np.uint8))
    assert t.shape == (3, 1, 1)
    assert t.flatten().tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)


def test_dataset_reads_both_layouts_unaligned(tiny_gta5: Path, tiny_cityscapes: Path) -> None:
    dataset = unpaired_dataset(tiny_gta5, tiny_cityscapes, 40, (32, 24))
    assert (len(dataset.samples_a), len(dataset.samples_b), len(dataset)) == (3, 4, 4)
    item = dataset[3]
    assert item["A"].shape == item["B"].shape == (3, 24, 32)
    assert item["A_path"].endswith("00001.png")  # A by index modulo its size
    assert {Path(dataset[(epoch, 0)]["B_path"]).parent.name for epoch in range(20)} == {"aachen", "bochum"}  # B random
    again = dataset[(5, 2)]
    assert torch.equal(again["A"], dataset[(5, 2)]["A"]) and again["B_path"] == dataset[(5, 2)]["B_path"]  # keyed RNG
    assert float(item["A"].min()) >= -1 and float(item["A"].max()) <= 1


def test_learning_rate_schedule_is_the_reference_linear_policy() -> None:
    factors = [lr_factor(i, 10, 4) for i in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_image_pool_fills_then_swaps_with_probability_half() -> None:
    random.seed(0)
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)
    later = torch.full((200, 1, 1, 1), 9.0)
    out = pool.query(later).flatten()
    from_history = int((out != 9).sum())
    assert 0 < from_history <= 3 and len(pool.images) == 3
    assert ImagePool(0).query(later) is later


def test_train_step_gives_every_generator_parameter_a_gradient() -> None:
    config = tiny_config(Path("."), Path("."), Path("."))
    seed_everything(0)
    models = build_models(config)
    g_params = list(models.G_A.parameters()) + list(models.G_B.parameters())
    d_params = list(models.D_A.parameters()) + list(models.D_B.parameters())
    opt_G = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in models.items()}
    pools = {"fake_A": ImagePool(50), "fake_B": ImagePool(50)}
    real_A, real_B = torch.rand(2, 3, 24, 32) * 2 - 1, torch.rand(2, 3, 24, 32) * 2 - 1
    losses, visuals = train_step(models, opt_G, opt_D, pools, real_A, real_B, config)
    assert set(losses) == set(LOSS_NAMES) and all(math.isfinite(v) and v > 0 for v in losses.values())
    for p in g_params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert all(p.requires_grad for p in d_params)  # discriminators unfrozen again after the G step
    for name, net in models.items():  # all four networks were updated
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)), name
    assert visuals["fake_B"].shape == real_A.shape and len(pools["fake_B"].images) == 2


def test_training_run_writes_reference_checkpoints_state_samples_and_log(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path
) -> None:
    out = train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "run"), keep_train_state=True)
    names = {p.name for p in out.iterdir()}
    assert set(NET_FILES) <= names
    assert {f"{i}_net_{n}.pth" for i in (2, 4) for n in ("G_A", "G_B", "D_A", "D_B")} <= names
    assert {"latest_train_state.pt", "finished.json", "config.json", "train.log", "samples"} <= names
    assert not [n for n in names if n.endswith(".partial")]

    info = require_model_checkpoint(out / "latest_net_G_A.pth")
    assert (info.kind, info.args["ngf"], info.args["n_blocks"]) == ("translator", 4, 2)
    assert describe_checkpoint(out / "latest_net_D_B.pth").kind == "discriminator"
    for refused in ("latest_net_D_A.pth", "latest_train_state.pt"):
        with pytest.raises(UserError):
            require_model_checkpoint(out / refused)

    state = torch.load(out / "latest_train_state.pt", weights_only=True)
    assert state["iteration"] == 4 and set(state["models"]) == {"G_A", "G_B", "D_A", "D_B"}
    assert {"optimizers", "schedulers", "pools", "rng", "config"} <= set(state)
    assert len(state["pools"]["fake_A"]) == 4 and state["config"]["crop_size"] == [32, 24]

    config = json.loads((out / "config.json").read_text())
    assert config["config"]["iterations"] == 4 and config["generator"]["architecture"] == "resnet_generator"
    lines = re.findall(r"cyclegan: iteration (\d+): (.*), [\d.]+ s/it$", (out / "train.log").read_text(), re.M)
    assert [int(n) for n, _ in lines] == [1, 2, 3, 4]
    words = lines[-1][1].split()  # lr X D_A X G_A X ...
    values = dict(zip(words[::2], map(float, words[1::2]), strict=True))
    assert set(values) == {"lr", *LOSS_NAMES} and all(math.isfinite(v) for v in values.values())
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == ["iter_000002.png", "iter_000004.png"]
    assert Image.open(out / "samples" / samples[0]).size == (3 * 32, 2 * 24)

    with pytest.raises(UserError, match="--resume"):
        train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, out))


def test_same_seed_same_weights_and_resume_continues(tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path) -> None:
    configs = [tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / f"run{i}", iterations=3) for i in (0, 1)]
    runs = [train_cyclegan(config, keep_train_state=True) for config in configs]
    first, second = (torch.load(r / "latest_net_G_A.pth", weights_only=True) for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)

    # a finished run that kept its training state can be trained further
    resumed = train_cyclegan(
        tiny_config(tiny_gta5, tiny_cityscapes, runs[0], iterations=5), resume=True, keep_train_state=True
    )
    assert torch.load(resumed / "latest_train_state.pt", weights_only=True)["iteration"] == 5
    assert not torch.equal(
        torch.load(resumed / "latest_net_G_A.pth", weights_only=True)["model.1.weight"], first["model.1.weight"]
    )
    with pytest.raises(UserError, match="--ngf 4, this one 8"):
        train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, runs[0], ngf=8, iterations=6), resume=True)
    # another data order or pooled-image size would not continue the same run
    for changed, message in (
        ({"seed": 7}, "--seed 0, this one 7"),
        ({"crop_size": (24, 24)}, "--crop-size 32x24, this one 24x24"),  # as typed, not [32, 24]
    ):
        with pytest.raises(UserError, match=message):
            train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, runs[0], iterations=6, **changed), resume=True)
    # --resume into a folder without a state (a job killed before its first save) starts the run
    started = train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "empty", iterations=3), resume=True)
    assert (started / "latest_net_G_A.pth").read_bytes() == (runs[1] / "latest_net_G_A.pth").read_bytes()


def test_bad_settings_are_user_errors(tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path) -> None:
    base = tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "run")
    for overrides, flag in (
        ({"crop_size": (30, 24)}, "--crop-size"),
        ({"crop_size": (32, 16)}, "--crop-size"),
        ({"load_width": 24}, "--load-width"),
        ({"decay_iterations": 9}, "--decay-iterations"),
        ({"source": tmp_path / "nowhere"}, "nowhere"),
    ):
        with pytest.raises(UserError, match=flag):
            train_cyclegan(dataclasses.replace(base, **overrides))


@pytest.mark.slow
def test_cli_trains_and_reports_bad_input_in_one_line(tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = [
        "--ngf",
        "4",
        "--n-blocks",
        "2",
        "--ndf",
        "4",
        "--load-width",
        "40",
        "--crop-size",
        "32x24",
        "--iterations",
        "2",
        "--num-workers",
        "0",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    done = run_cli(
        "train-cyclegan", "--source", tiny_gta5, "--target", tiny_cityscapes, "--output", out, *args, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} >= {*NET_FILES, "finished.json", "config.json", "train.log"}
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["crop_size"] == [32, 24] and config["num_workers"] == 0  # --num-workers: the hidden old --workers

    missing = tmp_path / "no-such-gta5"
    bad = run_cli(
        "train-cyclegan",
        "--source",
        missing,
        "--target",
        tiny_cityscapes,
        "--output",
        tmp_path / "x",
        *args,
        timeout=120,
    )
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if not line.startswith("INFO")]
    assert len(errors) == 1 and str(missing) in errors[0] and "Traceback" not in bad.stderr


def test_cli_help_explains_defaults() -> None:
    done = run_cli("train-cyclegan", "--help", timeout=60)
    assert done.returncode == 0
    for text in ("--source", "--crop-size", "256x256", "286", "--resume", "latest_net_G_A.pth"):
        assert text in done.stdout
