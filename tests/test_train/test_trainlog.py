"""What the trainers show while they run (train.trainlog): train.log lines timestamped in one format for both, no
progress-bar redraws (`\\r`) in a stderr that is not a terminal but the periodic log lines instead, and the
segmenter's two losses of one iteration labelled as what they are."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import BIN, write_cityscapes, write_gta5

# `2026-11-30 14:05:09,123 INFO uda_trt.train.cyclegan: ...`: logging's asctime, level, logger
STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) uda_trt\.[\w.]+: \S")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """A finished tiny run of each trainer, stderr captured (a pipe, as in a batch job): name -> (output, stderr)."""
    root = tmp_path_factory.mktemp("trainlog")
    source = write_gta5(root / "gta5", count=6, size=(48, 27), seed=1)
    target = root / "cityscapes"
    write_cityscapes(target, cities={"aachen": 2}, size=(64, 32), seed=2, split="train")
    argv = {
        "cyclegan": [
            "train-cyclegan", "--source", source, "--target", target, "--output", root / "cyclegan", "--ngf", 4,
            "--n-blocks", 1, "--ndf", 4, "--load-width", 40, "--crop-size", "32x24", "--iterations", 4,
            "--log-every", 2, "--workers", 0, "--threads", 1, "--device", "cpu",
        ],
        "segmenter": [
            "train-segmenter", "--data", source, "--output", root / "segmenter", "--scale", 1, "--crop-size", "32x24",
            "--batch-size", 2, "--iterations", 4, "--optimizer", "adamw", "--lr", "1e-3", "--val-fraction", 0.25,
            "--val-every", 2, "--precise-bn-batches", 1, "--log-every", 2, "--workers", 0, "--device", "cpu",
        ],
    }  # fmt: skip
    found = {}
    for name, args in argv.items():
        # bytes, not text: text mode would turn every "\r" into "\n"
        done = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, timeout=600, check=False)
        stderr = done.stderr.decode()
        assert done.returncode == 0, stderr[-3000:]
        found[name] = (root / name, stderr)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["cyclegan", "segmenter"])
def test_a_redirected_stderr_gets_log_lines_not_progress_bar_redraws(runs, trainer):
    _, stderr = runs[trainer]
    assert "\r" not in stderr
    periodic = re.findall(r"^INFO: iteration (\d+): ", stderr, re.MULTILINE)
    assert {"2", "4"} <= set(periodic), stderr  # the periodic line, every --log-every iterations


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["cyclegan", "segmenter"])
def test_every_train_log_line_is_timestamped_in_one_format(runs, trainer):
    out, _ = runs[trainer]
    lines = (out / "train.log").read_text().splitlines()
    assert len(lines) >= 3
    unstamped = [line for line in lines if not STAMPED.match(line)]
    assert unstamped == []


@pytest.mark.slow
def test_the_segmenters_two_losses_of_one_iteration_say_which_is_which(runs):
    out, _ = runs["segmenter"]
    log = (out / "train.log").read_text()
    batch = re.findall(r"segmenter: iteration 2: loss (\S+) \(this batch\), lr ", log)
    mean = re.findall(r"segmenter: iteration 2: held-out mIoU .*; mean training loss (\S+) over the 2 batches ", log)
    assert len(batch) == 1 and len(mean) == 1, log
    assert "train loss" not in log  # the old, unlabelled wording of the mean
