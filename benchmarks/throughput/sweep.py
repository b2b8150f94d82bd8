"""Engine-only sweeps: images/s, latency percentiles, GFLOP/s and peak memory per backend, batch size and size.

Batches are built before timing (preloaded), so only the backend's own work is measured: for ONNX Runtime and
TensorRT, the runtime runner's `infer_many` stream, as batch-translate drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda_trt.benchmarks.throughput.backends import open_backend
from uda_trt.benchmarks.throughput.measure import PeakRss, RunPolicy, StreamTiming, latency_summary, rate, time_stream
from uda_trt.runtime.imageio import read_rgb, resize_rgb
from uda_trt.runtime.jobs.progress import Progress

MIB = 1 << 20


@dataclass(frozen=True)
class SweepTarget:
    """One model on one backend: which file runs, at which sizes and batch sizes, and its MACs per pixel."""

    model: str
    backend: str
    artifact: Path
    sizes: tuple[tuple[int, int], ...]
    batch_sizes: tuple[int, ...]
    policy: RunPolicy


def sample_frames(size: tuple[int, int], count: int, paths: Sequence[Path] = ()) -> list[np.ndarray]:
    """`count` RGB frames at size (w, h): the given image files decoded and resized, else synthetic street scenes."""
    if paths:
        return [resize_rgb(read_rgb(path), size) for path in list(paths)[:count]]
    from uda_trt.runtime.synthetic import SOURCE_STYLE, apply_style, draw_scene

    frames = []
    for index in range(count):
        scene = draw_scene(1000 + index, size)
        rng = np.random.default_rng(index)
        frames.append(apply_style(scene.label_ids, SOURCE_STYLE, rng, scene.material, scene.tone))
    return frames


def _batch(frames: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    return np.stack([frames[i % len(frames)] for i in range(batch_size)])


def sweep(
    target: SweepTarget,
    macs_per_image: Callable[[tuple[int, int]], int | None],
    frames_for: Callable[[tuple[int, int]], list[np.ndarray]],
    peak: PeakRss,
    threads: int | None = None,
) -> list[dict]:
    """One row per (size, batch size): the engine-only figures of `target` (see `point`)."""
    rows = []
    largest = max(target.batch_sizes)
    with Progress(
        len(target.sizes) * len(target.batch_sizes), f"sweep {target.model} {target.backend}", unit="point"
    ) as progress:
        for size in target.sizes:  # one session per size: shape-specialising backends build for the size they get
            with open_backend(target.backend, target.artifact, threads, largest, size) as stream:
                for batch_size in target.batch_sizes:
                    batch = _batch(frames_for(size), batch_size)
                    peak.reset()
                    timing = time_stream(stream, batch, target.policy)
                    rows.append(point(target, size, batch_size, timing, macs_per_image(size), peak.read()))
                    progress.update(1)
    return rows


def point(
    target: SweepTarget,
    size: tuple[int, int],
    batch_size: int,
    timing: StreamTiming,
    macs_per_image: int | None,
    peak_rss_bytes: int,
) -> dict:
    """The figures of one sweep point; every rate is computed from the same timed runs as the percentiles.

    images/s = batch_size * runs / wall seconds of the stream; GFLOP/s = 2 * MACs per image * images/s / 1e9;
    latency is per batch, from handing it over to its output. Without a MAC count (an engine with no ONNX beside
    it) GFLOP/s is None.
    """
    seconds = float(timing.seconds)
    images = batch_size * len(timing.latencies)
    images_per_second = rate(images, seconds)
    return {
        "model": target.model,
        "backend": target.backend,
        "artifact": str(target.artifact),
        "size": list(size),
        "batch_size": batch_size,
        "warmup_runs": target.policy.warmup,
        "runs": len(timing.latencies),
        "images": images,
        "seconds": seconds,
        "images_per_second": images_per_second,
        "latency_ms": latency_summary(timing.latencies),
        "macs_per_image": None if macs_per_image is None else int(macs_per_image),
        "gflops": None if macs_per_image is None else 2 * macs_per_image * images_per_second / 1e9,
        "peak_rss_mb": peak_rss_bytes / MIB,
    }
