"""Semantic-segmentation scores from one confusion matrix, following the official Cityscapes evaluator.

The matrix is 19 x 20: rows are ground-truth train IDs, columns predicted train IDs 0..18 plus one last column for
predictions outside the 19 classes. Ground-truth void pixels (255) are dropped, so they are never false positives;
a prediction outside the classes is a false negative of the ground-truth class and a false positive of nothing,
exactly as the official evaluator treats void and ignore-in-eval label IDs. Built with one `np.bincount`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from runtime.imageio import atomic_write_bytes
from runtime.labels import CLASS_NAMES, NUM_CLASSES

OTHER_COLUMN = NUM_CLASSES  # predictions outside 0..18
SCHEMA_VERSION = 1


def confusion_matrix(gt_train_ids: np.ndarray, pred_train_ids: np.ndarray) -> np.ndarray:
    """19 x 20 int64 counts for one image (or any pair of same-shape train-ID arrays)."""
    if gt_train_ids.shape != pred_train_ids.shape:
        raise ValueError(f"ground truth {gt_train_ids.shape} and prediction {pred_train_ids.shape} differ in shape")
    gt = gt_train_ids.reshape(-1)
    pred = pred_train_ids.reshape(-1)
    valid = gt < NUM_CLASSES  # drops 255 (void) and anything else outside the classes
    columns = np.minimum(pred[valid], OTHER_COLUMN).astype(np.int64)
    flat = gt[valid].astype(np.int64) * (NUM_CLASSES + 1) + columns
    counts = np.bincount(flat, minlength=NUM_CLASSES * (NUM_CLASSES + 1))
    return counts.reshape(NUM_CLASSES, NUM_CLASSES + 1)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def scores_from_matrix(matrix: np.ndarray) -> dict:
    """PA, MPA, mIoU, FWIoU and per-class IoU/accuracy (fractions; NaN where undefined)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(matrix[:, :NUM_CLASSES]).astype(np.float64)
    gt_pixels = matrix.sum(axis=1).astype(np.float64)  # includes the "other" column: those are false negatives
    predicted = matrix[:, :NUM_CLASSES].sum(axis=0).astype(np.float64)  # rows are non-void GT only
    total = gt_pixels.sum()
    union = gt_pixels + predicted - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)  # predicted but absent from GT -> 0; neither -> NaN
        accuracy = np.where(gt_pixels > 0, tp / gt_pixels, np.nan)
    has_gt = gt_pixels > 0
    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "mean_accuracy": _nanmean(accuracy),
        "mean_iou": _nanmean(iou),
        "fw_iou": float(np.sum(gt_pixels[has_gt] / total * iou[has_gt])) if total > 0 else math.nan,
        "per_class": [
            {"train_id": c, "name": CLASS_NAMES[c], "iou": float(iou[c]), "accuracy": float(accuracy[c])}
            for c in range(NUM_CLASSES)
        ],
    }


class ConfusionMatrix:
    """Accumulates a 19 x 20 confusion matrix image by image; the dataset is never held in memory."""

    def __init__(self) -> None:
        self.matrix = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image's counts (train IDs; GT 255 dropped, predictions outside 0..18 to the last column)."""
        self.matrix += confusion_matrix(gt, pred)

    def add(self, matrix: np.ndarray) -> None:
        """Add counts computed elsewhere (e.g. in a worker thread)."""
        self.matrix += matrix

    def scores(self) -> dict:
        return scores_from_matrix(self.matrix)


def _json_safe(value):
    """NaN/inf -> None (JSON null), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def metrics_markdown(result: dict) -> str:
    """A human-readable summary of a metrics.json dict: the four scores, then the per-class table."""
    lines = [
        "# Segmentation metrics",
        "",
        f"Images scored: {result['images_scored']}, skipped: {result['images_skipped']}.",
        "",
        "| metric | % |",
        "|---|---|",
        f"| mIoU | {_percent(result['mean_iou'])} |",
        f"| pixel accuracy (PA) | {_percent(result['pixel_accuracy'])} |",
        f"| mean class accuracy (MPA) | {_percent(result['mean_accuracy'])} |",
        f"| frequency-weighted IoU (FWIoU) | {_percent(result['fw_iou'])} |",
        "",
        "| train ID | class | IoU % | accuracy % |",
        "|---|---|---|---|",
    ]
    for row in result["per_class"]:
        lines.append(f"| {row['train_id']} | {row['name']} | {_percent(row['iou'])} | {_percent(row['accuracy'])} |")
    lines.append("")
    lines.append("n/a: the class has no ground-truth pixels (and, for IoU, no predicted pixels either).")
    skipped = result.get("skipped") or []
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""]
        lines += [f"- `{item['file']}`: {item['reason']}" for item in skipped]
    return "\n".join(lines) + "\n"


def write_metrics(
    out_dir: Path, cm: ConfusionMatrix, images_scored: int, images_skipped: int, extra: dict | None = None
) -> dict:
    """Write OUT/metrics.json (NaN as null) and OUT/metrics.md atomically; return the JSON dict."""
    out_dir = Path(out_dir)
    result = {"schema_version": SCHEMA_VERSION, **cm.scores()}
    result.update(
        {
            "num_classes": NUM_CLASSES,
            "class_names": list(CLASS_NAMES),
            "confusion_matrix": cm.matrix.tolist(),
            "confusion_matrix_layout": "rows: ground-truth train IDs 0..18; columns: predicted train IDs 0..18, "
            "then predictions outside the 19 classes",
            "images_scored": int(images_scored),
            "images_skipped": int(images_skipped),
        }
    )
    result.update(extra or {})
    result = _json_safe(result)
    atomic_write_bytes(out_dir / "metrics.json", (json.dumps(result, indent=2, allow_nan=False) + "\n").encode())
    atomic_write_bytes(out_dir / "metrics.md", metrics_markdown(result).encode())
    return result
