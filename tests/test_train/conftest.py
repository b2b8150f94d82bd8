"""Tiny real image files in the GTA5 and Cityscapes layouts (helpers.datasets) for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_cityscapes, write_gta5


@pytest.fixture
def tiny_gta5(tmp_path: Path) -> Path:
    """ROOT/images/NNNNN.png (48x27, GTA5's aspect) with palette labels beside: three images."""
    return write_gta5(tmp_path / "gta5", count=3, size=(48, 27), seed=1)


@pytest.fixture
def tiny_cityscapes(tmp_path: Path) -> Path:
    """ROOT/leftImg8bit/train/{city}/*_leftImg8bit.png (64x32, 2:1) in two cities, two images each."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"aachen": 2, "bochum": 2}, size=(64, 32), seed=2, split="train")
    return root
