"""Synthetic GTA5-like and Cityscapes-like datasets on disk, in the real layouts (docs/contracts.md).

Scenes come from `runtime.synthetic.scene` and are coloured by `runtime.synthetic.style`: the source (GTA5 layout)
and target (Cityscapes layout) share the scene generator and differ in appearance and aspect ratio. Every image has
its own seed derived from (seed, stream, index) with numpy's SeedSequence, so the GTA5, Cityscapes-train and
Cityscapes-val streams never share a scene, and the same seed gives byte-identical files on any worker count.
Files are written to a hidden `.NAME.partial` and renamed, so an interrupted run never leaves half a file and a rerun
only writes what is missing.
"""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from uda_trt.runtime.jobs.files import atomic_write_bytes
from uda_trt.runtime.synthetic.scene import draw_scene
from uda_trt.runtime.synthetic.style import SOURCE_STYLE, STYLES, TARGET_STYLE, apply_style

__all__ = [
    "Item",
    "image_seeds",
    "generate",
    "plan",
    "pending",
    "write_item",
    "run_items",
    "PRESETS",
    "CITIES",
    "LABEL_ID_COLOURS",
]

PRESETS: dict[str, dict[str, tuple[int, int]]] = {
    "demo": {"gta5": (160, 88), "cityscapes": (160, 80)},
    "full": {"gta5": (1914, 1052), "cityscapes": (2048, 1024)},
}
CITIES = {
    "train": ("aachen", "bochum", "bremen"),
    "val": ("frankfurt", "lindau", "munster"),
    "test": ("berlin", "bielefeld", "bonn"),
}
_STREAMS = {("gta5", "train"): 1, ("cityscapes", "train"): 2, ("cityscapes", "val"): 3, ("cityscapes", "test"): 4}

# Cityscapes colours of all label IDs 0..33 (cityscapesscripts helpers/labels.py), for palettes and _color.png.
LABEL_ID_COLOURS = np.zeros((256, 3), np.uint8)
LABEL_ID_COLOURS[:34] = [
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (111, 74, 0),
    (81, 0, 81),
    (128, 64, 128),
    (244, 35, 232),
    (250, 170, 160),
    (230, 150, 140),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (180, 165, 180),
    (150, 100, 100),
    (150, 120, 90),
    (153, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 0, 90),
    (0, 0, 110),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
]


@dataclass(frozen=True)
class Item:
    """One image to write: where, how big, in which style, from which seed."""

    layout: str  # "gta5" | "cityscapes"
    root: Path
    relative: str  # GTA5: "00001"; Cityscapes: "{split}/{city}/{city}_{seq:06d}_{frame:06d}"
    size: tuple[int, int]  # (width, height)
    scene_seed: int
    style_seed: int

    def outputs(self) -> list[Path]:
        if self.layout == "gta5":
            return [self.root / "images" / f"{self.relative}.png", self.root / "labels" / f"{self.relative}.png"]
        stem = self.relative
        return [self.root / "leftImg8bit" / f"{stem}_leftImg8bit.png"] + [
            self.root / "gtFine" / f"{stem}_gtFine_{kind}.png" for kind in ("labelIds", "instanceIds", "color")
        ]


def image_seeds(seed: int, layout: str, split: str, index: int) -> tuple[int, int]:
    """(scene seed, style seed) of image `index` of a stream: independent for every (seed, layout, split, index)."""
    state = np.random.SeedSequence(seed, spawn_key=(_STREAMS[(layout, split)], index)).generate_state(2, np.uint64)
    return int(state[0]), int(state[1])


def plan(root: Path, layout: str, count: int, size: tuple[int, int], seed: int, split: str = "train") -> list[Item]:
    """The items of one dataset: GTA5 numbered from 00001; Cityscapes spread over the split's cities in blocks."""
    if (layout, split) not in _STREAMS:
        raise ValueError(f"no synthetic stream for layout {layout!r}, split {split!r}")
    items = []
    for index in range(count):
        if layout == "gta5":
            relative = f"{index + 1:05d}"
        else:
            cities = CITIES[split]
            city_index = index * len(cities) // count
            first = -(-city_index * count // len(cities))  # first index of this city's block
            city = cities[city_index]
            relative = f"{split}/{city}/{city}_{index - first:06d}_000019"
        items.append(Item(layout, Path(root), relative, size, *image_seeds(seed, layout, split, index)))
    return items


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def _palette_png(label_ids: np.ndarray) -> bytes:
    """A "P"-mode PNG whose indices are the label IDs and whose palette is the Cityscapes colours (GTA5 style)."""
    image = Image.fromarray(label_ids, mode="P")
    image.putpalette(LABEL_ID_COLOURS.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_item(item: Item) -> None:
    """Render one item and write its files (image last: a present image means its labels are there too)."""
    scene = draw_scene(item.scene_seed, item.size)
    style = SOURCE_STYLE if item.layout == "gta5" else TARGET_STYLE
    rgb = apply_style(scene.label_ids, style, np.random.default_rng(item.style_seed), scene.material, scene.tone)
    outputs = item.outputs()
    if item.layout == "gta5":
        atomic_write_bytes(outputs[1], _palette_png(scene.label_ids))
    else:
        atomic_write_bytes(outputs[1], _png(scene.label_ids))
        atomic_write_bytes(outputs[2], _png(scene.instance_ids.astype(np.uint16)))
        atomic_write_bytes(outputs[3], _png(LABEL_ID_COLOURS[scene.label_ids][..., ::-1]))
    atomic_write_bytes(outputs[0], _png(rgb[..., ::-1]))


def pending(items: list[Item]) -> list[Item]:
    """The items with a file missing (files appear only complete, so present ones are done)."""
    return [item for item in items if not all(path.exists() for path in item.outputs())]


def _leave_interrupts_to_the_parent() -> None:
    """Worker processes ignore Ctrl-C (the terminal sends it to the whole process group): the parent stops the
    pool, and the images being written finish whole instead of each worker printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_items(todo: list[Item], workers: int = 1, progress: Callable[[int], None] | None = None) -> None:
    """Write the items on `workers` processes; output bytes do not depend on the worker count."""
    results: Iterator[None]
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers, initializer=_leave_interrupts_to_the_parent) as pool:
            results = pool.map(write_item, todo, chunksize=max(1, min(16, len(todo) // (4 * workers))))
            try:
                for _ in results:
                    if progress:
                        progress(1)
            except KeyboardInterrupt:  # stop at once: drop the queued images (a rerun completes the data)
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    else:
        for item in todo:
            write_item(item)
            if progress:
                progress(1)


def generate(
    root: Path,
    layout: str,
    count: int,
    size: tuple[int, int],
    seed: int,
    split: str = "train",
    workers: int = 1,
) -> list[Path]:
    """Write `count` synthetic images in `layout` ("gta5" source style, "cityscapes" target style) under `root`.

    Returns the image paths. Existing complete items are kept (same seed -> same bytes), so reruns are cheap.
    """
    if layout not in STYLES:
        raise ValueError(f"layout must be 'gta5' or 'cityscapes', not {layout!r}")
    items = plan(root, layout, count, size, seed, split)
    run_items(pending(items), workers)
    return [item.outputs()[0] for item in items]
