"""Segmenter training on tiny GTA5- and Cityscapes-layout data: data pipeline, loop outputs, CLI behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import run_cli, write_cityscapes, write_gta5
from uda_trt.runtime.datasets import Sample, gta5_samples
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.labels import IGNORE, LABEL_ID_TO_TRAIN_ID
from uda_trt.train.checkpoints import load_segmenter_checkpoint
from uda_trt.train.segmentation_data import (
    HeldOutSegmentationDataset,
    TrainSegmentationDataset,
    collate_skipping_broken,
    split_holdout,
)
from uda_trt.train.segmenter import SegmenterConfig, recalibrate_batchnorm, train_segmenter
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter


def config(tmp_path: Path, data: Path, **overrides) -> SegmenterConfig:
    """A tiny run: whole 64x32 images, AdamW (the from-scratch demo choice), in-process data loading."""
    settings = dict(
        data_root=data,
        output_dir=tmp_path / "run",
        scale=1.0,
        crop_size=None,
        batch_size=4,
        iterations=6,
        optimizer="adamw",
        lr=1e-3,
        val_every=3,
        precise_bn_batches=2,  # of the 8 default: a tiny set has few batches to re-estimate BatchNorm on
        num_workers=0,
        device="cpu",
    )
    return SegmenterConfig(**{**settings, **overrides})


# --- data pipeline -------------------------------------------------------------------------------------------------


def test_holdout_split_is_disjoint_complete_deterministic_and_order_free(tmp_path):
    samples = [Sample(key=f"{i:05d}", image=tmp_path / f"{i}.png", label=None) for i in range(50)]
    train, held = split_holdout(samples, 0.1, seed=3)
    assert len(held) == 5 and len(train) == 45
    assert not {s.key for s in train} & {s.key for s in held}
    assert {s.key for s in train} | {s.key for s in held} == {s.key for s in samples}
    assert split_holdout(list(reversed(samples)), 0.1, seed=3) == (train, held)  # listing order does not matter
    assert split_holdout(samples, 0.1, seed=4)[1] != held  # the seed chooses
    assert split_holdout(samples[:3], 0.1, seed=0)[1] != []  # a positive fraction holds out at least one
    assert split_holdout(samples, 0.0, seed=0) == (samples, [])


def test_training_pairs_are_normalised_train_ids_cropped_padded_and_flipped(tmp_path):
    samples = gta5_samples(write_gta5(tmp_path / "gta5", 2))
    rgb = np.array(Image.open(samples[0].image))
    label_ids = np.asarray(Image.open(samples[0].label))

    whole = TrainSegmentationDataset(samples, scale=1.0, crop_size=None, flip=False)[0]
    mean, std = (torch.tensor(NORMALIZATION[k]).view(3, 1, 1) for k in ("mean", "std"))
    expected = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std
    assert torch.allclose(whole[0], expected, atol=1e-6)
    assert torch.equal(whole[1], torch.from_numpy(LABEL_ID_TO_TRAIN_ID[label_ids]).long())
    assert set(whole[1].unique().tolist()) <= {0, 10, 13, IGNORE}  # road, sky, car, ignore

    torch.manual_seed(0)
    image, label = TrainSegmentationDataset(samples, scale=0.5, crop_size=(40, 24), flip=False)[0]
    assert image.shape == (3, 24, 40) and label.shape == (24, 40)
    assert (label[16:] == IGNORE).all() and (label[:, 32:] == IGNORE).all()  # 32x16 scaled image, padded

    dataset = TrainSegmentationDataset(samples, 1.0, None)
    flips = {bool(torch.equal(dataset[(epoch, 0)][1], whole[1].flip(1))) for epoch in range(20)}
    assert flips == {True, False}  # each epoch's item has its own flip ...
    assert all(torch.equal(dataset[(7, 1)][k], dataset[(7, 1)][k]) for k in (0, 1))  # ... the same every time


def test_broken_samples_are_skipped_not_fatal(tmp_path):
    data = write_gta5(tmp_path / "gta5", 3)
    (data / "images" / "00002.png").write_bytes(b"\x89PNG truncated")
    Image.fromarray(np.zeros((30, 64), np.uint8)).save(data / "labels" / "00003.png")  # label 2 px short
    dataset = TrainSegmentationDataset(gta5_samples(data), 1.0, None)
    items = [dataset[i] for i in range(3)]
    assert items[1] is None and items[2] is None
    images, labels, skipped = collate_skipping_broken(items)
    assert images.shape == (1, 3, 32, 64) and skipped == 2
    assert HeldOutSegmentationDataset(gta5_samples(data), 0.5)[2] is None


# --- training loop -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_every_trainable_parameter_gets_a_finite_gradient(tmp_path, architecture):
    samples = gta5_samples(write_gta5(tmp_path / "gta5", 2))
    images, labels, _ = collate_skipping_broken([TrainSegmentationDataset(samples, 1.0, None)[i] for i in range(2)])
    torch.manual_seed(0)
    model = build_segmenter(architecture).train()
    F.cross_entropy(model(images)["out"], labels, ignore_index=IGNORE).backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_precise_bn_sets_running_statistics_to_the_averaged_batch_statistics(tmp_path):
    samples = gta5_samples(write_gta5(tmp_path / "gta5", 4))
    batches = [
        collate_skipping_broken([TrainSegmentationDataset(samples, 1.0, None)[i] for i in pair])
        for pair in ((0, 1), (2, 3))
    ]
    torch.manual_seed(0)
    model = build_segmenter("lraspp_mobilenet_v3_large").train()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen: dict[torch.nn.Module, list] = {norm: [] for norm in norms}
    hooks = [norm.register_forward_pre_hook(lambda m, args: seen[m].append(args[0].detach())) for norm in norms]
    recalibrate_batchnorm(model, iter(batches), 2, torch.device("cpu"))
    for hook in hooks:
        hook.remove()

    for norm in norms:
        means = torch.stack([x.mean((0, 2, 3)) for x in seen[norm]])
        variances = torch.stack([x.transpose(0, 1).flatten(1).var(1) for x in seen[norm]])  # unbiased, as BN
        assert torch.allclose(norm.running_mean, means.mean(0), atol=1e-5)
        assert torch.allclose(norm.running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
    assert {norm.momentum for norm in norms} == {0.01, 0.1}  # torchvision's own momenta restored
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())  # weights untouched
    assert model.training


@pytest.mark.slow
def test_training_learns_a_trivial_set_and_writes_every_output(tmp_path):
    data = write_gta5(tmp_path / "gta5", 12)
    best = train_segmenter(config(tmp_path, data, iterations=30, val_every=10, batch_size=4, val_fraction=0.25))
    run = tmp_path / "run"
    assert best == run / "best.pt"
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "config.json", "history.json", "train.log"}
    assert not [p for p in run.rglob("*") if p.name.endswith(".partial")]

    history = json.loads((run / "history.json").read_text())
    validations = history["validations"]
    assert [v["iteration"] for v in validations] == [10, 20, 30]
    losses = [v["train_loss"] for v in validations]
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
    assert all(v["heldout_images_scored"] == 3 for v in validations)
    assert history["train_samples"] == 9 and history["heldout_samples"] == 3
    assert history["train_images_seen"] == 30 * 4 and history["train_images_per_second"] > 0
    best_miou = max(v["heldout_miou"] for v in validations)
    # Eval mode (what gets exported) predicts well only because precise BN refreshed the statistics: without it
    # this run stays at 0.17 mIoU / 0.51 pixel accuracy while the training loss falls.
    assert best_miou > 0.4 and validations[-1]["heldout_pixel_accuracy"] > 0.8, validations
    assert history["best_heldout_miou"] == best_miou
    assert history["best_iteration"] == next(v["iteration"] for v in validations if v["heldout_miou"] == best_miou)

    resolved = json.loads((run / "config.json").read_text())
    assert resolved["layout_detected"] == "gta5" and resolved["optimizer"] == "adamw" and resolved["crop_size"] is None
    checkpoint = load_segmenter_checkpoint(best)
    assert checkpoint["config"]["architecture"] == "lraspp_mobilenet_v3_large" and checkpoint["config"]["scale"] == 1.0
    assert checkpoint["config"]["iteration"] == history["best_iteration"]
    assert checkpoint["config"]["heldout_miou"] == pytest.approx(best_miou)
    assert torch.load(run / "last.pt", weights_only=True)["config"]["iteration"] == 30
    sample = np.asarray(Image.open(run / "samples" / "iter_000030.png"))
    assert sample.shape == (32, 3 * 64, 3)  # image | ground truth | prediction
    assert "held-out mIoU" in (run / "train.log").read_text()


@pytest.mark.slow
def test_a_seeded_run_repeats_exactly(tmp_path):
    data = write_gta5(tmp_path / "gta5", 8)
    runs = []
    for name in ("a", "b"):
        train_segmenter(config(tmp_path, data, output_dir=tmp_path / name, crop_size=(32, 32), seed=5))
        runs.append(torch.load(tmp_path / name / "last.pt", weights_only=True)["state_dict"])
        history = json.loads((tmp_path / name / "history.json").read_text())["validations"]
        runs.append([(v["train_loss"], v["heldout_miou"]) for v in history])
    assert runs[1] == runs[3]
    assert all(torch.equal(runs[0][key], runs[2][key]) for key in runs[0])


def test_trains_on_cityscapes_layout_with_worker_processes_and_without_a_held_out_part(tmp_path):
    data = tmp_path / "cityscapes"
    write_cityscapes(data, cities={"aachen": 2, "bochum": 2}, seed=1, split="train")
    settings = dict(iterations=2, val_every=2, val_fraction=0.0, batch_size=2, num_workers=1)
    best = train_segmenter(config(tmp_path, data, **settings))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["validations"][0]["heldout_miou"] is None and history["best_iteration"] is None
    assert best.read_bytes() == (tmp_path / "run" / "last.pt").read_bytes()  # nothing to choose by: best = last
    assert json.loads((tmp_path / "run" / "config.json").read_text())["layout_detected"] == "cityscapes"


def test_impossible_settings_are_refused_naming_the_flag(tmp_path):
    for field, value, flag in (
        ("scale", 0.0, "--scale"),
        ("val_fraction", 1.0, "--val-fraction"),
        ("architecture", "segformer", "--arch"),
        ("crop_size", (0, 8), "--crop-size"),
    ):
        with pytest.raises(UserError, match=f"^{flag} .*: must be"):
            config(tmp_path, tmp_path, **{field: value}).check()


# --- command line --------------------------------------------------------------------------------------------------


def run_train_segmenter(*args: str) -> subprocess.CompletedProcess:
    return run_cli("train-segmenter", *args, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_cli_module_loads_without_torch_so_help_and_user_errors_are_fast():
    code = "import sys, uda_trt.train.commands.train_segmenter; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_help_explains_the_options():
    result = run_train_segmenter("--help")
    assert result.returncode == 0
    for flag in ("--data", "--layout", "--arch", "--scale", "--crop-size", "--optimizer", "--val-fraction", "--output"):
        assert flag in result.stdout


def test_cli_missing_folder_and_wrong_layout_are_one_line_errors(tmp_path):
    missing = tmp_path / "nowhere"
    assert_one_line_error(run_train_segmenter("--data", str(missing), "--output", str(tmp_path / "out")), missing)
    gta5 = write_gta5(tmp_path / "gta5", 2)
    assert_one_line_error(
        run_train_segmenter("--data", str(gta5), "--layout", "cityscapes", "--output", str(tmp_path / "out")), gta5
    )
    (tmp_path / "pictures").mkdir()
    assert_one_line_error(
        run_train_segmenter("--data", str(tmp_path / "pictures"), "--output", str(tmp_path / "out")),
        tmp_path / "pictures",
    )


@pytest.mark.slow
def test_cli_trains_and_prints_the_best_checkpoint(tmp_path):
    data = write_gta5(tmp_path / "gta5", 6)
    out = tmp_path / "out"
    result = run_train_segmenter(
        "--data", str(data), "--output", str(out), "--scale", "1", "--crop-size", "full", "--batch-size", "2",
        "--iterations", "2", "--optimizer", "adamw", "--lr", "1e-3", "--workers", "0", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "best.pt")
    assert load_segmenter_checkpoint(out / "best.pt")["config"]["training"]["iterations"] == 2
    assert json.loads((out / "history.json").read_text())["heldout_samples"] == 1
