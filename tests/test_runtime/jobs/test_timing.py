"""runtime.jobs.timing: the stage timer, driven by an injected clock."""

from __future__ import annotations

import pytest

from helpers import FakeClock
from uda_trt.runtime.jobs.timing import StageTimer


def test_stages_are_timed_in_order_and_announced():
    clock, heard = FakeClock(), []
    timer = StageTimer(total_stages=2, announce=heard.append, clock=clock)
    with timer.stage("data"):
        clock.advance(1.5)
    clock.advance(10)
    with timer.stage("train"):
        clock.advance(2.25)
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
