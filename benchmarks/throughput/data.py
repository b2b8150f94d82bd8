"""Synthetic benchmark datasets in the real layouts (runtime.synthetic), made once and reused by later runs.

Generation is deterministic per seed, so a kept dataset is the same bytes a fresh one would be. Smaller sets that
must be exact prefixes of a larger one (the compute-bound images, the 200-image memory run) are hard links to the
larger set's files, not copies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from benchmarks.throughput.codec import available_workers
from runtime import synthetic


def default_generation_workers() -> int:
    """Processes for rendering scenes: every available core, at most 8."""
    return max(1, min(available_workers(), 8))


def gta5(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`root/images/NNNNN.png` + `root/labels/NNNNN.png`, `count` synthetic GTA5-style scenes at size (w, h)."""
    return synthetic.generate(Path(root), "gta5", count, size, seed, workers=default_generation_workers())


def cityscapes_val(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`count` Cityscapes-style val images with gtFine labelIds / instanceIds / color at size (w, h)."""
    return synthetic.generate(Path(root), "cityscapes", count, size, seed, "val", default_generation_workers())


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
