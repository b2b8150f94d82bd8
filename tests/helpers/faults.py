"""Fault injection on the real console scripts: SIGKILL at a trigger, delete inputs mid-run, seeded kill points.

Command lines are lists `[console-script name, *args]`, as `run_cli` takes them; triggers poll the file system,
which is more deterministic on a loaded machine than a timer.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from helpers.cli import BIN, run_cli
from helpers.files import assert_readable, count_visible
from helpers.preloaded import PreloadedProcess, runs_preloaded, start_preloaded

KILLED = -signal.SIGKILL
POLL_S = 0.0005  # how often a trigger is polled: the wait is for another process to reach a state, not a timing
# kill triggers (at least N files, a stage's file) tolerate a late poll; a tighter loop would only take CPU from the job
KILL_POLL_S = 0.002


def _command(argv: list) -> list[str]:
    return [str(BIN / str(argv[0])), *map(str, argv[1:])]


def run_until(
    argv: list,
    trigger: Callable[[], bool],
    log: Path,
    timeout: float = 120,
    group: bool = False,
    signum: int = signal.SIGKILL,
) -> int:
    """Start `argv` (stderr appended to `log`); send it `signum` (SIGKILL) the moment `trigger()` is true. Returns
    the exit status (-9 when killed). `group`: start it in its own process group and signal the whole group, as a
    scheduler or the OOM killer ends a job and its workers, and the group of each of its child processes too
    (torchrun starts every worker in a session of its own, and a scheduler ends those with the job)."""
    process = _start(argv, log, group)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if trigger():
            if group:
                for child in child_pids(process.pid):
                    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                        os.killpg(child, signum)
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
            break
        time.sleep(KILL_POLL_S)
    return process.wait(timeout=timeout)


def _start(argv: list, log: Path, group: bool) -> subprocess.Popen | PreloadedProcess:
    """`argv` started with stdout discarded and stderr appended to `log` (in a new session when `group`): in a child
    of the preloaded server where helpers.preloaded runs it, else in a fresh interpreter."""
    name, args = str(argv[0]), [str(arg) for arg in argv[1:]]
    if runs_preloaded(name, None):
        process = start_preloaded(BIN, name, args, stderr=log, append=True, new_session=group)
        if process is not None:
            return process
    with open(log, "ab") as stderr:
        return subprocess.Popen(_command(argv), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=group)


def child_pids(pid: int) -> list[int]:
    """The process ids of the children of process `pid` (Linux /proc), those that lead a group of their own."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return [child for child in children if _leads_group(child)]


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def kill_points(low: int, high: int, count: int, seed: int) -> list[int]:
    """`count` distinct seeded values in [low, high], ascending: each kill leaves work for the next run."""
    rng = np.random.default_rng(seed)
    return sorted(int(n) for n in rng.choice(np.arange(low, high + 1), size=count, replace=False))


def kill_and_rerun(
    argv: list, out: Path, triggers: list, log: Path, before_rerun: Callable[[], None] | None = None
) -> subprocess.CompletedProcess:
    """Kill `argv` (in its process group) at each trigger (name, trigger factory), checking after each that
    everything visible in `out` is readable; then (after `before_rerun()`, e.g. damaging a file, when given) finish
    it with the same command, without a traceback. Returns that last, finishing run."""
    for name, make_trigger in triggers:
        status = run_until(argv, make_trigger(), log, timeout=300, group=True)
        assert status == KILLED, (name, status, log.read_text()[-3000:])
        if out.exists():
            assert_readable(out)
    if before_rerun is not None:
        before_rerun()
    final = run_cli(*argv)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))
    return final


class LogProgress:
    """The highest iteration a train.log shows since this object was made (earlier runs' lines are ignored)."""

    def __init__(self, log: Path, pattern: str) -> None:
        self.log, self.pattern = log, re.compile(pattern.encode(), re.MULTILINE)
        self.offset = log.stat().st_size if log.exists() else 0

    def __call__(self) -> int:
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self.offset)
                text = handle.read()
        except FileNotFoundError:
            return 0
        return max((int(m) for m in self.pattern.findall(text)), default=0)


def run_deleting(argv: list, started: Path, doomed: list[Path], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `argv`; delete `doomed` the moment a visible file appears under `started`; return the finished run."""
    process = subprocess.Popen(_command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while count_visible(started) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert process.poll() is None, "the job finished before the files could vanish"
    for path in doomed:
        path.unlink()
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
