"""runtime.jobs.timing: the stage timer, driven by an injected clock."""

from __future__ import annotations

import pytest

from uda_trt.runtime.jobs.timing import StageTimer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stages_are_timed_in_order_and_announced():
    clock, heard = FakeClock(), []
    timer = StageTimer(total_stages=2, announce=heard.append, clock=clock)
    with timer.stage("data"):
        clock.now += 1.5
    clock.now += 10
    with timer.stage("train"):
        clock.now += 2.25
    assert list(timer.seconds.items()) == [("data", 1.5), ("train", 2.25)]
    assert timer.total() == pytest.approx(13.75)
    assert heard == [
        "[1/2] data ...",
        "[1/2] data: 1.5 s (total 2 s)",
        "[2/2] train ...",
        "[2/2] train: 2.2 s (total 14 s)",
    ]


def test_a_failed_stage_is_not_recorded():
    timer = StageTimer(clock=FakeClock())
    with pytest.raises(ValueError), timer.stage("broken"):
        raise ValueError
    assert timer.seconds == {}
