"""train-segmenter's options: click types and ranges refuse a bad value in one line (exit 2) before torch is imported,
in train-cyclegan's style, and --help shows every option's meaning and range."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers import BIN, assert_user_error, run_cli, write_gta5


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A valid dataset, so that only the value under test is wrong."""
    return write_gta5(tmp_path_factory.mktemp("gta5") / "gta5", count=2)


def run_profiling_imports(*args: object) -> subprocess.CompletedProcess:
    """train-segmenter with Python's import profile on stderr (`import time: ... | module` per import)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    command = [str(BIN / "train-segmenter"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--batch-size", 0),
        ("--iterations", 0),
        ("--scale", 0),
        ("--lr", 0),
        ("--weight-decay", -1e-4),
        ("--val-fraction", 1),
        ("--val-every", 0),
        ("--precise-bn-batches", -1),
        ("--workers", -1),
        ("--save-every", 0),
        ("--log-every", 0),
        ("--crop-size", "0x8"),
    ],
)
def test_a_bad_value_is_refused_by_click_before_torch_is_imported(data, tmp_path, flag, value):
    result = run_profiling_imports("--data", data, "--output", tmp_path / "out", flag, value)
    assert_user_error(result, names=f"Invalid value for '{flag}'")
    imported = re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, re.MULTILINE)
    assert "click" in imported and "torch" not in imported  # the profile works, and torch was never loaded
    assert not (tmp_path / "out").exists()


def test_help_gives_every_option_a_meaning_and_its_range():
    text = " ".join(run_cli("train-segmenter", "--help", timeout=60).stdout.split())
    for flag, shown in (
        ("--batch-size", "x>=1"),
        ("--iterations", "x>=1"),
        ("--scale", "x>0"),
        ("--lr", "x>0"),
        ("--weight-decay", "x>=0"),
        ("--val-fraction", "0<=x<1"),
        ("--workers", "x>=0"),
    ):
        start = text.index(f" {flag} ")
        entry = text[start : text.index(" --", start + 1)]  # the option's line(s), up to the next option
        assert shown in entry and len(entry) > 60, entry  # its range, and a sentence saying what it is
