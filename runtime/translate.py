"""batch-translate: run a translator artifact over a whole dataset and write it back in the input's layout.

Decode-and-resize and encode run in a thread pool around the runner, with bounded prefetch, so memory depends on the
batch size and worker count, never on the dataset size. Outputs are written atomically; a rerun skips finished samples.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from runtime.datasets import Sample, samples_for
from runtime.errors import SampleError, UserError
from runtime.imageio import LogOnce, atomic_write_bytes, read_rgb, resize_rgb, write_image
from runtime.pipeline import batched, prefetch
from runtime.runners import open_runner
from runtime.sidecar import file_sha256

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpg")
OUTPUT_SIZES = ("working", "original")


@dataclass(frozen=True)
class TranslateJob:
    """Everything one batch-translate run needs; written to the manifest as the resolved config."""

    artifact: Path
    input_root: Path
    output_root: Path
    layout: str = "auto"
    split: str = "train"
    size: tuple[int, int] | None = None  # working size (w, h); None: the artifact's own
    output_size: str = "working"
    image_format: str = "png"
    png_compression: int = 1
    jpeg_quality: int = 95
    batch_size: int = 4
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    backend: str = "auto"
    strict: bool = False


@dataclass
class _Decoded:
    sample: Sample
    image: np.ndarray | None  # at the working size
    original_size: tuple[int, int]
    seconds: float = 0.0
    error: str | None = None


@dataclass
class _Stats:
    done: int = 0
    already_done: int = 0
    skipped: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "infer": 0.0, "encode": 0.0})


def _output_paths(job: TranslateJob, sample: Sample) -> tuple[Path, Path | None]:
    image_out = (job.output_root / sample.image.relative_to(job.input_root)).with_suffix(f".{job.image_format}")
    label_out = job.output_root / sample.label.relative_to(job.input_root) if sample.label else None
    return image_out, label_out


def _is_finished(job: TranslateJob, sample: Sample) -> bool:
    image_out, label_out = _output_paths(job, sample)
    return image_out.exists() and (label_out is None or label_out.exists())


def _decode(sample: Sample, working_size: tuple[int, int], log_once: LogOnce) -> _Decoded:
    start = time.perf_counter()
    try:
        image = read_rgb(sample.image, log_once)
        original_size = (image.shape[1], image.shape[0])
        if sample.label is not None:
            try:
                with Image.open(sample.label) as label:
                    label_size = label.size
            except OSError as exc:
                raise SampleError(sample.label, f"unreadable label ({exc})") from exc
            if label_size != original_size:
                raise SampleError(
                    sample.label,
                    f"label is {label_size[0]}x{label_size[1]}, image is {original_size[0]}x{original_size[1]}",
                )
        resized = image if original_size == working_size else resize_rgb(image, working_size)
        return _Decoded(sample, resized, original_size, time.perf_counter() - start)
    except SampleError as exc:
        return _Decoded(sample, None, (0, 0), time.perf_counter() - start, error=str(exc))


def _write_label(job: TranslateJob, sample: Sample, label_out: Path, size: tuple[int, int] | None) -> None:
    """Copy the label byte for byte, or resize it with nearest neighbour (keeping mode and palette)."""
    if size is None:
        atomic_write_bytes(label_out, sample.label.read_bytes())
        return
    with Image.open(sample.label) as label:
        resized = label.resize(size, Image.NEAREST)
    buffer = io.BytesIO()
    resized.save(buffer, format="PNG")
    atomic_write_bytes(label_out, buffer.getvalue())


def _encode(job: TranslateJob, decoded: _Decoded, translated: np.ndarray) -> float:
    start = time.perf_counter()
    image_out, label_out = _output_paths(job, decoded.sample)
    image_out.parent.mkdir(parents=True, exist_ok=True)
    keep_original = job.output_size == "original" and decoded.original_size != translated.shape[1::-1]
    if keep_original:
        translated = resize_rgb(translated, decoded.original_size)
    if label_out is not None:
        label_out.parent.mkdir(parents=True, exist_ok=True)
        same_size = decoded.original_size == translated.shape[1::-1]
        _write_label(job, decoded.sample, label_out, None if same_size else translated.shape[1::-1])
    write_image(image_out, translated, png_compression=job.png_compression, jpeg_quality=job.jpeg_quality)
    return time.perf_counter() - start


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())


def _validate(job: TranslateJob, sidecar) -> tuple[int, int]:
    if sidecar.task != "translate":
        raise UserError(f"{job.artifact}: is a '{sidecar.task}' artifact; batch-translate needs a translator")
    if job.image_format not in IMAGE_FORMATS:
        raise UserError(f"--format: {job.image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if job.output_size not in OUTPUT_SIZES:
        raise UserError(f"--output-size: {job.output_size!r} is not one of {', '.join(OUTPUT_SIZES)}")
    if job.batch_size < 1:
        raise UserError("--batch-size: must be at least 1")
    working_size = tuple(job.size or sidecar.working_size or ())
    if len(working_size) != 2:
        raise UserError(f"{job.artifact}: the artifact records no working size; pass --size WIDTHxHEIGHT")
    divisor = sidecar.size_divisor
    if working_size[0] % divisor or working_size[1] % divisor:
        raise UserError(
            f"--size: {working_size[0]}x{working_size[1]} is not a multiple of {divisor} (the model's size divisor)"
        )
    if job.output_root.resolve() == job.input_root.resolve():
        raise UserError(f"--output: {job.output_root} is the input folder; choose another folder")
    return working_size


def batch_translate(job: TranslateJob) -> dict:
    """Translate every image of `job.input_root`; return the report (also written to OUT/report.json)."""
    if not job.input_root.is_dir():
        raise UserError(f"--input: {job.input_root} is not a folder")
    layout, samples = samples_for(job.input_root, job.layout, job.split, require_labels=True)
    with open_runner(job.artifact, backend=job.backend) as runner:
        working_size = _validate(job, runner.sidecar)
        job.output_root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "command": "batch-translate",
            "config": asdict(job) | {"working_size": list(working_size), "layout": layout},
            "artifact_sha256": file_sha256(job.artifact),
            "backend": runner.backend,
            "total": len(samples),
            "status": "running",
        }
        _write_json(job.output_root / "manifest.json", manifest)
        stats = _Stats()
        todo = [s for s in samples if not _is_finished(job, s)]
        stats.already_done = len(samples) - len(todo)
        started = time.perf_counter()
        _run(job, runner, todo, working_size, stats)
        wall = time.perf_counter() - started
    report = {
        "command": "batch-translate",
        "layout": layout,
        "working_size": list(working_size),
        "images_total": len(samples),
        "images_translated": stats.done,
        "images_already_done": stats.already_done,
        "images_skipped": len(stats.skipped),
        "skipped": stats.skipped,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(stats.done / wall, 3) if wall > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in stats.seconds.items()},
        "backend": manifest["backend"],
    }
    _write_json(job.output_root / "report.json", report)
    _write_json(job.output_root / "manifest.json", manifest | {"status": "complete", "done": stats.done})
    return report


def _run(job: TranslateJob, runner, todo: list[Sample], working_size: tuple[int, int], stats: _Stats) -> None:
    log_once = LogOnce()

    decode = functools.partial(_decode, working_size=working_size, log_once=log_once)

    def skip(sample: Sample, reason: str) -> None:
        if job.strict:
            raise UserError(f"{reason} (--strict stops at the first bad sample)")
        log.warning("skipped %s", reason)
        stats.skipped.append({"image": str(sample.image), "reason": reason})

    depth = max(2 * job.batch_size, 2 * job.workers)
    with (
        ThreadPoolExecutor(job.workers) as pool,
        tqdm(total=len(todo), unit="img", desc="translate") as progress,
    ):
        encodes = []
        for batch in batched(prefetch(pool, decode, todo, depth), job.batch_size):
            decoded = [future.result() for future in batch]
            stats.seconds["decode"] += sum(d.seconds for d in decoded)
            for bad in (d for d in decoded if d.error):
                skip(bad.sample, bad.error)
                progress.update(1)
            good = [d for d in decoded if d.error is None]
            if not good:
                continue
            start = time.perf_counter()
            translated = runner.infer({"images": np.stack([d.image for d in good])})["translated"]
            stats.seconds["infer"] += time.perf_counter() - start
            for item, out in zip(good, translated, strict=True):
                encodes.append((item, pool.submit(_encode, job, item, out)))
            while len(encodes) > depth:
                _finish(encodes.pop(0), stats, skip, progress)
        for pending in encodes:
            _finish(pending, stats, skip, progress)


def _finish(pending, stats: _Stats, skip, progress) -> None:
    item, future = pending
    try:
        stats.seconds["encode"] += future.result()
        stats.done += 1
    except (SampleError, OSError) as exc:
        skip(item.sample, f"{item.sample.image}: could not write output ({exc})")
    progress.update(1)
