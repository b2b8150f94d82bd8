"""Joint CycleGAN + segmenter training (train-cyclegan --joint-segmenter), on tiny real files and tiny networks: the
labelled mix is a pure function of (seed, fraction, dataset); items carry their own crop of the label; each loss term
reaches the networks it should and no other; with no labelled target image the target terms are exactly absent; a
resumed run ends with the bytes of an uninterrupted one; the saved F_T gets precise BN on a copy, leaving the run alone;
the command's refusals are one line; F_T's checkpoint goes through export-trt and evaluate-seg unchanged."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import uda_trt.train.cyclegan as cyclegan
from helpers import pth_bytes, run_cli, write_cityscapes
from uda_trt.runtime.datasets import Sample
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.labels import IGNORE, PALETTE, label_ids_to_train_ids
from uda_trt.train.gan_training import GanRun, seed_everything
from uda_trt.train.joint_data import joint_dataset, labelled_mix
from uda_trt.train.joint_training import (
    JOINT_LOSS_NAMES,
    SEGMENTER_FILE,
    JointConfig,
    joint_step,
    joint_trainer,
    precise_bn_batches,
    save_segmenter,
    segmenter_input,
    statistics_frozen,
    train_joint,
)
from uda_trt.train.segmenter import recalibrate_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(source: Path, target: Path, output: Path, **overrides) -> JointConfig:
    """3 A and 4 B images in batches of 2; an LR-ASPP F_T (BatchNorm, works on a 32x24 crop)."""
    values = dict(
        ngf=4, n_blocks=1, ndf=4, load_width=40, crop_size=(32, 24), batch_size=2, iterations=4, decay_iterations=2,
        pool_size=3, num_workers=0, threads=1, device="cpu", sample_every=3, save_every=2, log_every=1,
        joint_segmenter="lraspp_mobilenet_v3_large", target_label_fraction=0.5, segmenter_optimizer="adamw",
        segmenter_lr=1e-3,
    )  # fmt: skip
    values.update(overrides)
    return JointConfig(source=source, target=target, output=output, **values)


@pytest.fixture
def labelled_cityscapes(tmp_path: Path) -> Path:
    """Like tiny_cityscapes, with its labels (gtFine) beside: four 64x32 train images in two cities."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"aachen": 2, "bochum": 2}, size=(64, 32), seed=2, split="train")
    return root


def samples(prefix: str, count: int) -> list[Sample]:
    return [Sample(f"{prefix}{i:03d}", Path(f"/{prefix}{i}.png"), Path(f"/{prefix}{i}_l.png")) for i in range(count)]


def test_labelled_mix_is_a_pure_function_with_a_fixed_budget() -> None:
    source, target = samples("s", 30), samples("t", 20)
    for fraction, n_target in ((0.0, 0), (0.1, 2), (0.5, 10), (1.0, 20)):
        mix = labelled_mix(source, target, fraction, seed=3)
        assert (mix.budget, len(mix.target_keys), len(mix.source_keys)) == (20, n_target, 20 - n_target)
        assert mix == labelled_mix(list(reversed(source)), target, fraction, seed=3)  # order of listing: no matter
        record = mix.record()
        assert record["target_keys"] == sorted(record["target_keys"]) and record["target_labelled"] == n_target
    small, large = labelled_mix(source, target, 0.1, 3), labelled_mix(source, target, 0.5, 3)
    assert set(small.target_keys) < set(large.target_keys) and set(large.source_keys) < set(small.source_keys)
    assert labelled_mix(source, target, 0.5, 4).target_keys != large.target_keys
    assert labelled_mix(source, target, 0.5, 4).record()["target_keys_sha256"] != large.record()["target_keys_sha256"]


def write_colour_coded_gta5(root: Path, count: int, size: tuple[int, int]) -> Path:
    """GTA5 layout whose every image pixel is the palette colour of its label's train ID: a crop of the image and
    a crop of the label agree exactly when they are the same window."""
    rng = np.random.default_rng(7)
    label_ids = np.array([7, 8, 11, 21, 23, 26])
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index in range(1, count + 1):
        blocks = rng.choice(label_ids, size=(size[1] // 4, size[0] // 4))
        label = np.kron(blocks, np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
        colours = np.array(PALETTE, dtype=np.uint8)[label_ids_to_train_ids(label)]
        Image.fromarray(colours).save(root / "images" / f"{index:05d}.png")
        Image.fromarray(label).save(root / "labels" / f"{index:05d}.png")
    return root


def test_items_carry_the_same_crop_and_flip_of_their_label(tmp_path: Path, labelled_cityscapes: Path) -> None:
    source = write_colour_coded_gta5(tmp_path / "gta5", count=4, size=(48, 32))
    palette = torch.tensor(np.array(PALETTE, dtype=np.float32) / 127.5 - 1.0)
    for fraction in (0.0, 0.5, 1.0):
        dataset = joint_dataset(source, labelled_cityscapes, fraction, 48, (32, 24), seed=0)
        flags = {"A": [], "B": []}
        for epoch in range(3):
            for index in range(len(dataset)):
                item = dataset[(epoch, index)]
                for domain in ("A", "B"):
                    flags[domain].append(item[f"{domain}_labelled"])
                    assert item[f"{domain}_label"].shape == (24, 32) and item[domain].shape == (3, 24, 32)
                    if not item[f"{domain}_labelled"]:
                        assert bool((item[f"{domain}_label"] == IGNORE).all())
                if item["A_labelled"]:  # the label is the crop of the image: colour == palette[label]
                    label = item["A_label"]
                    assert torch.allclose(item["A"].permute(1, 2, 0), palette[label], atol=1e-6)
        assert any(flags["A"]) == (fraction < 1) and any(flags["B"]) == (fraction > 0)
        if fraction == 0.5:
            assert not all(flags["A"]) and not all(flags["B"])  # 2 of 4 source, 2 of 4 target images labelled


def fresh_run(config: JointConfig) -> GanRun:
    seed_everything(0)
    return GanRun(joint_trainer(scale=1.0), dataclasses.replace(config, iterations=4, decay_iterations=2), "cpu")


def fixed_batch(a_labelled: list[bool], b_labelled: list[bool]) -> dict:
    generator = torch.Generator().manual_seed(11)
    labels = [torch.randint(0, 19, (2, 24, 32), generator=generator) for _ in range(2)]
    return {
        "A": torch.rand(2, 3, 24, 32, generator=generator) * 2 - 1,
        "B": torch.rand(2, 3, 24, 32, generator=generator) * 2 - 1,
        "A_label": labels[0],
        "B_label": labels[1],
        "A_labelled": torch.tensor(a_labelled),
        "B_labelled": torch.tensor(b_labelled),
    }


def step_gradients(config: JointConfig, batch: dict, step=joint_step) -> tuple[dict, dict[str, list]]:
    """One step from seed 0 on `batch`: its losses and every network's gradients (None where it got none)."""
    run = fresh_run(config)
    losses, _ = step(run, batch, torch.device("cpu"))
    grads = {
        name: [None if p.grad is None else p.grad.clone() for p in net.parameters()] for name, net in run.models.items()
    }
    return losses, grads


def same(a: list, b: list) -> bool:
    pairs = zip(a, b, strict=True)
    return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y)) for x, y in pairs)


def test_each_term_reaches_the_networks_it_should(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path, tmp_path / "out")
    none_losses, none = step_gradients(config, fixed_batch([False, False], [False, False]))
    source_losses, source = step_gradients(config, fixed_batch([True, False], [False, False]))
    target_losses, target = step_gradients(config, fixed_batch([False, False], [False, True]))
    assert list(none_losses) == list(JOINT_LOSS_NAMES)
    assert all(none_losses[k] == 0.0 for k in ("segG_src", "segG_tgt", "segF_src", "segF_tgt"))
    assert all(none[name] == [None] * len(none[name]) for name in ("F_T",))  # nothing labelled: F_T untouched
    # source: CE(F_T(G_A(x_s))) moves G_A only among the generators, and teaches F_T
    assert source_losses["segG_src"] > 0 and source_losses["segF_src"] > 0 and source_losses["segG_tgt"] == 0
    assert not same(source["G_A"], none["G_A"]) and same(source["G_B"], none["G_B"])
    # target: CE(F_T(G_A(G_B(x_t)))) moves both generators; F_T learns from the real target image
    assert target_losses["segG_tgt"] > 0 and target_losses["segF_tgt"] > 0 and target_losses["segF_src"] == 0
    assert not same(target["G_A"], none["G_A"]) and not same(target["G_B"], none["G_B"])
    for grads in (source, target):
        assert same(grads["D_A"], none["D_A"]) and same(grads["D_B"], none["D_B"])  # discriminators: untouched
        assert all(g is not None for g in grads["F_T"][:3])
    assert all(source_losses[k] == none_losses[k] for k in cyclegan.LOSS_NAMES)  # the reference losses: as they were


def source_terms_only(run: GanRun, batch: dict, device: torch.device) -> tuple[dict, object]:
    """The step written with the source terms alone, the target ones absent by construction: the run without them."""
    segmenter, la, y_A = run.models.F_T, batch["A_labelled"], batch["A_label"]

    def ce(images: torch.Tensor) -> torch.Tensor:
        labels = y_A[la]
        logits = segmenter(segmenter_input(images[la]))["out"]
        return torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / (
            (labels != IGNORE).sum()
        )

    def generator_terms(images: dict) -> dict:
        segmenter.requires_grad_(False)
        with statistics_frozen(segmenter):
            return {"segG_src": ce(images["fake_B"])}

    losses, visuals = cyclegan.train_step(
        run.models, run.opt_G, run.opt_D, run.pools, batch["A"], batch["B"], run.config, None, generator_terms
    )
    segmenter.requires_grad_(True)
    opt = run.extra["F"][0]
    opt.zero_grad(set_to_none=True)
    ce(visuals["fake_B"]).backward()
    opt.step()
    return losses, None


def test_without_labelled_target_images_the_target_terms_are_exactly_absent(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path, tmp_path / "out", target_label_fraction=0.0)
    batch = fixed_batch([True, True], [False, False])  # what fraction 0 serves: target labels never flagged
    _, joint = step_gradients(config, batch)
    _, without = step_gradients(config, batch, source_terms_only)
    for name in ("G_A", "G_B", "D_A", "D_B", "F_T"):
        assert same(joint[name], without[name]), name
    run_joint, run_without = fresh_run(config), fresh_run(config)
    joint_step(run_joint, batch, torch.device("cpu"))
    source_terms_only(run_without, batch, torch.device("cpu"))
    after, expected = run_joint.models.F_T.state_dict(), run_without.models.F_T.state_dict()
    assert all(torch.equal(after[k], expected[k]) for k in after)  # weights and BatchNorm statistics


def test_the_generator_update_leaves_the_segmenter_statistics_alone() -> None:
    from uda_trt.train.segmenters import build_segmenter

    model = build_segmenter("lraspp_mobilenet_v3_large").train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    with statistics_frozen(model):
        model(torch.randn(2, 3, 24, 32))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    model(torch.randn(2, 3, 24, 32))
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def interrupt_step_after(monkeypatch, calls: int) -> None:
    """Make cyclegan.train_step (which joint_step calls) raise on call `calls + 1`: an in-process kill."""
    real, count = cyclegan.train_step, [0]

    def step(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cyclegan, "train_step", step)


def test_resumed_joint_run_ends_with_the_uninterrupted_bytes(
    tiny_gta5: Path, labelled_cityscapes: Path, tmp_path: Path, monkeypatch
) -> None:
    config = tiny_config(tiny_gta5, labelled_cityscapes, tmp_path / "run")
    reference = pth_bytes(train_joint(config, keep_train_state=True))
    assert {SEGMENTER_FILE, "2_segmenter.pt", "4_segmenter.pt", "latest_train_state.pt"} <= set(reference)
    assert "latest_net_F_T.pth" not in reference
    recorded = json.loads((config.output / "config.json").read_text())
    (config.output).rename(tmp_path / "reference")

    interrupt_step_after(monkeypatch, 3)  # between saves: iteration 3 is lost, and redone from the state of 2
    with pytest.raises(KeyboardInterrupt):
        train_joint(config, resume=True)
    monkeypatch.undo()
    train_joint(config, resume=True, keep_train_state=True)
    assert pth_bytes(config.output) == reference  # networks, F_T checkpoints and both training states

    labelled = recorded["joint"]["labelled"]
    assert (labelled["budget"], labelled["source_labelled"], labelled["target_labelled"]) == (3, 1, 2)
    assert recorded["config"]["target_label_fraction"] == 0.5
    assert recorded["config"]["segmenter_precise_bn_batches"] == 8
    assert recorded["joint"]["segmenter"]["scale"] == 40 / 64
    checkpoint = torch.load(config.output / SEGMENTER_FILE, weights_only=True)
    assert checkpoint["format"] == "uda-trt-segmenter" and checkpoint["config"]["scale"] == 40 / 64
    state = torch.load(config.output / "latest_train_state.pt", weights_only=True)
    assert set(state["optimizers"]) == {"G", "D", "F"} and "F_T" in state["models"]
    for changed, message in (
        ({"target_label_fraction": 0.25}, "used --target-label-fraction 0.5, this one 0.25;"),
        ({"joint_segmenter": "unet"}, "used --joint-segmenter lraspp_mobilenet_v3_large, this one unet;"),
        ({"segmenter_precise_bn_batches": 2}, "used --segmenter-precise-bn-batches 8, this one 2;"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            train_joint(dataclasses.replace(config, **changed, iterations=8), resume=True)


def saved_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_the_saved_segmenter_gets_precise_bn_on_a_copy_and_the_run_goes_on_untouched(
    tiny_gta5: Path, labelled_cityscapes: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_gta5, labelled_cityscapes, tmp_path / "run")
    dataset = joint_dataset(tiny_gta5, labelled_cityscapes, 0.5, config.load_width, config.crop_size, config.seed)
    run, cpu = fresh_run(config), torch.device("cpu")
    for flags in (([True, False], [True, True]), ([True, True], [False, True])):
        joint_step(run, fixed_batch(*flags), cpu)
    run.iteration = 2
    live = copy.deepcopy(run.models.F_T.state_dict())
    optimizer = copy.deepcopy(run.extra["F"][0].state_dict()["state"])
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        save_segmenter(1.0, dataset, run, tmp_path / folder, numbered=True)
    now = run.models.F_T.state_dict()
    assert all(torch.equal(now[k], live[k]) for k in live)  # the live F_T: weights and statistics as trained
    after = run.extra["F"][0].state_dict()["state"]
    assert all(torch.equal(after[i][k], optimizer[i][k]) for i in optimizer for k in optimizer[i])
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2])

    saved = saved_state(tmp_path / "a" / SEGMENTER_FILE)
    assert (tmp_path / "a" / SEGMENTER_FILE).read_bytes() == (tmp_path / "b" / SEGMENTER_FILE).read_bytes()
    assert all(torch.equal(saved[k], v) for k, v in saved_state(tmp_path / "a" / "2_segmenter.pt").items())
    statistics = [k for k in saved if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(not torch.equal(saved[k], live[k]) for k in statistics)
    assert all(torch.equal(saved[k], live[k]) for k in saved if not k.endswith(("running_mean", "running_var",
               "num_batches_tracked")))  # fmt: skip

    # They are precise BN's re-estimate over batches drawn from (seed, iteration), whoever draws them ...
    expected = copy.deepcopy(run.models.F_T)
    recalibrate_batchnorm(expected, precise_bn_batches(run, dataset, cpu), 8, cpu)
    assert all(torch.equal(saved[k], v) for k, v in expected.state_dict().items())
    # ... and describe the data: the first BatchNorm's mean is its input's mean on fresh crops of the same kind.
    run.iteration = 99
    inputs = next(precise_bn_batches(run, dataset, cpu))[0]
    name, first = next((n, m) for n, m in expected.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first.register_forward_hook(lambda module, args, output: seen.append(args[0].mean(dim=(0, 2, 3))))
    with torch.no_grad():
        expected.eval()(inputs)
    data_mean = seen[0]
    saved_gap = (saved[f"{name}.running_mean"] - data_mean).norm()
    live_gap = (live[f"{name}.running_mean"] - data_mean).norm()
    assert saved_gap < 0.25 * live_gap, (saved_gap, live_gap)

    run.config = dataclasses.replace(config, segmenter_precise_bn_batches=0)  # off: F_T saved as trained
    (tmp_path / "off").mkdir()
    save_segmenter(1.0, dataset, run, tmp_path / "off", numbered=False)
    assert all(torch.equal(v, live[k]) for k, v in saved_state(tmp_path / "off" / SEGMENTER_FILE).items())


@pytest.mark.slow
def test_cli_trains_and_the_segmenter_exports_and_scores_unchanged(
    tiny_gta5: Path, labelled_cityscapes: Path, tmp_path: Path, user_error
) -> None:
    write_cityscapes(labelled_cityscapes, cities={"lindau": 2}, size=(64, 32), seed=5, split="val")
    out = tmp_path / "joint"
    common = ["--source", tiny_gta5, "--target", labelled_cityscapes, "--output", out]
    shape = ["--ngf", 4, "--n-blocks", 1, "--ndf", 4, "--load-width", 40, "--crop-size", "32x24"]
    shape += ["--batch-size", 2, "--iterations", 2, "--workers", 0, "--threads", 1, "--device", "cpu"]
    joint = ["--joint-segmenter", "lraspp_mobilenet_v3_large", "--target-label-fraction", "0.5"]
    done = run_cli("train-cyclegan", *common, *shape, *joint, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "latest_segmenter.pt" in done.stdout
    assert "segG_tgt" in (out / "train.log").read_text()

    exported = run_cli("export-trt", out / SEGMENTER_FILE, "--no-fp16", timeout=300)
    assert exported.returncode == 0, exported.stderr
    sidecar = json.loads((out / "latest_segmenter.json").read_text())
    assert sidecar["task"] == "segment"
    scored = run_cli(
        "evaluate-seg", "--engine", out / "latest_segmenter.onnx", "--cityscapes", labelled_cityscapes,
        "--split", "val", "--output", tmp_path / "eval", timeout=300,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images_scored"] == 2 and 0.0 <= metrics["fw_iou"] <= 1.0

    user_error(run_cli("train-cyclegan", *common, *shape, "--resume", timeout=120), names="--joint-segmenter")
    other = ["--source", tiny_gta5, "--target", labelled_cityscapes, "--output", tmp_path / "other"]
    user_error(run_cli("train-cyclegan", *other, "--target-label-fraction", "0.1"), names="--target-label-fraction")
    user_error(
        run_cli("train-cyclegan", *other, *joint, "--semantic-loss", out / SEGMENTER_FILE), names="--semantic-loss"
    )
    user_error(
        run_cli("train-cyclegan", *common, *shape, "--resume", *joint[:2], "--target-label-fraction", "1"),
        names="--target-label-fraction",
    )
    assert not (tmp_path / "other").exists()
