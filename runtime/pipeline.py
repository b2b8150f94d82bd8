"""Bounded prefetching over a thread pool: the building block of the batch jobs.

Decoding, resizing and PNG encoding release the GIL in OpenCV and Pillow, so threads overlap them with inference.
Memory stays bounded by `depth`, never by dataset size.
"""

from __future__ import annotations

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
