"""Timing and memory primitives: timed runs after warm-up, latency percentiles, rates, peak resident memory.

Every figure of the report is built from these, so that a rate is always `count / seconds` of the same runs the
percentiles come from, and peak memory is read the same way everywhere.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class RunPolicy:
    """How many times to run one measurement point: warm-up runs (untimed), then timed runs until at least
    `min_runs` are done and `min_seconds` have passed, stopping at `max_runs`."""

    warmup: int = 1
    min_runs: int = 3
    min_seconds: float = 1.0
    max_runs: int = 50


def percentiles(values: Sequence[float], qs: Sequence[int] = PERCENTILES) -> dict[str, float]:
    """{"p50": ..., "p90": ..., "p99": ...} by linear interpolation between order statistics (numpy's default).

    With few values the high percentiles sit between the largest ones; they never exceed the maximum.
    """
    if not values:
        raise ValueError("percentiles of an empty list")
    points = np.percentile(np.asarray(values, dtype=np.float64), list(qs))
    return {f"p{q}": float(v) for q, v in zip(qs, points, strict=True)}


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Latency of each timed run in milliseconds: p50/p90/p99, mean, min, max."""
    ms = [1000.0 * s for s in seconds]
    return {**percentiles(ms), "mean": float(np.mean(ms)), "min": float(min(ms)), "max": float(max(ms))}


def rate(count: float, seconds: float) -> float:
    """count / seconds (items per second); NaN for a zero or negative duration."""
    return count / seconds if seconds > 0 else math.nan


def time_runs(fn: Callable[[], object], policy: RunPolicy) -> list[float]:
    """Call `fn` `policy.warmup` times untimed, then time calls per `policy`; returns each timed call's seconds."""
    for _ in range(policy.warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < policy.max_runs and (
        len(times) < policy.min_runs or time.perf_counter() - started < policy.min_seconds
    ):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class StreamTiming:
    """One timed stream of batches: each batch's latency (handed in -> output out) and the wall time of all."""

    latencies: list[float]
    seconds: float


def time_stream(stream: Callable[[Iterable], Iterable], batch: object, policy: RunPolicy) -> StreamTiming:
    """Push copies of `batch` through `stream` (a backend's infer_many): `policy.warmup` untimed, then as many as
    `policy` asks for, timed as batch-translate runs them: a backend may keep several batches in flight, so the
    rate comes from the wall time of the whole stream and each latency from when its batch was handed over.
    """
    for _ in stream(itertools.repeat(batch, policy.warmup)):
        pass
    handed: list[float] = []
    started = time.perf_counter()

    def batches() -> Iterator[object]:
        while len(handed) < policy.max_runs and (
            len(handed) < policy.min_runs or time.perf_counter() - started < policy.min_seconds
        ):
            handed.append(time.perf_counter())
            yield batch

    latencies = [time.perf_counter() - handed[index] for index, _ in enumerate(stream(batches()))]
    return StreamTiming(latencies, time.perf_counter() - started)


class PeakRss:
    """Peak resident memory of this process since the last `reset()`, in bytes.

    Linux keeps the high-water mark in /proc/self/status (VmHWM) and resets it when "5" is written to
    /proc/self/clear_refs, so each stage gets its own peak. Where that is not possible the peak is the process's
    lifetime maximum (ru_maxrss) and `resettable` is False; the report says which.
    """

    _STATUS = Path("/proc/self/status")
    _CLEAR = Path("/proc/self/clear_refs")

    def __init__(self) -> None:
        self.resettable = self._try_reset()

    def reset(self) -> None:
        if self.resettable:
            self._try_reset()

    def read(self) -> int:
        try:
            match = re.search(r"^VmHWM:\s+(\d+)\s+kB", self._STATUS.read_text(), re.MULTILINE)
        except OSError:
            match = None
        if match:
            return int(match.group(1)) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux

    def _try_reset(self) -> bool:
        try:
            self._CLEAR.write_text("5")
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: exit status, wall seconds, its own peak resident memory, its output."""

    returncode: int
    seconds: float
    peak_rss_bytes: int
    peak_rss_method: str
    stdout: str
    stderr: str


# Run in the child before its real work: at exit, write the process's VmHWM (kB) to $BENCH_PEAK_FILE.
_PEAK_HOOK = """
import atexit as _atexit, os as _os, re as _re
def _bench_write_peak():
    _status = open('/proc/self/status').read()
    _match = _re.search(r'^VmHWM:\\s+(\\d+)\\s+kB', _status, _re.MULTILINE)
    if _match:
        with open(_os.environ['BENCH_PEAK_FILE'], 'w') as _out:
            _out.write(_match.group(1))
_atexit.register(_bench_write_peak)
"""


def python_entry_command(entry: str, *args: object) -> list[str]:
    """What a console script `entry = "module:function"` runs (`sys.exit(function())`), peak-memory hook first."""
    module, function = entry.split(":")
    code = f"import sys\nfrom {module} import {function}\nsys.argv[0] = {function!r}\nsys.exit({function}())"
    return [sys.executable, "-c", _PEAK_HOOK + code, *map(str, args)]


def python_code_command(code: str) -> list[str]:
    """`python -c CODE` with the peak-memory hook installed first."""
    return [sys.executable, "-c", _PEAK_HOOK + code]


def run_child(command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> ChildRun:
    """Run `command` to completion and measure it: wall time and the child's own peak resident memory.

    The peak is the VmHWM the child reports at exit when it was started through `python_entry_command` or
    `python_code_command`. Otherwise it is the child's ru_maxrss from os.wait4, which on Linux also counts the
    parent's resident memory at fork time (exec keeps the old high-water mark), so it overstates a small child
    of a large parent; `peak_rss_method` says which. Output goes through files, so a chatty child never blocks.
    """
    import tempfile

    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as scratch,
    ):
        peak_file = Path(scratch) / "peak"
        child_env = {**(os.environ if env is None else env), "BENCH_PEAK_FILE": str(peak_file)}
        start = time.perf_counter()
        process = subprocess.Popen(list(map(str, command)), stdout=out, stderr=err, env=child_env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        try:
            peak, method = int(peak_file.read_text()) * 1024, "VmHWM at exit"
        except (OSError, ValueError):
            peak, method = usage.ru_maxrss * 1024, "ru_maxrss (wait4; includes the parent's RSS at fork)"
        return ChildRun(process.returncode, seconds, peak, method, out.read(), err.read())
