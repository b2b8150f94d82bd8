"""Ctrl-C and SIGTERM stop a trainer after the iteration in progress with its training state saved (train.stopping).

The real console scripts run with budgets they cannot finish before the signal: they save no periodic state within
the run (--save-every is larger than --iterations), so a state can only come from the signal. Each is signalled once
its train.log shows a few iterations, must exit 128 + the signal with one line naming the saved iteration and the
command that continues, and that very command must finish the run. train-cyclegan gets SIGTERM on its own process,
as a container runtime sends it; train-segmenter, with a data-loading worker process, gets SIGINT on its whole
process group, as a terminal sends Ctrl-C (and a scheduler sends SIGTERM to every process of a job).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import BIN, LogProgress, write_gta5
from uda_trt.train.stopping import StopRequest, TrainingStopped

POLL_S = 0.01


def test_a_first_signal_asks_to_stop_and_a_second_exits_at_once(capfd):
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and stop.signal_name == "SIGTERM"
        with pytest.raises(SystemExit) as exited:
            signal.raise_signal(signal.SIGINT)
        assert exited.value.code == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    notices = capfd.readouterr().err.splitlines()
    assert notices[0].startswith("SIGTERM: finishing this iteration") and "stopping now" in notices[1]
    assert TrainingStopped(signal.SIGTERM, 7, Path("x.pt")).exit_code == 143


def signal_when(argv: list, progress: LogProgress, iteration: int, signum: int, group: bool, folder: Path):
    """Run console script `argv` (stdout, stderr to files in `folder`) and send `signum` to it (to its process group
    with `group`) once `progress()` reaches `iteration`. Returns (exit status, stderr text)."""
    stderr_path = folder / "stderr.txt"
    with open(folder / "stdout.txt", "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [str(BIN / argv[0]), *map(str, argv[1:])], stdout=out, stderr=err, start_new_session=group
        )
        deadline = time.monotonic() + 300
        while progress() < iteration and process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert process.poll() is None, stderr_path.read_text()[-3000:]
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        status = process.wait(timeout=300)
    return status, stderr_path.read_text()


def assert_stopped_and_continued(
    argv: list, out: Path, status: int, stderr: str, signum: int, at_least: int, total: int
) -> int:
    """The stop's exit status, its one line, the saved state; then the printed command finishes the run.
    Returns the iteration the state was saved at."""
    assert status == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1, stderr
    name = signal.Signals(signum).name
    saved_at, command = (
        lines[0]
        .removeprefix(f"interrupted: {name}: training state saved at iteration ")
        .split(f" in {out / 'latest_train_state.pt'}; continue with: ")
    )
    iteration = int(saved_at)
    assert at_least <= iteration < total
    state = torch.load(out / "latest_train_state.pt", weights_only=True)
    assert state["iteration"] == iteration  # no periodic save in this budget: the state is the signal's

    continued = shlex.split(command)
    assert continued == [*map(str, argv), "--resume"]  # the same command plus --resume, exactly
    done = subprocess.run([str(BIN / continued[0]), *continued[1:]], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming {out} at iteration {iteration} of {total}" in done.stderr
    assert (out / "finished.json").exists() and not (out / "latest_train_state.pt").exists()
    return iteration


@pytest.mark.slow
def test_train_cyclegan_on_sigterm_saves_its_state_and_says_how_to_continue(tiny_gta5, tiny_cityscapes, tmp_path):
    out, total = tmp_path / "run", 12  # the signal comes at iteration 3: 9 iterations left to cut
    argv = [
        "train-cyclegan", "--source", tiny_gta5, "--target", tiny_cityscapes, "--output", out, "--ngf", 4,
        "--n-blocks", 1, "--ndf", 4, "--load-width", 40, "--crop-size", "32x24", "--iterations", total,
        "--save-every", 1000, "--sample-every", 1000, "--log-every", 1, "--workers", 0, "--threads", 1,
        "--device", "cpu",
    ]  # fmt: skip
    progress = LogProgress(out / "train.log", r"cyclegan: iteration (\d+):")
    status, stderr = signal_when(argv, progress, 3, signal.SIGTERM, group=False, folder=tmp_path)
    assert_stopped_and_continued(argv, out, status, stderr, signal.SIGTERM, 3, total)
    assert "SIGTERM: finishing this iteration" in stderr
    assert len(list(out.glob("latest_net_*.pth"))) == 4


@pytest.mark.slow
def test_train_segmenter_on_ctrl_c_to_its_process_group_with_a_worker(tmp_path):
    data = write_gta5(tmp_path / "gta5", count=8, size=(48, 27), seed=1)
    out, total = tmp_path / "run", 8  # the signal comes at iteration 2; the continued run scores at 5 and 8
    argv = [
        "train-segmenter", "--data", data, "--output", out, "--scale", 1, "--crop-size", "32x24", "--batch-size", 2,
        "--iterations", total, "--optimizer", "adamw", "--lr", "1e-3", "--val-fraction", 0.25, "--val-every", 5,
        "--precise-bn-batches", 1, "--save-every", 1000, "--log-every", 1, "--workers", 1, "--device", "cpu",
    ]  # fmt: skip
    progress = LogProgress(out / "train.log", r"segmenter: iteration (\d+):")
    status, stderr = signal_when(argv, progress, 2, signal.SIGINT, group=True, folder=tmp_path)
    assert_stopped_and_continued(argv, out, status, stderr, signal.SIGINT, 2, total)
    assert "DataLoader worker" not in stderr  # the worker ignored Ctrl-C and served the iteration being finished
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
