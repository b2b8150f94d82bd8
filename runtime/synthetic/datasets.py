"""Both synthetic datasets of a study in one folder: OUT/gta5 (source style) and OUT/cityscapes (target style).

OUT/synthetic.json records the resolved config: a rerun with the same config only writes missing files, a rerun with
another config replaces the two datasets, and any other non-empty folder is refused rather than written into.
Used by `make-synthetic` and by `run-uda`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import write_json
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.synthetic.writer import PRESETS, pending, plan, run_items

MANIFEST = "synthetic.json"
GENERATOR = "uda-trt make-synthetic"
FORMAT_VERSION = 1
MAX_DEFAULT_WORKERS = 8  # rendering stops scaling there, and each process holds a scene in memory


def _read_manifest(out: Path) -> dict | None:
    """The previous run's manifest, or None when OUT is not a make-synthetic output."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


# Config key -> the make-synthetic option that sets it, for the one-line refusal of a changed rerun.
_FLAGS = {
    "format_version": "the generator version",
    "seed": "--seed",
    "gta5_count": "--gta5-count",
    "cityscapes_train": "--cityscapes-train",
    "cityscapes_val": "--cityscapes-val",
    "gta5_size": "--gta5-size",
    "cityscapes_size": "--cityscapes-size",
}


def _as_options(config: dict) -> dict:
    """`config` with sizes written as on the command line (WIDTHxHEIGHT), for messages."""
    return {
        key: "x".join(map(str, value)) if key.endswith("_size") and isinstance(value, list) else value
        for key, value in config.items()
    }


def _prepare(out: Path, config: dict, overwrite: bool) -> None:
    """Refuse a foreign non-empty OUT, and a rerun with another config unless `overwrite` (which then replaces the
    datasets): datasets made from the old data would silently go stale."""
    if not claim_output_folder(out, marker=MANIFEST, command="make-synthetic", overwrite=overwrite):
        return
    previous = _read_manifest(out)
    if previous is None and not overwrite:
        raise UserError(f"--output: {out / MANIFEST} is not a make-synthetic record; choose an empty folder")
    if previous is not None and previous.get("config") == config:
        return
    if not overwrite:
        before = previous.get("config") if isinstance(previous.get("config"), dict) else {}
        refuse_changed(
            out / MANIFEST,
            _as_options(before),
            _as_options(config),
            _FLAGS,
            "rerun with the same options to complete it, pass --overwrite to replace the datasets, "
            "or choose another --output",
        )
    for name in ("gta5", "cityscapes"):
        shutil.rmtree(out / name, ignore_errors=True)


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
    overwrite: bool = False,
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
    _prepare(out, config, overwrite)
    write_json(out / MANIFEST, {"generator": GENERATOR, "config": config, "complete": False})
    items = (
        plan(out / "gta5", "gta5", gta5_count, sizes["gta5"], seed)
        + plan(out / "cityscapes", "cityscapes", cityscapes_train, sizes["cityscapes"], seed, "train")
        + plan(out / "cityscapes", "cityscapes", cityscapes_val, sizes["cityscapes"], seed, "val")
    )
    todo = pending(items)
    start = time.perf_counter()
    with Progress(len(todo), "make-synthetic", interactive=None if todo else False) as progress:
        run_items(todo, workers or default_workers(MAX_DEFAULT_WORKERS), progress.update)
    seconds = time.perf_counter() - start
    manifest = {
        "generator": GENERATOR,
        "config": config,
        "complete": True,
        "images": len(items),
        "written": len(todo),
        "seconds": round(seconds, 3),
    }
    write_json(out / MANIFEST, manifest)
    return manifest
