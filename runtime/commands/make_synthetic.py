"""`make-synthetic`: write a GTA5-like source dataset and a Cityscapes-like target dataset for the demo and tests.

OUT/gta5 gets the GTA5 layout (source style), OUT/cityscapes the Cityscapes layout (target style, train and val).
OUT/synthetic.json records the resolved config: a rerun with the same config only writes missing files, a rerun with
another config replaces the two datasets, and any other non-empty folder is refused rather than written into.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import click

from runtime.cli_support import SIZE, setup_logging
from runtime.errors import UserError

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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (new, empty, or a previous make-synthetic output).",
)
@click.option(
    "--gta5-count", default=600, show_default=True, type=click.IntRange(min=0), help="Source images (GTA5 layout)."
)
@click.option(
    "--cityscapes-train", default=600, show_default=True, type=click.IntRange(min=0), help="Target training images."
)
@click.option(
    "--cityscapes-val", default=100, show_default=True, type=click.IntRange(min=0), help="Target validation images."
)
@click.option(
    "--preset",
    "--size-preset",
    "preset",
    default="demo",
    show_default=True,
    type=click.Choice(["demo", "full"]),
    help="demo: 160x88 / 160x80; full: 1914x1052 / 2048x1024.",
)
@click.option("--gta5-size", type=SIZE, default=None, help="Override the source size, WIDTHxHEIGHT.")
@click.option("--cityscapes-size", type=SIZE, default=None, help="Override the target size, WIDTHxHEIGHT.")
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Same seed -> byte-identical files."
)
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Processes [default: cores, at most 8].")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    out, gta5_count, cityscapes_train, cityscapes_val, preset, gta5_size, cityscapes_size, seed, workers, verbose
) -> None:
    """Write synthetic GTA5-like (OUT/gta5) and Cityscapes-like (OUT/cityscapes) street-scene datasets."""
    from tqdm import tqdm

    from runtime.synthetic import PRESETS, pending, plan, run_items

    setup_logging(verbose)
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
    _write_manifest(
        out,
        {
            "generator": GENERATOR,
            "config": config,
            "complete": True,
            "images": len(items),
            "written": len(todo),
            "seconds": round(seconds, 3),
        },
    )
    click.echo(f"wrote {len(todo)} of {len(items)} images to {out} in {seconds:.1f} s", err=True)


if __name__ == "__main__":
    main()
