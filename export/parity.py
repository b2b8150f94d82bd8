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
) -> ParityReport:
    """Run both functions on each image (as a batch of one: sizes may differ) and compare (`ties`: see compare)."""
    reference = [reference_fn(image[None])[0] for image in images]
    candidate = [candidate_fn(image[None])[0] for image in images]
    return compare(task, reference, candidate, required, tolerance, reference_name, ties)


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
