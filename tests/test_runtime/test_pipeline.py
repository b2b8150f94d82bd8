"""EngineFeed: outputs paired with their batches when the engine pulls ahead, producer time kept out of engine time,
producer errors raised unwrapped after the engine drains. Time is a FakeClock that the stubs advance: no sleeps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pytest

from helpers import FakeClock
from uda_trt.runtime.pipeline import EngineFeed, batched, prefetch


class PullAheadEngine:
    """Pulls batch n+1 before returning batch n, as the two-stream TensorRT runner does; output = input + 1.
    Each batch takes `delay_s` on `clock` (none given: no time passes)."""

    def __init__(self, delay_s: float = 0.0, clock: FakeClock | None = None) -> None:
        self.delay_s = delay_s
        self.clock = clock
        self.pulled: list[int] = []

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        source = iter(batches)
        current = next(source, None)
        while current is not None:
            upcoming = next(source, None)
            self.pulled.append(len(self.pulled))
            if self.clock is not None:
                self.clock.advance(self.delay_s)
            yield {"out": current + 1}
            current = upcoming


def _batches(count: int, size: int) -> list[list[int]]:
    return list(batched(range(count), size))


def test_each_output_is_paired_with_its_own_batch_when_the_engine_pulls_ahead() -> None:
    feed = EngineFeed(PullAheadEngine(), _batches(10, 3), lambda batch: np.array(batch))
    pairs = list(feed)
    assert [batch for batch, _ in pairs] == _batches(10, 3)
    for batch, outputs in pairs:
        np.testing.assert_array_equal(outputs["out"], np.array(batch) + 1)
    assert feed.oldest_in_flight is None


def test_engine_seconds_leave_out_the_time_spent_producing_batches() -> None:
    clock = FakeClock()

    def slow_images(batch: list[int]) -> np.ndarray:
        clock.advance(0.1)
        return np.array(batch)

    feed = EngineFeed(PullAheadEngine(delay_s=0.02, clock=clock), _batches(4, 1), slow_images, clock=clock)
    started = clock()
    list(feed)
    wall = clock() - started
    assert wall == pytest.approx(4 * 0.1 + 4 * 0.02)  # four productions of 0.1 s each happened inside the loop
    assert feed.engine_seconds == pytest.approx(4 * 0.02)  # the 4 x 0.02 s in the engine, none of the production


def test_a_producer_error_comes_out_unwrapped_after_the_batches_already_in_the_engine() -> None:
    def batches() -> Iterator[list[int]]:
        yield [0]
        yield [1]
        raise KeyError("broken sample")

    feed = EngineFeed(PullAheadEngine(), batches(), lambda batch: np.array(batch))
    seen = []
    with pytest.raises(KeyError, match="broken sample"):
        for batch, _ in feed:
            seen.append(batch)
    assert seen == [[0], [1]]


def test_an_engine_error_leaves_the_failing_batch_as_the_oldest_in_flight() -> None:
    class FailsOnSecond:
        def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
            for index, batch in enumerate(batches):
                if index == 1:
                    raise RuntimeError("engine fault")
                yield {"out": batch}

    feed = EngineFeed(FailsOnSecond(), _batches(5, 2), lambda batch: np.array(batch))
    with pytest.raises(RuntimeError, match="engine fault"):
        list(feed)
    assert feed.oldest_in_flight == [2, 3]


def test_prefetch_keeps_order_and_bounds_the_work_submitted_ahead() -> None:
    from concurrent.futures import ThreadPoolExecutor

    submitted: list[int] = []

    def work(item: int) -> int:
        submitted.append(item)
        return item * item

    with ThreadPoolExecutor(2) as pool:
        futures = prefetch(pool, work, range(20), depth=3)
        first = next(futures).result()
        assert first == 0
        assert len(submitted) <= 3
        rest = [f.result() for f in futures]
    assert [first, *rest] == [i * i for i in range(20)]
