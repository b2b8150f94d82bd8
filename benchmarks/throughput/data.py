"""Synthetic benchmark datasets in the real layouts (runtime.synthetic), made once and reused by later runs.

Generation is deterministic per seed, so a kept dataset is the same bytes a fresh one would be. Smaller sets that
must be exact prefixes of a larger one (the compute-bound images, the 200-image memory run) are hard links to the
larger set's files, not copies.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from uda_trt.runtime import synthetic
from uda_trt.runtime.jobs.files import atomic_write_bytes
from uda_trt.runtime.jobs.workers import default_workers


def default_generation_workers() -> int:
    """Processes for rendering scenes: every available core, at most 8."""
    return default_workers(8)


def gta5(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`root/images/NNNNN.png` + `root/labels/NNNNN.png`, `count` synthetic GTA5-style scenes at size (w, h)."""
    return synthetic.generate(Path(root), "gta5", count, size, seed, workers=default_generation_workers())


def cityscapes_ground_truth(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> Path:
    """Only the ground truth of a Cityscapes-layout val split: gtFine labelIds and instanceIds, `count` images.

    Scoring predictions needs nothing else, and without the photos 500 images (the real val split's size) take
    seconds to make. The files are those make-synthetic writes for the same seed.
    """
    items = synthetic.plan(Path(root), "cityscapes", count, size, seed, "val")
    todo = [item for item in items if not all(path.exists() for path in item.outputs()[1:3])]
    workers = default_generation_workers()
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_ground_truth, todo, chunksize=max(1, len(todo) // (4 * workers))))
    else:
        for item in todo:
            _write_ground_truth(item)
    return Path(root)


def _write_ground_truth(item: synthetic.Item) -> None:
    scene = synthetic.draw_scene(item.scene_seed, item.size)
    _, label_path, instance_path, _ = item.outputs()
    for path, array in ((label_path, scene.label_ids), (instance_path, scene.instance_ids.astype(np.uint16))):
        ok, data = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RuntimeError(f"{path}: PNG encoding failed")
        atomic_write_bytes(path, data.tobytes())


def gta5_prefix(source: Path, dest: Path, count: int) -> Path:
    """`dest` holding the first `count` samples of the GTA5-layout `source` (hard links, copies across devices)."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    images = sorted((Path(source) / "images").glob("*.png"))[:count]
    if len(images) < count:
        raise ValueError(f"{source}: has {len(images)} images, fewer than the {count} asked for")
    for image in images:
        for folder in ("images", "labels"):
            src = Path(source) / folder / image.name
            dst = dest / folder / image.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    return dest


def image_paths(root: Path) -> list[Path]:
    """The images of a GTA5-layout root, sorted."""
    return sorted((Path(root) / "images").glob("*.png"))


def label_paths(root: Path) -> list[Path]:
    """The labels of a GTA5-layout root, sorted (same order as `image_paths`)."""
    return sorted((Path(root) / "labels").glob("*.png"))
