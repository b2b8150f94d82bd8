"""Processes a test started, found by a marker in their environment (e.g. `RAY_TMPDIR=...`): every process a
command starts inherits it, whatever its process title becomes, so a test can prove none outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """Pids of this user's processes (not this one) whose environment holds `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):  # gone, or not ours
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def processes_left(marker: str, wait_s: float = 20.0) -> list[int]:
    """Processes holding `marker` still running after up to `wait_s` seconds; each is killed (by pid), so a failing
    test leaves none behind."""
    deadline = time.monotonic() + wait_s
    while (pids := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
