"""Fixtures for runtime tests: tiny datasets written to disk in the real layouts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

# Label IDs a ground truth may hold: the evaluated ones plus void/ignore-in-eval ones (0..6, 9, 10, 14..16, 18, 29, 30).
EVAL_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
VOID_LABEL_IDS = (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30)


def write_gray_png(path: Path, array: np.ndarray) -> None:
    """An 8-bit grayscale PNG written by Pillow, as the Cityscapes scripts write labelIds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def make_cityscapes() -> Callable[..., dict[str, np.ndarray]]:
    """Write a tiny Cityscapes-layout tree; return {stem: label-ID ground truth}.

    `cities` maps city -> image count; `gt_label_ids` are the IDs drawn for the ground truth (void ones included).
    """

    def make(
        root: Path,
        split: str = "val",
        cities: dict[str, int] | None = None,
        size: tuple[int, int] = (64, 32),
        gt_label_ids: tuple[int, ...] = EVAL_LABEL_IDS + VOID_LABEL_IDS,
        seed: int = 0,
        images: bool = True,
    ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        width, height = size
        truth: dict[str, np.ndarray] = {}
        for city, count in (cities or {"aachen": 1, "bremen": 1}).items():
            for index in range(count):
                stem = f"{city}_{index:06d}_{19 + index:06d}"
                # blocky ground truth (8x8 cells) so predictions copied from it have realistic regions
                cells = rng.choice(np.array(gt_label_ids, dtype=np.uint8), size=(height // 8 + 1, width // 8 + 1))
                gt = np.kron(cells, np.ones((8, 8), dtype=np.uint8))[:height, :width]
                write_gray_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", gt)
                if images:
                    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                    write_rgb_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb)
                truth[stem] = gt
        return truth

    return make
