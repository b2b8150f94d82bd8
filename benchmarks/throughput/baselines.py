"""The ways people translate a dataset without this runtime, timed on the same files, writing real PNGs.

reference_way: what the reference CycleGAN `test.py` does per image, serially, batch size 1: Pillow decode to RGB,
ToTensor + Normalize(0.5, 0.5), the generator in PyTorch eager under no_grad, `tensor2im` ((y + 1) / 2 * 255,
truncated to uint8), Pillow PNG save. Two deliberate departures, both in the reference's favour or neutral: the
input is resized with the runtime's resize (so both ways see identical pixels and their outputs can be compared
to a grey level; the reference would use a Pillow bicubic resize of similar cost), and only the translated image
is written (test.py also writes each input image and an HTML page).

eager_batched: the straightforward batched PyTorch script: decode and resize a batch (OpenCV, serially), one eager
forward pass of the exported graph's pre/post-processing, encode (OpenCV) and write each image, serially.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from uda_trt.benchmarks.throughput.backends import set_torch_threads
from uda_trt.benchmarks.throughput.endtoend import output_kib_per_image
from uda_trt.benchmarks.throughput.measure import PeakRss, rate
from uda_trt.runtime.imageio import encode_image, read_rgb, resize_rgb

MIB = 1 << 20


def _load_generator(checkpoint: Path):
    from uda_trt.train.checkpoints import build_translator, require_model_checkpoint

    info = require_model_checkpoint(checkpoint)  # torch.load(weights_only=True), as the reference loads it
    return build_translator(info.architecture, info.args, info.state_dict)


def reference_way(
    checkpoint: Path,
    images: Sequence[Path],
    output: Path,
    working_size: tuple[int, int],
    png_compression: int,
    peak: PeakRss,
    threads: int | None = None,
) -> dict:
    """Translate `images` the reference script's way into `output/STEM.png`; wall time includes loading the model."""
    import torch

    threads = set_torch_threads(threads)
    output.mkdir(parents=True, exist_ok=True)
    stages = {"load": 0.0, "decode": 0.0, "infer": 0.0, "encode": 0.0}
    peak.reset()
    started = time.perf_counter()
    generator = _load_generator(checkpoint)
    stages["load"] = time.perf_counter() - started
    for path in images:
        t0 = time.perf_counter()
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        rgb = resize_rgb(rgb, working_size)
        t1 = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0)  # ToTensor
        x = ((x - 0.5) / 0.5).unsqueeze(0)  # Normalize((0.5,) * 3, (0.5,) * 3)
        with torch.no_grad():
            y = generator(x)
        fake = ((np.transpose(y[0].cpu().float().numpy(), (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)
        t2 = time.perf_counter()
        Image.fromarray(fake).save(output / f"{Path(path).stem}.png", compress_level=png_compression)
        t3 = time.perf_counter()
        stages["decode"] += t1 - t0
        stages["infer"] += t2 - t1
        stages["encode"] += t3 - t2
    wall = time.perf_counter() - started
    return _summary("reference", images, output, wall, stages, 1, png_compression, threads, peak)


def eager_batched(
    checkpoint: Path,
    images: Sequence[Path],
    output: Path,
    working_size: tuple[int, int],
    png_compression: int,
    batch_size: int,
    peak: PeakRss,
    threads: int | None = None,
) -> dict:
    """Translate `images` in batches with PyTorch eager, serially, into `output/STEM.png`."""
    import torch

    from uda_trt.export.graphs import TranslatorGraph

    threads = set_torch_threads(threads)
    output.mkdir(parents=True, exist_ok=True)
    stages = {"load": 0.0, "decode": 0.0, "infer": 0.0, "encode": 0.0}
    peak.reset()
    started = time.perf_counter()
    graph = TranslatorGraph(_load_generator(checkpoint)).eval()
    stages["load"] = time.perf_counter() - started
    paths = list(images)
    for first in range(0, len(paths), batch_size):
        chunk = paths[first : first + batch_size]
        t0 = time.perf_counter()
        batch = np.stack([resize_rgb(read_rgb(path), working_size) for path in chunk])
        t1 = time.perf_counter()
        with torch.inference_mode():
            translated = graph(torch.from_numpy(batch)).numpy()
        t2 = time.perf_counter()
        for path, image in zip(chunk, translated, strict=True):
            (output / f"{Path(path).stem}.png").write_bytes(encode_image(image, ".png", png_compression))
        t3 = time.perf_counter()
        stages["decode"] += t1 - t0
        stages["infer"] += t2 - t1
        stages["encode"] += t3 - t2
    wall = time.perf_counter() - started
    return _summary("eager_batched", paths, output, wall, stages, batch_size, png_compression, threads, peak)


def _summary(
    way: str,
    images: Sequence[Path],
    output: Path,
    wall: float,
    stages: dict[str, float],
    batch_size: int,
    png_compression: int,
    threads: int,
    peak: PeakRss,
) -> dict:
    return {
        "way": way,
        "output": str(output),
        "images": len(images),
        "wall_seconds": wall,
        "images_per_second": rate(len(images), wall),
        "stage_seconds": stages,
        "batch_size": batch_size,
        "png_compression": png_compression,
        "torch_threads": threads,
        "output_kib_per_image": output_kib_per_image(output),
        "peak_rss_mb": peak.read() / MIB,
    }
