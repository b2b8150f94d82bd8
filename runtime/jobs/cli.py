"""Small pieces every command line shares: WIDTHxHEIGHT sizes, comma-separated integer lists, logging setup."""

from __future__ import annotations

import logging

import click


class SizeType(click.ParamType):
    """A size written as image tools write it, WIDTHxHEIGHT (e.g. 1024x512), parsed to (width, height)."""

    name = "WIDTHxHEIGHT"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            width, height = (int(part) for part in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not a size; write WIDTHxHEIGHT, e.g. 1024x512", param, ctx)
        if width <= 0 or height <= 0:
            self.fail(f"{value!r}: width and height must be positive", param, ctx)
        return width, height


SIZE = SizeType()


class IntListType(click.ParamType):
    """Comma-separated integers (`0,1,2`), parsed to a tuple; `count` fixes how many, `minimum` bounds each value,
    `distinct` refuses repeats and `ordered` asks for a non-decreasing list (e.g. MIN,OPT,MAX)."""

    def __init__(
        self,
        metavar: str = "N,N,...",
        count: int | None = None,
        minimum: int | None = None,
        distinct: bool = False,
        ordered: bool = False,
    ) -> None:
        self.name = metavar
        self.count, self.minimum, self.distinct, self.ordered = count, minimum, distinct, ordered

    def convert(self, value, param, ctx) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers ({self.name})", param, ctx)
        if not numbers or (self.count is not None and len(numbers) != self.count):
            wanted = f"{self.count} integers" if self.count is not None else "at least one integer"
            self.fail(f"{value!r}: write {wanted} as {self.name}", param, ctx)
        if self.minimum is not None and min(numbers) < self.minimum:
            self.fail(f"{value!r}: every value must be >= {self.minimum}", param, ctx)
        if self.distinct and len(set(numbers)) != len(numbers):
            self.fail(f"{value!r}: values must be distinct", param, ctx)
        if self.ordered and list(numbers) != sorted(numbers):
            self.fail(f"{value!r}: values must not decrease ({self.name})", param, ctx)
        return numbers


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as `level: message`, one line per event, so a job's warnings read like its errors."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s: %(message)s")
