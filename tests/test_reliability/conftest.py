"""Fixtures for the reliability tests: tiny synthetic datasets (made once by the real make-synthetic) and checks
that a folder holds nothing a reader would choke on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.imageio import read_rgb

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """make-synthetic output: gta5/ (120 images, 96x54) and cityscapes/ (val: 40 images, 96x48); never modified."""
    root = tmp_path_factory.mktemp("synthetic")
    subprocess.run(
        [
            str(BIN / "make-synthetic"),
            "--out",
            str(root),
            "--gta5-count",
            "120",
            "--cityscapes-train",
            "0",
            "--cityscapes-val",
            "40",
            "--gta5-size",
            "96x54",
            "--cityscapes-size",
            "96x48",
            "--workers",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture
def gta5_copy(synthetic, tmp_path) -> Path:
    """A private copy of the synthetic GTA5 dataset that a test may damage."""
    return Path(shutil.copytree(synthetic / "gta5", tmp_path / "gta5"))


def visible_files(root: Path) -> dict[str, bytes]:
    """Every file a reader would pick up (no hidden file or folder), relative path -> bytes."""
    found = {}
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[relative.as_posix()] = path.read_bytes()
    return found


def assert_nothing_partial(root: Path) -> None:
    """Every visible image under `root` decodes and every visible JSON file parses."""
    for relative, data in visible_files(root).items():
        if relative.endswith(".png") or relative.endswith(".jpg"):
            read_rgb(Path(root) / relative)  # raises SampleError when truncated
        elif relative.endswith(".json"):
            json.loads(data)


@pytest.fixture
def files():
    """`visible_files` as a fixture."""
    return visible_files


@pytest.fixture
def nothing_partial():
    """`assert_nothing_partial` as a fixture."""
    return assert_nothing_partial


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` except those under `skip`: relative path -> (size, mtime), symlinks not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip or skip in path.parents:
                continue
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def untouched():
    """Call with (root, output folder) before a run, then call the result after it: fails when anything outside
    the output folder was created, changed or removed."""

    def start(root: Path, output: Path):
        before = snapshot(root, output)
        return lambda: _same(before, snapshot(root, output))

    return start


def _same(before: dict, after: dict) -> None:
    created = sorted(set(after) - set(before))
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not created and not changed, (created, changed)


@pytest.fixture(scope="module")
def cli_module():
    """The root conftest's `cli` helper, for module-scoped fixtures."""
    return _run_cli


def _run_cli(name: str, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
