"""Both synthetic datasets of a study in one folder: OUT/gta5 (source style) and OUT/cityscapes (target style).

OUT/synthetic.json records the resolved config: a rerun with the same config only writes missing files, a rerun with
another config replaces the two datasets, and any other non-empty folder is refused rather than written into.
Used by `make-synthetic` and by `run-uda`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tqdm import tqdm

from runtime.errors import UserError
from runtime.synthetic import PRESETS, pending, plan, run_items

MANIFEST = "synthetic.json"
GENERATOR = "uda-trt make-synthetic"
FORMAT_VERSION = 1


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))


def _read_manifest(out: Path) -> dict | None:
    """The previous run's manifest, or None when OUT is not a make-synthetic output."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


def _write_manifest(out: Path, manifest: dict) -> None:
    partial = out / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, out / MANIFEST)


def _prepare(out: Path, config: dict) -> None:
    """Refuse a foreign non-empty OUT; clear a previous synthetic output made with another config."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        previous = _read_manifest(out)
        if previous is None:
            raise UserError(f"--out {out}: folder is not empty and is not a make-synthetic output; give a new folder")
        if previous.get("config") != config:
            for name in ("gta5", "cityscapes"):
                shutil.rmtree(out / name, ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create folder ({error.strerror})") from error


def write_synthetic_datasets(
    out: Path,
    gta5_count: int = 600,
    cityscapes_train: int = 600,
    cityscapes_val: int = 100,
    preset: str = "demo",
    gta5_size: tuple[int, int] | None = None,
    cityscapes_size: tuple[int, int] | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> dict:
    """Write (or complete) OUT/gta5 and OUT/cityscapes train/val; return the manifest written to OUT/synthetic.json."""
    sizes = {
        "gta5": gta5_size or PRESETS[preset]["gta5"],
        "cityscapes": cityscapes_size or PRESETS[preset]["cityscapes"],
    }
    config = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "gta5_count": gta5_count,
        "cityscapes_train": cityscapes_train,
        "cityscapes_val": cityscapes_val,
        "gta5_size": list(sizes["gta5"]),
        "cityscapes_size": list(sizes["cityscapes"]),
    }
    _prepare(out, config)
    _write_manifest(out, {"generator": GENERATOR, "config": config, "complete": False})
    items = (
        plan(out / "gta5", "gta5", gta5_count, sizes["gta5"], seed)
        + plan(out / "cityscapes", "cityscapes", cityscapes_train, sizes["cityscapes"], seed, "train")
        + plan(out / "cityscapes", "cityscapes", cityscapes_val, sizes["cityscapes"], seed, "val")
    )
    todo = pending(items)
    start = time.perf_counter()
    with tqdm(total=len(todo), desc="make-synthetic", unit="img", disable=not todo) as bar:
        run_items(todo, workers or _default_workers(), bar.update)
    seconds = time.perf_counter() - start
    manifest = {
        "generator": GENERATOR,
        "config": config,
        "complete": True,
        "images": len(items),
        "written": len(todo),
        "seconds": round(seconds, 3),
    }
    _write_manifest(out, manifest)
    return manifest
