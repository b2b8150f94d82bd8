"""pix2pix (train.pix2pix, train.paired_data, train.paired_files): the networks against the reference's state-dict
tables, paired items that stay aligned, the training step, whole runs in the three layouts, and bad pairs refused.
Resume is in test_pix2pix_resume.py, the command in commands/test_train_pix2pix.py."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import write_image
from uda_trt.train.checkpoints import describe_checkpoint, require_model_checkpoint
from uda_trt.train.gan_training import seed_everything
from uda_trt.train.networks import UnetGenerator, count_parameters
from uda_trt.train.paired_data import PairedImages
from uda_trt.train.paired_files import Pair, check_pairs, find_pairs
from uda_trt.train.pix2pix import LOSS_NAMES, Pix2PixConfig, build_models, train_pix2pix, train_step

TABLES = Path(__file__).parent / "reference_state_dicts"  # written by the reference code's define_G / define_D


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/test_train/conftest.py


def tiny_config(output: Path, **overrides) -> Pix2PixConfig:
    """ngf/ndf 4, a 5-level U-Net (the smallest; 32x32 crops), one thread, no workers: a run takes a fraction of a s."""
    values = dict(
        ngf=4, ndf=4, num_downs=5, load_size=(36, 36), crop_size=(32, 32), iterations=3, num_workers=0, threads=1,
        device="cpu", sample_every=2, save_every=2, log_every=1,
    )  # fmt: skip
    values.update(overrides)
    return Pix2PixConfig(output=output, **values)


def entries(net: torch.nn.Module) -> list[list]:
    """[key, shape, dtype] of every state_dict entry, in order, as the tables write them."""
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]


def test_networks_equal_the_reference_tables_key_for_key() -> None:
    for num_downs, name in ((8, "unet_256_batch"), (7, "unet_128_batch")):
        with torch.device("meta"):  # 54 M parameters, never allocated
            models = build_models(Pix2PixConfig(output=Path("unused"), num_downs=num_downs), init=False)
        reference = json.loads((TABLES / f"{name}.json").read_text())
        assert entries(models.G) == reference["keys"], name
        assert count_parameters(models.G) == reference["parameters"], name
        # dropout in the innermost 512-channel blocks: three in unet_256, two in unet_128 (no keys of their own)
        assert sum(isinstance(m, torch.nn.Dropout) for m in models.G.modules()) == num_downs - 5
    assert reference["parameters"] == 41_828_995
    unet_256 = json.loads((TABLES / "unet_256_batch.json").read_text())
    assert unet_256["parameters"] == 54_413_955 and len(unet_256["keys"]) == 82
    discriminator = json.loads((TABLES / "pix2pix_D_basic_batch.json").read_text())
    assert entries(models.D) == discriminator["keys"]  # 6 input channels: concat(input, output)
    assert count_parameters(models.D) == discriminator["parameters"] == 2_768_705


def write_aligned(path: Path, a: np.ndarray, b: np.ndarray) -> Pair:
    write_image(path, np.concatenate([a, b], axis=1))
    return Pair(path.stem, path, path)


def test_a_pair_gets_one_crop_and_one_flip_and_direction_swaps_its_sides(tmp_path: Path) -> None:
    a = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    pair = write_aligned(tmp_path / "ab.png", a, 255 - a)  # B is A's negative, pixel for pixel
    forward = PairedImages([pair], aligned=True, load_size=(24, 20), crop=(16, 16), seed=1)
    backward = PairedImages([pair], aligned=True, load_size=(24, 20), crop=(16, 16), direction="BtoA", seed=1)
    reference = torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1
    windows = set()
    for epoch in range(24):
        item = forward[(epoch, 0)]
        assert item["input"].shape == item["target"].shape == (3, 16, 16)
        assert torch.allclose(item["target"], -item["input"], atol=1e-6)  # the same window of both halves
        found = {  # which window of A the input is, flipped or not
            (x, y, flipped)
            for y in range(5)
            for x in range(9)
            for flipped in (False, True)
            if torch.equal(
                reference[:, y : y + 16, x : x + 16].flip(2) if flipped else reference[:, y : y + 16, x : x + 16],
                item["input"],
            )
        }
        assert len(found) == 1
        windows |= found
        swapped = backward[(epoch, 0)]
        assert torch.equal(swapped["input"], item["target"]) and torch.equal(swapped["target"], item["input"])
        assert torch.equal(forward[(epoch, 0)]["input"], item["input"])  # keyed RNG: the same item again
    assert {flipped for *_, flipped in windows} == {False, True} and len(windows) > 8  # crops and flips vary


def test_train_step_updates_discriminator_then_generator_with_the_reference_losses() -> None:
    seed_everything(0)
    models = build_models(tiny_config(Path()))
    opt_G = torch.optim.Adam(models.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(models.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in models.items()}
    real_A, real_B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses, fake_B = train_step(models, opt_G, opt_D, real_A, real_B, lambda_l1=100.0)
    assert list(losses) == list(LOSS_NAMES) and all(math.isfinite(v) and v > 0 for v in losses.values())
    assert losses["G_L1"] == pytest.approx(100 * float((fake_B - real_B).abs().mean()), rel=1e-5)
    for p in models.G.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    for name, net in models.items():  # both networks stepped
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)), name
    assert not any(p.requires_grad for p in models.D.parameters())  # frozen for the G step, as the reference leaves it
    assert fake_B.shape == real_A.shape and float(fake_B.abs().max()) <= 1


def test_the_three_layouts_of_the_same_pairs_train_the_same_networks(paired_layouts, tmp_path: Path) -> None:
    sources = {
        "cityscapes": {"data": paired_layouts["cityscapes"]},
        "aligned": {"data": paired_layouts["aligned"]},
        "folders": {"folder_a": paired_layouts["a"], "folder_b": paired_layouts["b"]},
    }
    runs = {name: train_pix2pix(tiny_config(tmp_path / name, **given)) for name, given in sources.items()}
    names = {p.relative_to(runs["aligned"]).as_posix() for p in runs["aligned"].rglob("*")}
    assert names == {
        "latest_net_G.pth", "latest_net_D.pth", "2_net_G.pth", "2_net_D.pth", "config.json", "finished.json",
        "train.log", "samples", "samples/iter_000002.png", "samples/iter_000003.png",
    }  # fmt: skip
    generators = {name: (out / "latest_net_G.pth").read_bytes() for name, out in runs.items()}
    assert len(set(generators.values())) == 1  # same pairs, same order, same crops: the same bytes
    backward = train_pix2pix(tiny_config(tmp_path / "BtoA", data=paired_layouts["cityscapes"], direction="BtoA"))
    assert (backward / "latest_net_G.pth").read_bytes() != generators["cityscapes"]

    out = runs["cityscapes"]
    for name, first_conv in (("G", "model.model.0.weight"), ("D", "model.0.weight")):  # both train on: iteration 3
        earlier, later = (torch.load(out / f"{i}_net_{name}.pth", weights_only=True) for i in (2, "latest"))
        assert not torch.equal(earlier[first_conv], later[first_conv]), name
    state = torch.load(out / "latest_net_G.pth", weights_only=True)  # a bare state_dict, the reference's keys
    reference = UnetGenerator(3, 3, num_downs=5, ngf=4, norm="batch", use_dropout=True)
    reference.load_state_dict(state, strict=True)
    assert list(state) == list(reference.state_dict()) and int(state["model.model.1.model.2.num_batches_tracked"]) == 3
    info = require_model_checkpoint(out / "latest_net_G.pth")
    assert (info.architecture, info.args["num_downs"], info.args["ngf"], info.args["norm"]) == (
        "unet_generator", 5, 4, "batch"
    )  # fmt: skip
    critic = describe_checkpoint(out / "latest_net_D.pth")
    assert (critic.kind, critic.args["input_nc"], critic.args["norm"]) == ("discriminator", 6, "batch")
    with pytest.raises(UserError, match="latest_net_G.pth"):
        require_model_checkpoint(out / "latest_net_D.pth")

    config = json.loads((out / "config.json").read_text())
    assert config["images"] == {"layout": "cityscapes", "pairs": 4, "skipped_unreadable": 0}
    assert config["generator"]["args"]["use_dropout"] is True and config["config"]["lambda_l1"] == 100.0
    # what export-trt reads to export the generator at its training size (export.onnx_export.default_translator_size)
    assert config["config"]["crop_size"] == [32, 32] and config["generator"]["architecture"] == "unet_generator"
    assert {key: config["generator"]["args"][key] for key in ("num_downs", "ngf", "input_nc", "output_nc")} == {
        key: info.args[key] for key in ("num_downs", "ngf", "input_nc", "output_nc")
    }
    assert config["parameters"]["G"] == count_parameters(reference)
    lines = re.findall(r"pix2pix: iteration (\d+): lr \S+ (.*), [\d.]+ s/it$", (out / "train.log").read_text(), re.M)
    assert [int(n) for n, _ in lines] == [1, 2, 3]
    assert lines[-1][1].split()[::2] == list(LOSS_NAMES)
    assert Image.open(out / "samples" / "iter_000002.png").size == (3 * 32, 32)  # input | output | target
    with pytest.raises(UserError, match="--resume"):
        train_pix2pix(tiny_config(out, data=paired_layouts["cityscapes"]))


def test_unpaired_or_unreadable_files_and_bad_settings_are_named(paired_layouts, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    image = np.zeros((32, 32, 3), np.uint8)
    for folder in (a, b):
        write_image(folder / "x.png", image)
    write_image(b / "sub" / "extra.jpg", image)  # B without its A
    with pytest.raises(UserError, match=re.escape(f"{b / 'sub' / 'extra.jpg'}: no image of the same name in {a}")):
        find_pairs(None, a, b)
    (b / "sub" / "extra.jpg").unlink()
    (a / "y.png").write_bytes(b"not an image")  # an unreadable header: the pair is skipped and counted
    write_image(b / "y.png", image)
    listing = find_pairs(None, a, b)
    assert (listing.layout, [p.key for p in listing.pairs], listing.skipped) == ("folders", ["x"], 1)
    assert check_pairs([Pair("y", a / "y.png", b / "y.png")], aligned=False) == ([], 1)
    for given, flag in (
        ((a, a, None), "--folder-b"),
        ((None, None, None), "--data"),
        ((tmp_path / "none", None, None), "no such folder (--data)"),
        ((None, tmp_path / "none", b), "no such folder (--folder-a)"),
    ):
        with pytest.raises(UserError, match=re.escape(flag)):
            find_pairs(*given)

    base = tiny_config(tmp_path / "run", data=paired_layouts["aligned"])
    for overrides, message in (
        ({"crop_size": (48, 32)}, "--crop-size 48x32: width and height must be multiples of 32"),
        ({"load_size": (30, 40)}, "--load-size 30x40 is smaller than --crop-size 32x32"),
        ({"num_downs": 6}, "multiples of 64"),
        ({"decay_iterations": 9}, "--decay-iterations"),
        ({"split": "val"}, "val: no such folder"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            train_pix2pix(dataclasses.replace(base, **overrides))
    assert not base.output.exists()
