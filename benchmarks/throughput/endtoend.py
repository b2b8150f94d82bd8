"""End-to-end runs of the real job (runtime.translate.batch_translate) and comparison of what two ways wrote.

The end-to-end rate is images / wall seconds of the whole `batch_translate` call: opening the session, listing the
dataset, decoding, inference, encoding, writing and journalling; on Ray (`batch-translate --ray`) also starting and
stopping the cluster. The job's own report (which times from the first image) is kept beside it.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from uda_trt.benchmarks.throughput.measure import PeakRss, rate
from uda_trt.runtime.imageio import IMAGE_SUFFIXES, read_rgb
from uda_trt.runtime.jobs.workers import default_workers

MIB = 1 << 20
JOB_REPORT_KEYS = ("wall_seconds", "images_per_second", "stage_seconds", "backend", "images_skipped", "working_size")


def run_batch_translate(
    artifact: Path,
    input_root: Path,
    output_root: Path,
    size: tuple[int, int],
    batch_size: int | None,
    peak: PeakRss,
    image_format: str = "png",
    png_compression: int = 6,
    jpeg_quality: int = 95,
    workers: int | None = None,
    backend: str = "onnxruntime-cpu",
    layout: str = "gta5",
    ray: str | None = None,
) -> dict:
    """One fresh batch-translate run (outputs at the working size, ONNX Runtime CPU unless told); its figures.

    With `ray` ("local", "auto" or an address) it runs as `batch-translate --ray RAY` runs it
    (`batch_translate_on_ray`): the wall time then includes starting the cluster and its actors, and stopping them.
    """
    from uda_trt.runtime.translate import TranslateJob, batch_translate

    shutil.rmtree(output_root, ignore_errors=True)  # a fresh run, never a resume
    job = TranslateJob(
        artifact=Path(artifact),
        input_root=Path(input_root),
        output_root=Path(output_root),
        layout=layout,
        size=tuple(size),
        output_size="working",
        image_format=image_format,
        png_compression=png_compression,
        jpeg_quality=jpeg_quality,
        batch_size=batch_size,
        workers=workers or default_workers(),
        backend=backend,
    )
    peak.reset()
    started = time.perf_counter()
    if ray is None:
        report = batch_translate(job)
    else:
        from uda_trt.runtime.ray_translate import batch_translate_on_ray

        report = batch_translate_on_ray(job, ray)
    wall = time.perf_counter() - started
    images = report["images_translated"]
    return {
        "way": "batch_translate",
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(job).items()},
        "output": str(output_root),
        "images": images,
        "wall_seconds": wall,
        "images_per_second": rate(images, wall),
        "stage_seconds": dict(report["stage_seconds"]),
        "job_report": {key: report[key] for key in (*JOB_REPORT_KEYS, "ray") if key in report},
        "batch_size": report["batch_size"],  # resolved: None runs at the backend's default
        "png_compression": png_compression if image_format == "png" else None,
        "image_format": image_format,
        "output_kib_per_image": output_kib_per_image(output_root),
        "peak_rss_mb": peak.read() / MIB,
    }


def output_kib_per_image(folder: Path) -> float | None:
    """Mean size in KiB of the images a way wrote (FOLDER/images for the GTA5 layout, else FOLDER itself): a faster
    way must not buy its speed with bigger files at the same compression level."""
    folder = Path(folder)
    folder = folder / "images" if (folder / "images").is_dir() else folder
    sizes = [
        path.stat().st_size
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]
    return sum(sizes) / len(sizes) / 1024 if sizes else None


def compare_outputs(first: Path, second: Path, stems: Sequence[str]) -> dict:
    """Pixel differences between `first/STEM.png` and `second/STEM.png` for every stem (RGB, grey levels), and
    their PSNR over all values (None when identical)."""
    max_diff = 0
    total = 0
    within_one = 0
    diff_sum = 0
    squared_sum = 0
    for stem in stems:
        a = read_rgb(Path(first) / f"{stem}.png").astype(np.int16)
        b = read_rgb(Path(second) / f"{stem}.png").astype(np.int16)
        if a.shape != b.shape:
            raise ValueError(f"{stem}: outputs differ in size: {a.shape} vs {b.shape}")
        diff = np.abs(a - b)
        max_diff = max(max_diff, int(diff.max()))
        total += diff.size
        within_one += int(np.count_nonzero(diff <= 1))
        diff_sum += int(diff.sum())
        squared_sum += int(np.square(diff, dtype=np.int64).sum())
    mse = squared_sum / total if total else 0.0
    return {
        "images": len(stems),
        "max_abs_diff": max_diff,
        "mean_abs_diff": diff_sum / total if total else 0.0,
        "fraction_within_1": within_one / total if total else 1.0,
        "psnr_db": 10 * math.log10(255.0**2 / mse) if mse else None,
    }


def compare_files(first: Path, second: Path) -> dict:
    """Whether two runs wrote the same output files (everything under FIRST/images and FIRST/labels, the GTA5
    layout, against SECOND's), byte for byte; a file only one run wrote counts as differing."""
    first, second = Path(first), Path(second)
    names: set[str] = set()
    for root in (first, second):
        for kind in ("images", "labels"):
            if (root / kind).is_dir():
                names |= {f"{kind}/{path.name}" for path in (root / kind).iterdir() if path.is_file()}
    differing = [
        name
        for name in sorted(names)
        if not ((first / name).is_file() and (second / name).is_file())
        or (first / name).read_bytes() != (second / name).read_bytes()
    ]
    return {"files": len(names), "identical": not differing, "differing": differing}


def ray_unavailable_reason() -> str | None:
    """None when `batch-translate --ray` can run here (Ray with Ray Data's dependencies), else one line."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
        return "Ray not installed (pip install 'uda-trt[ray]')"
    return None
