"""runtime.jobs.cli: the command-line types every command shares (sizes, integer lists, renamed options)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from uda_trt.runtime.jobs.cli import SIZE, IntListType, fold_renamed, renamed_option


@click.command()
@click.option("--sizes", type=SIZE)
@click.option("--batch", type=IntListType("MIN,OPT,MAX", count=3, minimum=1, ordered=True))
@click.option("--seeds", type=IntListType("SEED,...", distinct=True))
def echo(sizes, batch, seeds):
    click.echo(repr((sizes, batch, seeds)))


def _run(*args: str):
    return CliRunner().invoke(echo, list(args))


def test_valid_values_parse():
    result = _run("--sizes", "1024x512", "--batch", "1,4,8", "--seeds", "2, 0,1")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "((1024, 512), (1, 4, 8), (2, 0, 1))"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch", "1,x,8"), "not a comma-separated list of integers"),
        (("--batch", "1,4"), "write 3 integers as MIN,OPT,MAX"),
        (("--batch", "0,1,2"), "every value must be >= 1"),
        (("--batch", "4,1,8"), "must not decrease"),
        (("--seeds", "1,1"), "must be distinct"),
        (("--seeds", ","), "at least one integer"),
        (("--sizes", "1024"), "not a size"),
        (("--sizes", "0x5"), "must be positive"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(args, message):
    result = _run(*args)
    assert result.exit_code == 2
    assert args[0] in result.output and message in result.output


@click.command()
@renamed_option("--output", "--out", "output", default="here", help="Output folder.")
def write(**options):
    click.echo(fold_renamed(options)["output"])


@pytest.mark.parametrize(
    ("args", "written"),
    [((), "here"), (("--output", "a"), "a"), (("--out", "b"), "b"), (("--output", "c", "--out", "c"), "c")],
)
def test_a_renamed_option_takes_either_spelling(args, written):
    result = CliRunner().invoke(write, list(args))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == written


def test_a_renamed_option_shows_one_name_and_refuses_disagreeing_spellings():
    help_text = CliRunner().invoke(write, ["--help"]).output
    assert "--output" in help_text and "--out " not in help_text
    result = CliRunner().invoke(write, ["--output", "a", "--out", "b"])
    assert result.exit_code == 2 and "--output a and --out b disagree" in result.output


@click.command()
@renamed_option("--output", "--out", "output", required=True, help="Output folder.")
def write_required(**options):
    click.echo(fold_renamed(options)["output"])


def test_a_required_renamed_option_is_satisfied_by_either_spelling():
    assert CliRunner().invoke(write_required, ["--out", "b"]).output.strip() == "b"
    assert CliRunner().invoke(write_required, ["--output", "a"]).output.strip() == "a"
    missing = CliRunner().invoke(write_required, [])
    assert missing.exit_code == 2 and "Missing option '--output'" in missing.output
