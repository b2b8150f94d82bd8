"""Small pieces every command line shares: WIDTHxHEIGHT sizes, comma-separated integer lists, renamed options
(old spellings kept working), logging setup."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

_OLD_SPELLING = "_old_spelling"


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


class _RenamedOption(click.Option):
    """The documented spelling of a renamed option; `required` is checked by `fold_renamed`, once either spelling
    may have given the value."""

    def __init__(self, *args: Any, required_either: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.required_either = required_either


def renamed_option(flag: str, old_flag: str, name: str, **option: Any) -> Callable:
    """`flag` (parameter `name`, documented) plus `old_flag`, its former spelling: hidden from --help, still
    accepted. Call `fold_renamed` on the command's parameters to merge the two."""
    required = option.pop("required", False)

    def decorate(func: Callable) -> Callable:
        hidden = {key: value for key, value in option.items() if key in ("type", "multiple")}
        func = click.option(old_flag, f"{name}{_OLD_SPELLING}", default=None, hidden=True, **hidden)(func)
        return click.option(flag, name, cls=_RenamedOption, required_either=required, **option)(func)

    return decorate


def fold_renamed(options: dict[str, Any]) -> dict[str, Any]:
    """Merge each old spelling of `renamed_option` into its parameter, in place (and return `options`); both
    spellings with different values is a usage error (exit 2), never one silently winning."""
    context = click.get_current_context()
    for key in [key for key in options if key.endswith(_OLD_SPELLING)]:
        old_value, name = options.pop(key), key[: -len(_OLD_SPELLING)]
        if old_value is None:
            continue
        given = context.get_parameter_source(name) is ParameterSource.COMMANDLINE
        if given and options[name] != old_value:
            flags = {param.name: param.opts for param in context.command.params}
            new, old = flags[name][0], flags[key][0]
            raise click.UsageError(
                f"{new} {options[name]} and {old} {old_value} disagree; give {new} only ({old} is its old name)"
            )
        options[name] = old_value
    for param in context.command.params:
        if isinstance(param, _RenamedOption) and param.required_either and options.get(param.name) is None:
            raise click.MissingParameter(ctx=context, param=param)
    return options
