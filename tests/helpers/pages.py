"""Checks of a study's pictures and its index page, shared by the run-uda studies' tests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image


def assert_study_pages(out: Path, figures: list[str], arms: list[str]) -> None:
    """Every figure decodes, is figure-sized and not blank; the bar chart and one heatmap per arm are among them;
    index.html shows every figure and links only files of its own folder that exist."""
    assert {"per_class_iou.png", *(f"confusion_{arm}.png" for arm in arms)} <= set(figures), figures
    for name in figures:
        with Image.open(out / name) as figure:
            pixels = np.asarray(figure.convert("RGB"))
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500, name
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{name} looks blank"
    targets = re.findall(r'(?:href|src)="([^"]+)"', (out / "index.html").read_text())
    assert set(figures) <= set(targets)
    assert all("/" not in target and (out / target).is_file() for target in targets), targets
