"""Bounded prefetching over a thread pool: the building block of the batch jobs.

Decoding, resizing and PNG encoding release the GIL in OpenCV and Pillow, so threads overlap them with inference.
Memory stays bounded by `depth`, never by dataset size.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(executor: Executor, fn: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[Future]:
    """Yield futures of `fn(item)` in input order, keeping at most `depth` submitted ahead of the consumer."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class EngineFeed:
    """Batches of items through `Runner.infer_many`, each output paired with the batch it came from.

    `infer_many` pulls batch n+1 while batch n computes (TensorRT overlaps the upload that way), so the work of
    producing a batch (waiting for its decodes) happens inside the engine loop. `engine_seconds` counts only the
    time spent waiting on the engine, not on the producer. An error raised while producing a batch ends the input
    stream; the batches already in the engine are still yielded, then the error is raised as it was.
    `clock` (seconds, monotonic) times both sides; tests pass a fake one to make the split exact.
    """

    def __init__(
        self,
        runner,
        batches: Iterable[list[T]],
        images_of: Callable[[list[T]], object],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.runner = runner
        self.batches = batches
        self.images_of = images_of
        self.clock = clock
        self.engine_seconds = 0.0
        self._producer_seconds = 0.0
        self._in_flight: deque[list[T]] = deque()
        self._producer_error: Exception | None = None

    @property
    def oldest_in_flight(self) -> list[T] | None:
        """The oldest batch handed to the engine and not yet returned: the one an engine error is about."""
        return self._in_flight[0] if self._in_flight else None

    def _inputs(self) -> Iterator[object]:
        source = iter(self.batches)
        while True:
            start = self.clock()
            try:
                batch = next(source, None)
                if batch is not None:
                    images = self.images_of(batch)
            except Exception as exc:  # the producer's error, raised unwrapped once the engine has drained
                self._producer_error = exc
                batch = None
            self._producer_seconds += self.clock() - start
            if batch is None:
                return
            self._in_flight.append(batch)
            yield images

    def __iter__(self) -> Iterator[tuple[list[T], dict]]:
        outputs = self.runner.infer_many(self._inputs())
        while True:
            start, produced_before = self.clock(), self._producer_seconds
            result = next(outputs, None)
            self.engine_seconds += self.clock() - start - (self._producer_seconds - produced_before)
            if result is None:
                break
            yield self._in_flight.popleft(), result
        if self._producer_error is not None:
            raise self._producer_error
