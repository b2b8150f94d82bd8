"""One stage timer for every job: wall seconds per named stage, in the order the stages ran."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StageTimer:
    """Times `with timer.stage(name):` blocks; `announce(message)` (if given) hears each start and end.

    `clock` is injectable so tests can drive time; `seconds` keeps each finished stage's duration and
    `total()` the time since the timer was made. A stage that raises is not recorded.
    """

    def __init__(
        self,
        total_stages: int | None = None,
        announce: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total_stages = total_stages
        self.announce = announce
        self.clock = clock
        self.started = clock()
        self.seconds: dict[str, float] = {}
        self._started_stages = 0

    def total(self) -> float:
        """Seconds since the timer was made."""
        return self.clock() - self.started

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._started_stages += 1
        label = f"stage {name}" if self.total_stages is None else f"[{self._started_stages}/{self.total_stages}] {name}"
        if self.announce:
            self.announce(f"{label} ...")
        start = self.clock()
        yield
        self.seconds[name] = self.clock() - start
        if self.announce:
            self.announce(f"{label}: {self.seconds[name]:.1f} s (total {self.total():.0f} s)")
