"""runtime.synthetic.style: the GTA5-like and Cityscapes-like appearances, and their documentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uda_trt.runtime.synthetic.scene import draw_scene
from uda_trt.runtime.synthetic.style import SOURCE_STYLE, TARGET_STYLE, apply_style


def test_styles_share_labels_but_not_colours():
    scene = draw_scene(3, (128, 64))
    before = scene.label_ids.copy()
    source = apply_style(scene.label_ids, SOURCE_STYLE, np.random.default_rng(0), scene.material, scene.tone)
    target = apply_style(scene.label_ids, TARGET_STYLE, np.random.default_rng(0), scene.material, scene.tone)
    assert np.array_equal(scene.label_ids, before)  # styling never touches labels
    assert source.shape == target.shape == (64, 128, 3) and source.dtype == np.uint8
    shifted = []
    for label_id in np.unique(scene.label_ids):
        mask = scene.label_ids == label_id
        if mask.sum() >= 20:
            shifted.append(np.linalg.norm(source[mask].mean(0) - target[mask].mean(0)) > 25)
    assert np.mean(shifted) > 0.8  # per-class colours differ between domains
    # source is saturated and clean, target desaturated and noisy
    assert _saturation(source) > 1.5 * _saturation(target)
    assert _high_freq(target[scene.label_ids == 23]) > _high_freq(source[scene.label_ids == 23])


def _saturation(rgb: np.ndarray) -> float:
    return float((rgb.max(-1).astype(float) - rgb.min(-1)).mean())


def _high_freq(pixels: np.ndarray) -> float:
    return float(np.abs(np.diff(pixels.astype(float), axis=0)).mean())


def test_docs_state_the_style_parameters_in_use():
    """docs/synthetic-data.md documents the frozen styles: every value there is the value in the code."""
    from dataclasses import fields

    doc = (Path(__file__).parents[3] / "docs" / "synthetic-data.md").read_text()
    for field in fields(SOURCE_STYLE):
        if field.name in ("name", "class_colors"):
            continue
        row = f"| `{field.name}` | {getattr(SOURCE_STYLE, field.name)} | {getattr(TARGET_STYLE, field.name)} |"
        assert row in doc, row
    target = dict(TARGET_STYLE.class_colors)
    for label_id, colours in SOURCE_STYLE.class_colors:
        cells = [", ".join(str(tuple(c)) for c in cs) for cs in (colours, target[label_id])]
        assert f" | {cells[0]} | {cells[1]} |" in doc, label_id
