"""pix2pix resume (train.pix2pix through train.gan_training): interrupted in process and resumed, and train-pix2pix
killed with SIGKILL at one seeded iteration, both ending byte for byte where an uninterrupted run ends.

Reference runs are made in the folder the interrupted runs then use, and moved aside, so the paths recorded in
configs and training states are the same and every network file and both training states compare byte for byte.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import uda_trt.train.pix2pix as pix2pix
from helpers import KILLED, LogProgress, assert_readable, kill_points, pth_bytes, run_until
from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import require_model_checkpoint
from uda_trt.train.pix2pix import Pix2PixConfig, train_pix2pix
from uda_trt.train.run_folder import LATEST_STATE

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/test_train/conftest.py


def config(data: Path, output: Path, iterations: int, save_every: int) -> Pix2PixConfig:
    """4 pairs in batches of 2: 2 batches per epoch, so a run crosses several epoch boundaries; a 6-level U-Net has
    one dropout block, so the global torch RNG matters too. Every value is what the command line of `argv` gives,
    so the command's runs and these record the same config."""
    return Pix2PixConfig(
        output=output, data=data, ngf=4, ndf=4, num_downs=6, load_size=(72, 72), crop_size=(64, 64), batch_size=2,
        iterations=iterations, decay_iterations=4, save_every=save_every, sample_every=4, log_every=1, seed=3,
        num_workers=0, threads=1, device="cpu",
    )  # fmt: skip


def argv(c: Pix2PixConfig) -> list:
    """`config` as a train-pix2pix command line, training states kept so that they compare too."""
    return [
        "train-pix2pix", "--data", c.data, "--output", c.output, "--ngf", 4, "--ndf", 4, "--num-downs", 6,
        "--load-size", "72x72", "--crop-size", "64x64", "--batch-size", 2, "--iterations", c.iterations,
        "--decay-iterations", 4, "--save-every", c.save_every, "--sample-every", 4, "--log-every", 1, "--seed", 3,
        "--workers", 0, "--threads", 1, "--device", "cpu", "--keep-train-state",
    ]  # fmt: skip


def reference_files(c: Pix2PixConfig) -> dict[str, bytes]:
    """The .pt/.pth files of an uninterrupted run of `c`, whose folder is then moved aside."""
    expected = pth_bytes(train_pix2pix(c, keep_train_state=True))
    c.output.rename(c.output.with_name("reference"))
    return expected


class Interrupted(Exception):
    """Stands in for a kill in the in-process run."""


def test_interrupted_between_saves_resumes_byte_identical(paired_layouts, tmp_path: Path, monkeypatch) -> None:
    c = config(paired_layouts["cityscapes"], tmp_path / "run", iterations=7, save_every=2)
    expected = reference_files(c)
    assert {"latest_net_G.pth", "latest_net_D.pth", "6_net_G.pth", "latest_train_state.pt"} <= set(expected)
    real_step, steps = pix2pix.train_step, []

    def interrupted_step(*args, **kwargs):
        steps.append(1)
        if len(steps) > 3:  # iteration 4 never runs: the state of iteration 2 is the last one saved
            raise Interrupted
        return real_step(*args, **kwargs)

    monkeypatch.setattr(pix2pix, "train_step", interrupted_step)
    with pytest.raises(Interrupted):
        train_pix2pix(c)
    monkeypatch.undo()
    assert torch.load(c.output / LATEST_STATE, weights_only=True)["iteration"] == 2
    train_pix2pix(c, resume=True, keep_train_state=True)
    assert pth_bytes(c.output) == expected  # every network file and both training states

    with pytest.raises(UserError, match="train-pix2pix --resume.*latest_net_G.pth"):  # a state is not a model
        require_model_checkpoint(c.output / LATEST_STATE)
    with pytest.raises(UserError, match="--direction AtoB, this one BtoA"):  # nor is another direction this run
        train_pix2pix(dataclasses.replace(c, direction="BtoA", iterations=9), resume=True)
    with pytest.raises(UserError, match="--load-size 72x72, this one 80x80"):
        train_pix2pix(dataclasses.replace(c, load_size=(80, 80), iterations=9), resume=True)


@pytest.mark.slow
def test_train_pix2pix_killed_at_a_seeded_iteration_resumes_byte_identical(paired_layouts, tmp_path: Path) -> None:
    c = config(paired_layouts["cityscapes"], tmp_path / "run", iterations=12, save_every=3)
    expected = reference_files(c)
    (point,) = kill_points(4, 8, 1, seed=20261130)
    progress = LogProgress(c.output / "train.log", r"pix2pix: iteration (\d+):")
    status = run_until(argv(c), lambda: progress() >= point, tmp_path / "stderr.log", timeout=300, group=True)
    assert status == KILLED, (tmp_path / "stderr.log").read_text()[-3000:]
    assert_readable(c.output)  # nothing a reader picks up is partial
    resumed_from = torch.load(c.output / LATEST_STATE, weights_only=True)["iteration"]
    assert 3 <= resumed_from < 12
    train_pix2pix(c, resume=True, keep_train_state=True)  # what train-pix2pix ... --resume runs
    assert pth_bytes(c.output) == expected
    assert not list(c.output.rglob("*.partial"))
