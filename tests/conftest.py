"""Fixtures shared by every test folder; each one wraps a function of the `helpers` package (tests/helpers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import (
    assert_nothing_partial,
    assert_user_error,
    run_cli,
    visible_files,
    watch_untouched,
    write_invert_translator,
    write_red_over_14_segmenter,
)

# make test runs one pytest-xdist worker per core, so each process (and every CLI it starts, which inherits this)
# computes on one thread: torch's OpenMP threads otherwise spin-wait for a core another process holds, which measured
# 4x the CPU time of a segmenter training test (52 s against 14 s) on 2 cores. Set before any test imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked slow run first, each module's tests still together and in order: pytest-xdist's
    worksteal then ends the run on short tests that any idle worker can take, not on a minute-long one started
    last while the other worker has nothing left to do."""
    has_slow = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in has_slow)


@pytest.fixture(scope="session")
def cli():
    """`helpers.run_cli`: run a console script of this venv as a user runs it."""
    return run_cli


@pytest.fixture
def user_error():
    """`helpers.assert_user_error`: exit 2, no traceback, one `Error` line naming what was wrong."""
    return assert_user_error


@pytest.fixture
def invert_translator(tmp_path) -> Path:
    """STEM.onnx of a 255-minus-input translator (working size 32x16, divisor 4), sidecar beside it."""
    return write_invert_translator(tmp_path / "artifacts")


@pytest.fixture
def red_segmenter(tmp_path) -> Path:
    """STEM.onnx of a segmenter whose labels are red // 14 (train IDs 0..18), sidecar beside it."""
    return write_red_over_14_segmenter(tmp_path / "model")


@pytest.fixture(scope="session")
def shared_invert_translator(tmp_path_factory) -> Path:
    """Like `invert_translator`, made once per session for tests that only read it."""
    return write_invert_translator(tmp_path_factory.mktemp("invert"))


@pytest.fixture(scope="session")
def shared_red_segmenter(tmp_path_factory) -> Path:
    """Like `red_segmenter`, made once per session for tests that only read it."""
    return write_red_over_14_segmenter(tmp_path_factory.mktemp("segmenter"))


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """make-synthetic output: gta5/ (120 images, 96x54) and cityscapes/ (val: 40 images, 96x48); never modified."""
    root = tmp_path_factory.mktemp("synthetic")
    result = run_cli(
        "make-synthetic", "--out", root, "--gta5-count", 120, "--cityscapes-train", 0, "--cityscapes-val", 40,
        "--gta5-size", "96x54", "--cityscapes-size", "96x48", "--workers", 1,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def files():
    """`helpers.visible_files`: every file a reader would pick up, relative path -> bytes."""
    return visible_files


@pytest.fixture
def nothing_partial():
    """`helpers.assert_nothing_partial`: every visible image decodes and every visible JSON parses."""
    return assert_nothing_partial


@pytest.fixture(scope="session")
def untouched():
    """`helpers.watch_untouched`: call with (root, output folder) before a run, then call the result after it;
    fails when anything outside the output folder was created, changed or removed."""
    return watch_untouched
