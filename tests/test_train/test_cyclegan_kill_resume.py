"""train-cyclegan (train.cyclegan) under fault injection: SIGKILL at startup and at seeded random iterations, check what
a reader sees, rerun the same command with --resume, and compare with an uninterrupted run.

The trainer is killed when its train.log shows a seeded random iteration (3 points, ascending, in the first two thirds
of the run); state is saved every 3 iterations, so most kills lose iterations that the rerun redoes from the last save.
The whole process group is killed, as a scheduler or the OOM killer would end a job and its workers. After every kill,
nothing a reader picks up is partial: every visible .pt/.pth loads with torch.load(weights_only=True), every .onnx
parses, every PNG decodes, every JSON parses. The reference run is made in the folder the killed runs then use, and
moved aside, so the paths recorded in configs and states are the same and files compare byte for byte. Compared: every
network file (latest, numbered) and both training states (kept with --keep-train-state). Then a damaged latest state,
both states damaged, and a rerun without --resume.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import LogProgress, copy_files, kill_and_rerun, kill_points, pth_bytes, run_cli

SEED = 20261124

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
    points = kill_points(1, 2 * CYCLEGAN_ITERATIONS // 3, 3, SEED)
    triggers = [
        (f"iteration {n}", lambda n=n: lambda p=LogProgress(out / "train.log", r"cyclegan: iteration (\d+):"): p() >= n)
        for n in points
    ]
    triggers[0:0] = [("startup", lambda: lambda: (out / "config.json").exists())]
    kill_and_rerun([*argv, "--resume"], out, triggers, log)
    assert pth_bytes(out) == expected  # every network file and both training states, byte for byte

    # A damaged latest state: one warning line naming both files, the previous state is used, same bytes at the end
    latest = out / "latest_train_state.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    done = run_cli(*argv, "--resume")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and str(latest) in warnings[0] and "previous_train_state.pt" in warnings[0], warnings
    assert pth_bytes(out) == expected  # resumed at 12 (the previous save), redid 13..15

    # Both damaged: one line, exit 2; without --resume a folder holding a run is refused, naming --resume
    for name in ("latest_train_state.pt", "previous_train_state.pt"):
        (out / name).write_bytes(b"not a checkpoint")
    for args, names in (([*argv, "--resume"], "previous_train_state.pt"), (argv, "--resume")):
        refused = run_cli(*args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        errors = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and names in errors[0], refused.stderr
