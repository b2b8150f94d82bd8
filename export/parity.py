"""Parity checks: an exported artifact must reproduce its reference on real images, in the same run as the export.

Translators compare uint8 images (|diff| within a tolerance on a minimum fraction of pixels), segmenters compare
label maps (minimum fraction identical). The same comparisons serve every step of the chain: ONNX vs PyTorch
(1 grey level / 99.9 %), and FP16 ONNX or engine vs FP32 ONNX with the looser FP16 bounds.

Segmenter labels are compared only where the decision is clear: a pixel whose two best classes score almost the same
in the PyTorch reference (a near-tie) flips its argmax under any rounding change, so counting it would fail a correct
export of a barely trained model. Near-ties are left out of the fraction and reported as their own share; a wrong
export (e.g. perturbed weights) changes clear decisions and still fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

from uda_trt.runtime.errors import UserError

log = logging.getLogger(__name__)

PARITY_IMAGE_LIMIT = 4  # a few images give ~10^6 pixels: enough to see a 0.1 % failure, quick on a CPU
DEFAULT_PARITY_SCENES = 3
SEGMENTER_PARITY_SIZE = (512, 256)  # (w, h) of the built-in scenes for segmenters, which take full-resolution input


class ParityError(click.ClickException):
    """The artifact does not reproduce its reference: the export failed (exit code 1), figures in the message."""

    exit_code = 1


@dataclass(frozen=True)
class ParityReport:
    """Measured agreement of a candidate with its reference over `images` images.

    `fraction` is the share of pixels within `tolerance` grey levels in every channel (translators) or with
    identical labels (segmenters, tolerance 0, counted over the pixels that are not near-ties); `passed` =
    fraction >= required. `near_ties` is the share of all pixels left out as near-ties (segmenters; 0 when the
    reference's scores were not given). `mean_abs_diff` is per value, over all pixels.
    """

    task: str
    reference: str  # what the candidate was compared against, e.g. "pytorch" or "onnx"
    images: int
    pixels: int
    fraction: float
    required: float
    tolerance: int
    max_abs_diff: int
    mean_abs_diff: float
    near_ties: float = 0.0

    @property
    def passed(self) -> bool:
        return self.fraction >= self.required

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line, e.g. '99.998% of pixels within 1 grey level (need >= 99.900%), max |diff| 2, 3 images'."""
        if self.task == "segment":
            what = "of pixels with identical labels"
            if self.near_ties:
                what += f" ({100 * self.near_ties:.3f}% near-ties left out)"
        else:
            what = f"of pixels within {self.tolerance} grey level{'s' if self.tolerance != 1 else ''}"
        extra = f", max |diff| {self.max_abs_diff}" if self.task == "translate" else ""
        return (
            f"{100 * self.fraction:.3f}% {what} (need >= {100 * self.required:.3f}%){extra}, "
            f"{self.images} image{'s' if self.images != 1 else ''} vs {self.reference}"
        )


def compare(
    task: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    required: float,
    tolerance: int = 0,
    reference_name: str = "pytorch",
    ties: Sequence[np.ndarray] | None = None,
) -> ParityReport:
    """Compare outputs image by image (shapes must match) and pool the figures.

    `ties` (segmenters): one H x W bool mask per image of the pixels to leave out as near-ties (`near_ties`).
    """
    if len(reference) != len(candidate) or not reference:
        raise ValueError("compare needs the same, non-zero number of reference and candidate outputs")
    if ties is not None and len(ties) != len(reference):
        raise ValueError("compare needs one near-tie mask per output")
    total = counted = within = tied = 0
    max_diff = 0
    diff_sum = 0.0
    for index, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
        if ref.shape != cand.shape:
            raise ValueError(f"output shapes differ: {ref.shape} vs {cand.shape}")
        if task == "segment":
            diff = (ref != cand).astype(np.int32)
            pixel_diff = diff
        else:  # a pixel agrees when all three channels do
            diff = np.abs(ref.astype(np.int16) - cand.astype(np.int16))
            pixel_diff = diff.max(axis=-1)
        decided = ~ties[index] if ties is not None else np.ones(pixel_diff.shape, bool)
        total += pixel_diff.size
        counted += int(decided.sum())
        tied += pixel_diff.size - int(decided.sum())
        within += int(((pixel_diff <= tolerance) & decided).sum())
        max_diff = max(max_diff, int(diff.max()))
        diff_sum += float(diff.mean()) * pixel_diff.size
    return ParityReport(
        task=task,
        reference=reference_name,
        images=len(reference),
        pixels=total,
        fraction=within / counted if counted else 1.0,
        required=required,
        tolerance=tolerance if task == "translate" else 0,
        max_abs_diff=max_diff,
        mean_abs_diff=diff_sum / total,
        near_ties=tied / total,
    )


def relative_margins(logits: np.ndarray) -> np.ndarray:
    """C x H x W class scores -> H x W: how far the best class leads the second, in units of the scores' std.

    A pixel whose margin is below a check's `tie_margin` is a near-tie for that check: rounding of the size that
    check allows can flip its argmax.
    """
    if logits.shape[0] < 2:
        return np.full(logits.shape[1:], np.inf, np.float32)
    best_two = np.partition(logits, logits.shape[0] - 2, axis=0)[-2:]
    return (best_two[1] - best_two[0]) / max(float(logits.std()), np.finfo(np.float32).tiny)


def run_parity(
    task: str,
    images: Sequence[np.ndarray],
    reference_fn: Callable[[np.ndarray], np.ndarray],
    candidate_fn: Callable[[np.ndarray], np.ndarray],
    required: float,
    tolerance: int,
    reference_name: str,
    ties: Sequence[np.ndarray] | None = None,
    batch: tuple[int, int] = (1, 1),
) -> ParityReport:
    """Run both functions on the images in batches of `batch` = (min, max) images (see parity_batches) and
    compare each image's outputs (`ties`: see compare). An engine refuses batches outside its profile."""
    reference: list[np.ndarray] = [np.empty(0)] * len(images)
    candidate: list[np.ndarray] = [np.empty(0)] * len(images)
    for indices, stacked in parity_batches(images, batch):
        ref_out, cand_out = reference_fn(stacked), candidate_fn(stacked)
        for row, index in enumerate(indices):  # rows past len(indices) are repeats that fill the batch
            reference[index], candidate[index] = ref_out[row], cand_out[row]
    return compare(task, reference, candidate, required, tolerance, reference_name, ties)


def parity_batches(images: Sequence[np.ndarray], batch: tuple[int, int]) -> list[tuple[list[int], np.ndarray]]:
    """Stack images of one shape into batches of `batch` = (min, max) images, in order within each shape.

    Returns (indices of the images in the batch, stacked batch). A batch with fewer than `min` images is filled up
    by repeating its own images, so the extra rows are outputs of images already counted: they are dropped.
    """
    low, high = batch
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(index)
    batches = []
    for indices in by_shape.values():
        for start in range(0, len(indices), high):
            chunk = indices[start : start + high]
            rows = [chunk[k % len(chunk)] for k in range(max(low, len(chunk)))]
            batches.append((chunk, np.stack([images[i] for i in rows])))
    return batches


def size_in_range(
    size: tuple[int, int], low: tuple[int, int], high: tuple[int, int], divisor: int = 1
) -> tuple[int, int] | None:
    """The (w, h) nearest to `size` with each side in [low, high] and a multiple of `divisor`.

    None when an axis of the range holds no multiple of `divisor` (no image the model accepts fits the range).
    """
    fitted = []
    for value, lo, hi in zip(size, low, high, strict=True):
        value = min(max(value, lo), hi)
        down, up = value // divisor * divisor, -(-value // divisor) * divisor
        candidates = [side for side in (down, up) if lo <= side <= hi and side > 0]
        if not candidates:
            return None
        fitted.append(min(candidates, key=lambda side: abs(side - value)))
    return fitted[0], fitted[1]


def segmenter_parity_images(
    images: list[np.ndarray] | None, low: tuple[int, int], high: tuple[int, int]
) -> list[np.ndarray]:
    """Segmenter parity images at sizes inside an engine profile's [low, high] (w, h) range.

    Segmenters take images at their own size, and the engine check reuses the export's images (and the PyTorch
    near-tie masks measured on them), so they must fit the profile before the export: built-in scenes are drawn
    at the size nearest SEGMENTER_PARITY_SIZE inside the range; given images outside it are resized into it. Every
    check of the chain (PyTorch, ONNX, FP16, engine) then sees the same images.
    """
    from uda_trt.runtime.imageio import resize_rgb

    if images is None:
        size = size_in_range(SEGMENTER_PARITY_SIZE, low, high)
        if size != SEGMENTER_PARITY_SIZE:
            log.info("parity scenes drawn at %dx%d, inside the engine profile", *size)
        return synthetic_parity_images("segment", size)
    fitted = []
    for image in images:
        size = (image.shape[1], image.shape[0])
        target = size_in_range(size, low, high)
        if target != size:
            log.info("parity image %dx%d resized to %dx%d, inside the engine profile", *size, *target)
        fitted.append(resize_rgb(image, target))
    return fitted


def require(report: ParityReport, artifact: Path, note: str = "") -> None:
    """Raise ParityError (exit 1) with the figures when the report fails."""
    if not report.passed:
        raise ParityError(f"parity check failed for {artifact.name}: {report.summary()}{note}")


def load_parity_images(folder: Path, limit: int = PARITY_IMAGE_LIMIT) -> list[np.ndarray]:
    """The first `limit` images (sorted, recursive) of a folder, read with the runtime's reader as RGB uint8."""
    from uda_trt.runtime.imageio import IMAGE_SUFFIXES, LogOnce, read_rgb

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--parity-images {folder}: folder not found")
    paths = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise UserError(f"--parity-images {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if len(paths) > limit:
        log.info("parity check on the first %d of %d images in %s", limit, len(paths), folder)
    log_once = LogOnce()
    return [read_rgb(path, log_once) for path in paths[:limit]]


def synthetic_parity_images(task: str, size: tuple[int, int], count: int = DEFAULT_PARITY_SCENES) -> list[np.ndarray]:
    """Built-in street scenes (runtime.synthetic) so a user without data still gets a real-image check.

    Translators see the source style they translate from; segmenters the target style they are evaluated on.
    """
    from uda_trt.runtime import synthetic

    style = synthetic.SOURCE_STYLE if task == "translate" else synthetic.TARGET_STYLE
    images = []
    for index in range(count):
        scene = synthetic.draw_scene(10_000 + index, size)
        rng = np.random.default_rng(20_000 + index)
        images.append(synthetic.apply_style(scene.label_ids, style, rng, scene.material, scene.tone))
    return images
