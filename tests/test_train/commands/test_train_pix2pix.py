"""train-pix2pix as a user runs it: a tiny run, --resume of a finished run and a rerun answered before torch is
imported, bad pairs refused in one line (exit 2) before torch is imported, and --help that explains every option."""

from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np
import pytest

from helpers import assert_user_error, run_cli, write_paired_layouts
from uda_trt.runtime.imageio import write_image
from uda_trt.train.commands.train_pix2pix import main

PROFILE = {"PYTHONPROFILEIMPORTTIME": "1"}  # Python's import profile on stderr: `import time: ... | module`
TINY = [
    "--ngf", 4, "--ndf", 4, "--num-downs", 5, "--load-size", "36x36", "--crop-size", "32x32", "--iterations", 2,
    "--workers", 0, "--threads", 1, "--device", "cpu",
]  # fmt: skip


def imported(stderr: str) -> list[str]:
    return re.findall(r"^import time:.*\|\s*(\S+)$", stderr, re.MULTILINE)


@pytest.mark.slow
def test_trains_then_answers_resume_and_rerun_before_importing_torch(paired_layouts, tmp_path: Path) -> None:
    out = tmp_path / "run"
    data = ["--folder-a", paired_layouts["a"], "--folder-b", paired_layouts["b"], "--output", out]
    done = run_cli("train-pix2pix", *data, *TINY, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"pix2pix written to {out} (export {out / 'latest_net_G.pth'})"
    names = {p.name for p in out.iterdir()}
    assert {"latest_net_G.pth", "latest_net_D.pth", "finished.json", "config.json", "train.log"} <= names
    assert not {"latest_train_state.pt", "previous_train_state.pt"} & names  # removed at the end by default
    assert "4 pairs (folders layout)" in done.stderr and "Traceback" not in done.stderr

    again = run_cli("train-pix2pix", *data, *TINY, "--resume", env=PROFILE, timeout=120)
    assert again.returncode == 0 and "already trained to iteration 2; nothing to do" in again.stderr, again.stderr
    assert "click" in imported(again.stderr) and "torch" not in imported(again.stderr)
    rerun = run_cli("train-pix2pix", *data, *TINY, env=PROFILE, timeout=120)
    assert_user_error(rerun, names="--resume")
    assert "torch" not in imported(rerun.stderr)
    other = run_cli("train-pix2pix", *data, *TINY, "--direction", "BtoA", "--resume", timeout=120)
    assert_user_error(other, names="--direction AtoB, this one BtoA")


def unpaired(root: Path) -> tuple[list, Path]:
    layouts = write_paired_layouts(root, count=2)
    missing = sorted(layouts["b"].iterdir())[1]
    missing.unlink()
    return ["--folder-a", layouts["a"], "--folder-b", layouts["b"]], layouts["a"] / missing.name


def sizes_apart(root: Path) -> tuple[list, Path]:
    layouts = write_paired_layouts(root, count=2)
    smaller = sorted(layouts["b"].iterdir())[0]
    write_image(smaller, np.zeros((16, 32, 3), np.uint8))
    return ["--folder-a", layouts["a"], "--folder-b", layouts["b"]], smaller


def odd_width(root: Path) -> tuple[list, Path]:
    layouts = write_paired_layouts(root, count=2)
    odd = layouts["aligned"] / "train" / "odd.png"
    write_image(odd, np.zeros((32, 65, 3), np.uint8))
    return ["--data", layouts["aligned"]], odd


def no_colour(root: Path) -> tuple[list, Path]:
    layouts = write_paired_layouts(root, count=2)
    colour = sorted((layouts["cityscapes"] / "gtFine").rglob("*_gtFine_color.png"))[-1]
    colour.unlink()
    return ["--data", layouts["cityscapes"], "--direction", "BtoA"], colour


@pytest.mark.parametrize("bad", [unpaired, sizes_apart, odd_width, no_colour])
def test_bad_pairs_are_refused_in_one_line_naming_the_file_before_torch(bad, tmp_path: Path) -> None:
    given, named = bad(tmp_path / "data")
    result = run_cli("train-pix2pix", *given, "--output", tmp_path / "out", *TINY, env=PROFILE, timeout=120)
    assert_user_error(result, names=str(named))
    assert "click" in imported(result.stderr) and "torch" not in imported(result.stderr)
    assert not (tmp_path / "out").exists()


def test_help_explains_every_option_layouts_and_checkpoints() -> None:
    undocumented = [p.name for p in main.params if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert undocumented == [] and [p.opts for p in main.params if p.hidden] == [["--num-workers"]]
    shown = run_cli("train-pix2pix", "--help", timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    for expected in (
        "--data", "--folder-a", "--folder-b", "--direction [AtoB|BtoA]", "default: AtoB", "286x286", "256x256",
        "default: 8", "unet_256", "--flip / --no-flip", "default: 100.0", "default: 0.0002", "_gtFine_color.png",
        "latest_net_G.pth", "54,413,955", "--model pix2pix --netG unet_256 --norm batch", "--resume",
    ):  # fmt: skip
        assert expected in text, expected
