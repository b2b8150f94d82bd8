"""Small pieces every command line shares: the WIDTHxHEIGHT size type and logging setup."""

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


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as `level: message`, one line per event, so a job's warnings read like its errors."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s: %(message)s")
