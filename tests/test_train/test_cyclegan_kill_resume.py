"""train-cyclegan (train.cyclegan) under fault injection: SIGKILL at startup and at seeded random iterations, check what
a reader sees, rerun the same command with --resume, and compare with an uninterrupted run.

The trainer is killed at startup (config.json written, no state yet: the rerun starts afresh) and when its train.log
shows a seeded random iteration (2 points, ascending, in the first two thirds of the run; this seed draws 4, which
loses an iteration past the first save, and 9, whose save the kill may cut); state is saved every 3 iterations, so
most kills lose iterations that the rerun redoes from the last save.
The whole process group is killed, as a scheduler or the OOM killer would end a job and its workers. After every kill,
nothing a reader picks up is partial: every visible .pt/.pth loads with torch.load(weights_only=True), every .onnx
parses, every PNG decodes, every JSON parses. The reference run is made in the folder the killed runs then use, and
moved aside, so the paths recorded in configs and states are the same and files compare byte for byte. Compared: every
network file (latest, numbered) and both training states (kept with --keep-train-state). The run that finishes starts
from a damaged latest state (damaged after the last kill): it must warn once, resume from the previous state and still
end byte for byte. Then both states damaged (train.resume.load_train_state, the first thing every --resume does,
called here) and a rerun without --resume (the command).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import LogProgress, copy_files, kill_and_rerun, kill_points, pth_bytes, run_cli
from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT
from uda_trt.train.gan_training import STATE_KEYS
from uda_trt.train.resume import load_train_state

SEED = 20261135

CYCLEGAN_ITERATIONS = 15


@pytest.fixture(scope="module")
def cyclegan_domains(synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """Image folders: 6 source images, 4 target images (batch 2: 3 batches per epoch, 5 epochs in a run)."""
    root = tmp_path_factory.mktemp("domains")
    a = copy_files(sorted((synthetic / "gta5" / "images").glob("*.png"))[:6], root / "a")
    b = copy_files(sorted((synthetic / "cityscapes" / "leftImg8bit" / "val").rglob("*.png"))[:4], root / "b")
    return a, b


def cyclegan_argv(domains: tuple[Path, Path], out: Path) -> list:
    return [
        "train-cyclegan", "--source", domains[0], "--target", domains[1], "--output", out,
        "--ngf", 4, "--n-blocks", 1, "--ndf", 4, "--load-width", 64, "--crop-size", "32x32", "--batch-size", 2,
        "--iterations", CYCLEGAN_ITERATIONS, "--decay-iterations", 6, "--save-every", 3, "--sample-every", 4,
        "--log-every", 1, "--workers", 0, "--threads", 1, "--device", "cpu", "--seed", 3, "--keep-train-state",
    ]  # fmt: skip


@pytest.mark.slow
def test_train_cyclegan_killed_at_seeded_iterations_resumes_byte_identical(cyclegan_domains, tmp_path):
    out = tmp_path / "run"
    argv = cyclegan_argv(cyclegan_domains, out)
    reference = run_cli(*argv)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = pth_bytes(out)
    out.rename(tmp_path / "reference")
    assert {"latest_net_G_A.pth", "15_net_G_A.pth", "latest_train_state.pt", "previous_train_state.pt"} <= set(expected)

    log = tmp_path / "stderr.log"
    points = kill_points(1, 2 * CYCLEGAN_ITERATIONS // 3, 2, SEED)
    triggers = [
        (f"iteration {n}", lambda n=n: lambda p=LogProgress(out / "train.log", r"cyclegan: iteration (\d+):"): p() >= n)
        for n in points
    ]
    triggers[0:0] = [("startup", lambda: lambda: (out / "config.json").exists())]
    latest, previous = out / "latest_train_state.pt", out / "previous_train_state.pt"

    def damage_latest() -> None:  # the last kill (at iteration 9) came after the save at 6: both states exist
        assert previous.exists()
        latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])

    done = kill_and_rerun([*argv, "--resume"], out, triggers, log, before_rerun=damage_latest)
    # the damaged latest state: one warning line naming both files, the previous state is used
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and str(latest) in warnings[0] and previous.name in warnings[0], warnings
    used = re.search(r"resuming from \S+ \(iteration (\d+)\)", warnings[0])
    assert used and f"resuming {out} at iteration {used[1]} of {CYCLEGAN_ITERATIONS}" in done.stderr, done.stderr
    assert pth_bytes(out) == expected  # every network file and both training states, byte for byte

    # Both damaged: one line naming both; without --resume a folder holding a run is refused (exit 2), naming --resume
    for path in (latest, previous):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as both:
        load_train_state(out, TRAIN_STATE_FORMAT, STATE_KEYS)
    assert both.value.exit_code == 2 and "\n" not in both.value.message, both.value.message
    assert str(latest) in both.value.message and str(previous) in both.value.message, both.value.message
    refused = run_cli(*argv)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--resume" in errors[0], refused.stderr
