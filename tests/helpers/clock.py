"""A clock that moves only when told to, for timing assertions that must not depend on the machine's load."""

from __future__ import annotations


class FakeClock:
    """Callable like `time.perf_counter`; returns `now`, which only `advance` changes.

    Code under test takes it as its `clock`; stubs stand for slow work by advancing it, so elapsed times are exact.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds
