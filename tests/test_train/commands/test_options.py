"""The options both trainer commands share (train.commands.options): `--workers` as the one documented name for
data-loading workers, the hidden old `--num-workers`, help text on every option, `--threads` as torch's threads."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from helpers import run_cli
from uda_trt.train.commands import train_cyclegan, train_segmenter
from uda_trt.train.commands.options import resolve_workers, workers_options

COMMANDS = {"train-cyclegan": train_cyclegan.main, "train-segmenter": train_segmenter.main}
REQUIRED = {
    "train-cyclegan": ["--source", "a", "--target", "b", "--output", "c"],
    "train-segmenter": ["--data", "d", "--output", "c"],
}


@click.command()
@workers_options
def workers_probe(**options) -> None:
    """Prints the worker count the two spellings resolve to."""
    resolve_workers(options)
    click.echo(options["num_workers"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "2"),
        (["--workers", "3"], "3"),
        (["--num-workers", "3"], "3"),
        (["--workers", "3", "--num-workers", "3"], "3"),
    ],
)
def test_workers_and_its_old_name_set_one_parameter(args, expected):
    result = CliRunner().invoke(workers_probe, args)
    assert result.exit_code == 0 and result.output.strip() == expected, result.output


def test_workers_and_num_workers_with_different_values_are_refused():
    result = CliRunner().invoke(workers_probe, ["--workers", "1", "--num-workers", "2"])
    assert result.exit_code == 2 and "--workers 1 and --num-workers 2 disagree" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_workers_not_num_workers_and_text_for_every_option(name, tmp_path):
    command = COMMANDS[name]
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert undocumented == []
    assert [p.opts for p in command.params if getattr(p, "hidden", False)] == [["--num-workers"]]

    shown = run_cli(name, "--help", timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "--workers" in shown.stdout and "--num-workers" not in shown.stdout
    assert "processes" in " ".join(shown.stdout.split())  # DataLoader workers are processes, unlike runtime's threads
    required = [tmp_path / arg if not arg.startswith("-") else arg for arg in REQUIRED[name]]
    refused = run_cli(name, *required, "--workers", 1, "--num-workers", 2, timeout=60)
    assert refused.returncode == 2 and "--num-workers 2 disagree" in refused.stderr, refused.stderr


def test_threads_says_torch_intra_op_threads():
    shown = " ".join(run_cli("train-cyclegan", "--help", timeout=60).stdout.split())
    assert "Torch intra-op threads" in shown
