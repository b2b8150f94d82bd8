"""Tiny real image files in the GTA5 and Cityscapes layouts, written with Pillow, for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_rgb(path: Path, rng: np.random.Generator, size: tuple[int, int], tint: tuple[int, int, int]) -> None:
    width, height = size
    noise = rng.integers(0, 60, size=(height, width, 3))
    image = np.clip(noise + np.array(tint), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@pytest.fixture
def tiny_gta5(tmp_path: Path) -> Path:
    """ROOT/images/NNNNN.png (48x27, GTA5's aspect) with palette labels beside: three images."""
    root = tmp_path / "gta5"
    rng = np.random.default_rng(1)
    for i in range(1, 4):
        _write_rgb(root / "images" / f"{i:05d}.png", rng, (48, 27), (150, 90, 40))
        label = Image.fromarray(rng.integers(0, 34, size=(27, 48), dtype=np.uint8), mode="L").convert("P")
        (root / "labels").mkdir(parents=True, exist_ok=True)
        label.save(root / "labels" / f"{i:05d}.png")
    return root


@pytest.fixture
def tiny_cityscapes(tmp_path: Path) -> Path:
    """ROOT/leftImg8bit/train/{city}/*_leftImg8bit.png (64x32, 2:1) in two cities; labels are not needed."""
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(2)
    for city in ("aachen", "bochum"):
        for frame in range(2):
            stem = f"{city}_000000_{frame:06d}"
            _write_rgb(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", rng, (64, 32), (60, 110, 90))
    return root
