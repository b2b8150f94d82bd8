"""Synthetic GTA5-like and Cityscapes-like street-scene datasets: the data generator behind `make-synthetic`.

Apart from the deployment modules of `uda_trt.runtime`, and torch-free like them. One job per module:
`scene` draws the shared geometry as label maps, `style` colours it as the source or target domain, `writer` plans
and writes the images of one dataset layout, and `datasets` writes both datasets of a study with their manifest.
The names below are the entry points the rest of the code (export parity images, benchmarks, `make-synthetic`) uses.
"""

from __future__ import annotations

from uda_trt.runtime.synthetic.datasets import write_synthetic_datasets
from uda_trt.runtime.synthetic.scene import Scene, draw_scene, render_scene
from uda_trt.runtime.synthetic.style import SOURCE_STYLE, STYLES, TARGET_STYLE, Style, apply_style
from uda_trt.runtime.synthetic.writer import (
    CITIES,
    LABEL_ID_COLOURS,
    PRESETS,
    Item,
    generate,
    image_seeds,
    pending,
    plan,
    run_items,
    write_item,
)

__all__ = [
    "CITIES",
    "LABEL_ID_COLOURS",
    "PRESETS",
    "SOURCE_STYLE",
    "STYLES",
    "TARGET_STYLE",
    "Item",
    "Scene",
    "Style",
    "apply_style",
    "draw_scene",
    "generate",
    "image_seeds",
    "pending",
    "plan",
    "render_scene",
    "run_items",
    "write_item",
    "write_synthetic_datasets",
]
