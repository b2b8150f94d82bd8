"""Seconds per iteration and an ETA for run-uda's training stages, read from the trainers' own train.log.

The trainers take no progress callback, but both write their iteration into OUTPUT/train.log as they go: CycleGAN
`# start iteration K of N` and `iter N ... sec/iter S` every log_every iterations, the segmenter `... from iteration K`
and `iteration N: ...` lines. A background thread reads what the file gains while the stage runs, times each new
iteration number with its own clock, and logs `train_cyclegan: ~X s/it, ETA HH:MM` once the first iterations are
done, then again every `every` seconds. The rate spans from the first iteration this process saw to the latest, so a
resumed run is timed on its own iterations and start-up (data listing, model building) is left out.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

TRAIN_LOG = "train.log"
_ITERATION = re.compile(r"(?<![/\w])iter(?:ation)? (\d+)\b")  # not sec/iter


class EtaEstimate:
    """Iteration counts seen at clock times -> seconds per iteration and the seconds left (no I/O, no thread)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.first: tuple[int, float] | None = None  # (iteration, time) of the first observation
        self.latest: tuple[int, float] | None = None

    def observe(self, iteration: int, now: float) -> None:
        if self.first is None:
            self.first = (iteration, now)
        if self.latest is None or iteration > self.latest[0]:
            self.latest = (iteration, now)

    def seconds_per_iteration(self) -> float | None:
        """None until an iteration beyond the first one seen has been timed."""
        if self.first is None or self.latest is None or self.latest[0] <= self.first[0]:
            return None
        return (self.latest[1] - self.first[1]) / (self.latest[0] - self.first[0])

    def seconds_left(self) -> float | None:
        rate = self.seconds_per_iteration()
        return None if rate is None else rate * max(0, self.total - self.latest[0])


def iterations_in(text: str) -> list[int]:
    """The iteration numbers a trainer's train.log text mentions, in order."""
    return [int(match) for match in _ITERATION.findall(text)]


def eta_message(stage: str, estimate: EtaEstimate, now: datetime.datetime) -> str | None:
    """`STAGE: ~X s/it, N of M iterations, ETA HH:MM (in ...)`, or None before there is a rate."""
    rate, left = estimate.seconds_per_iteration(), estimate.seconds_left()
    if rate is None or left is None:
        return None
    finish = now + datetime.timedelta(seconds=left)
    when = finish.strftime("%H:%M" if finish.date() == now.date() else "%Y-%m-%d %H:%M")
    pace = f"{rate:.3g} s/it" if rate >= 0.1 else f"{1 / rate:.3g} it/s" if rate > 0 else "instant"
    return (
        f"{stage}: ~{pace}, {estimate.latest[0]} of {estimate.total} iterations, ETA {when} "
        f"(in {format_duration(left)})"
    )


def format_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 05 min`, `4 d 07 h`: precise enough for an ETA, short enough for one line."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, minutes = divmod(int(minutes), 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


class TrainLogWatcher:
    """Reads what `path` gains after construction and feeds its iteration numbers to an EtaEstimate."""

    def __init__(self, stage: str, path: Path, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.stage, self.path, self.clock = stage, Path(path), clock
        self.estimate = EtaEstimate(total)
        self.offset = self.path.stat().st_size if self.path.exists() else 0  # earlier runs' lines are not timed
        self.pending = ""

    def poll(self) -> None:
        """Read the lines appended since the last poll (whole lines only) and time their iterations now."""
        try:
            with open(self.path, "rb") as file:
                if file.seek(0, 2) < self.offset:  # rewritten from the start (a segmenter's new run truncates it)
                    self.offset, self.pending = 0, ""
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        text = self.pending + data.decode("utf-8", errors="replace")
        text, _, self.pending = text.rpartition("\n")
        now = self.clock()
        for iteration in iterations_in(text):
            self.estimate.observe(iteration, now)


@contextmanager
def logged_eta(
    stage: str, folder: Path, total: int, poll_seconds: float = 2.0, every: float = 1800.0
) -> Iterator[TrainLogWatcher]:
    """While the block runs, log STAGE's rate and ETA from FOLDER/train.log: first as soon as there is a rate, then
    every `every` seconds. The thread only reads; the stage's own work and errors are untouched."""
    watcher = TrainLogWatcher(stage, Path(folder) / TRAIN_LOG, total)
    stop = threading.Event()

    def watch() -> None:
        last_logged: float | None = None
        while not stop.wait(poll_seconds):
            watcher.poll()
            now = time.monotonic()
            if last_logged is not None and now - last_logged < every:
                continue
            message = eta_message(stage, watcher.estimate, datetime.datetime.now())
            if message is not None:
                log.info(message)
                last_logged = now

    thread = threading.Thread(target=watch, name=f"eta-{stage}", daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join()
