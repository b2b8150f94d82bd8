"""The codec limit: how many images per second decode + resize + encode allow on this machine, measured in-run.

Per image, on one thread, on the very files the end-to-end run reads, with the runtime's own codec functions (so
the limit moves with any faster decoder or encoder the runtime adopts): read and decode the PNG to RGB, resize it to
the working size (INTER_AREA when shrinking), encode the result in the output format. The limit is
`workers / mean seconds per image`, workers = the cores this process may use. No job can write images faster than
this without a faster format, so the codec-bound end-to-end rate is judged against it (criterion B).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
from PIL import Image

from uda_trt.benchmarks.throughput.measure import rate
from uda_trt.runtime.imageio import encode_image, encode_label_image, load_checked, read_rgb, resize_rgb
from uda_trt.runtime.jobs.workers import default_workers

_SUFFIXES = {"png": ".png", "jpg": ".jpg"}


@contextmanager
def opencv_threads(count: int):
    """OpenCV's own worker threads set to `count` inside the block (resize would otherwise use every core)."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def measure_codec_limit(
    images: Sequence[Path],
    working_size: tuple[int, int],
    image_format: str = "png",
    png_compression: int = 6,
    jpeg_quality: int = 95,
    workers: int | None = None,
    labels: Sequence[Path] | None = None,
) -> dict:
    """Mean single-thread seconds per image of each codec stage over `images`, and the limit they imply.

    labels (optional, informational): the same measurement for carrying each label over at the working size as
    batch-translate does (Pillow decode, nearest resize, PNG encode), which the limit leaves out.
    """
    workers = workers or default_workers()
    if image_format not in _SUFFIXES:
        raise ValueError(f"unknown image format {image_format!r}")
    suffix = _SUFFIXES[image_format]
    seconds = {"decode": 0.0, "resize": 0.0, "encode": 0.0}
    label_seconds = 0.0
    with opencv_threads(1):
        for path in images:
            start = time.perf_counter()
            image = read_rgb(path)
            decoded = time.perf_counter()
            small = resize_rgb(image, working_size)
            resized = time.perf_counter()
            encode_image(small, suffix, png_compression, jpeg_quality)
            encoded = time.perf_counter()
            seconds["decode"] += decoded - start
            seconds["resize"] += resized - decoded
            seconds["encode"] += encoded - resized
        for path in labels or ():
            start = time.perf_counter()
            with load_checked(path) as label:
                encode_label_image(label.resize(working_size, Image.NEAREST))
            label_seconds += time.perf_counter() - start
    count = len(images)
    per_image = {stage: value / count for stage, value in seconds.items()}
    total = sum(per_image.values())
    return {
        "images": count,
        "working_size": list(working_size),
        "format": image_format,
        "png_compression": png_compression if image_format == "png" else None,
        "jpeg_quality": jpeg_quality if image_format == "jpg" else None,
        "per_image_seconds": per_image,
        "seconds_per_image": total,
        "single_thread_images_per_second": rate(1, total),
        "workers": workers,
        "limit_images_per_second": workers * rate(1, total),
        "label_seconds_per_image": label_seconds / len(labels) if labels else None,
    }
