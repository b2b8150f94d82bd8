"""Semantic-segmentation scores from one confusion matrix, following the official Cityscapes evaluator.

The matrix is 19 x 20: rows are ground-truth train IDs, columns predicted train IDs 0..18 plus one last column for
predictions outside the 19 classes. Ground-truth void pixels (255) are dropped, so they are never false positives;
a prediction outside the classes is a false negative of the ground-truth class and a false positive of nothing,
exactly as the official evaluator treats void and ignore-in-eval label IDs. Built from one joint histogram of the
raw IDs per image or batch, folded through the ID lookup tables.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from uda_trt.runtime.jobs.files import atomic_write_bytes, json_plain, write_json
from uda_trt.runtime.labels import CLASS_NAMES, NUM_CLASSES, TRAIN_ID_IDENTITY

OTHER_COLUMN = NUM_CLASSES  # predictions outside 0..18
SCHEMA_VERSION = 1


# cv2.calcHist counts in float32, exact up to 2^24 per bin; larger arrays take np.bincount.
_CALCHIST_EXACT_LIMIT = 1 << 24


def joint_histogram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """256 x 256 int64 counts of the value pairs (a[i], b[i]) of two same-shape uint8 arrays.

    One pass in OpenCV (calcHist: faster than np.bincount of packed pairs, which first widens every pixel to int64).
    """
    if a.shape != b.shape:
        raise ValueError(f"arrays of shapes {a.shape} and {b.shape} differ")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"joint_histogram takes uint8 arrays, got {a.dtype} and {b.dtype}")
    if a.size < _CALCHIST_EXACT_LIMIT:
        rows = [np.ascontiguousarray(x).reshape(1, -1) for x in (a, b)]
        counts = cv2.calcHist(rows, [0, 1], None, [256, 256], [0, 256, 0, 256])
        return counts.astype(np.int64)
    packed = (a.astype(np.intp) << 8) | b
    return np.bincount(packed.reshape(-1), minlength=256 * 256).reshape(256, 256)


def confusion_matrix(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    gt_to_train: np.ndarray = TRAIN_ID_IDENTITY,
    pred_to_train: np.ndarray = TRAIN_ID_IDENTITY,
) -> np.ndarray:
    """19 x 20 int64 counts for one image, or for any pair of same-shape arrays (a batch).

    `gt` and `pred` hold train IDs, or, with the 256-entry lookup tables `gt_to_train` / `pred_to_train`, any
    uint8 IDs those tables map to train IDs (e.g. raw Cityscapes label IDs). uint8 inputs are counted as a joint
    histogram of raw values folded through the tables, so no per-pixel lookup pass is needed.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if gt.dtype == np.uint8 and pred.dtype == np.uint8:
        return _fold(joint_histogram(gt, pred), gt_to_train, pred_to_train)
    if gt_to_train is not TRAIN_ID_IDENTITY or pred_to_train is not TRAIN_ID_IDENTITY:
        raise ValueError("lookup tables need uint8 IDs")
    gt = gt.reshape(-1)
    pred = pred.reshape(-1)
    valid = gt < NUM_CLASSES  # drops 255 (void) and anything else outside the classes
    columns = np.minimum(pred[valid], OTHER_COLUMN).astype(np.int64)
    flat = gt[valid].astype(np.int64) * (NUM_CLASSES + 1) + columns
    counts = np.bincount(flat, minlength=NUM_CLASSES * (NUM_CLASSES + 1))
    return counts.reshape(NUM_CLASSES, NUM_CLASSES + 1)


def _fold(histogram: np.ndarray, gt_to_train: np.ndarray, pred_to_train: np.ndarray) -> np.ndarray:
    """256 x 256 raw-value pair counts -> the 19 x 20 matrix: rows whose ground truth maps outside the classes are
    dropped (void), columns outside the classes go to the 'other' column."""
    rows = np.asarray(gt_to_train, dtype=np.int64)
    columns = np.minimum(np.asarray(pred_to_train, dtype=np.int64), OTHER_COLUMN)
    kept = rows < NUM_CLASSES
    cells = rows[kept][:, None] * (NUM_CLASSES + 1) + columns[None, :]
    counts = np.bincount(
        cells.reshape(-1), weights=histogram[kept].reshape(-1), minlength=NUM_CLASSES * (NUM_CLASSES + 1)
    )
    return counts.astype(np.int64).reshape(NUM_CLASSES, NUM_CLASSES + 1)


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


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _what_was_scored(result: dict) -> list[str]:
    """Lines naming the model (or predictions folder), backend, dataset and split, when the result records them."""
    lines = []
    if result.get("mode") == "engine":
        lines.append(
            f"Model: `{result['artifact']}` ({result.get('architecture') or 'architecture not recorded'}), "
            f"backend {result.get('backend')}, batch size {result.get('batch_size')}."
        )
    elif result.get("mode") == "predictions":
        lines.append(f"Predictions: `{result['predictions']}` (read as {result.get('id_type')}s).")
    if "split" in result:
        lines.append(
            f"Ground truth: Cityscapes `{result.get('cityscapes')}`, split {result['split']} "
            f"({result.get('ground_truth_images')} images), scored at full resolution on the 19 classes."
        )
    lines += _shards_scored(result)
    return [*lines, ""] if lines else []


def _shards_scored(result: dict) -> list[str]:
    """A line saying which shard (`evaluate-seg --shard`) or which merged shards (`merge-metrics`) these are."""
    shard, merged = result.get("shard"), result.get("merged")
    if shard:
        return [
            f"Shard {shard['index']}/{shard['count']}: {shard['images']} of these images (merge-metrics sums shards)."
        ]
    if merged:
        missing = ", ".join(f"{index}/{merged['count']}" for index in merged["missing"])
        return [
            f"Merged from {len(merged['shards'])} of {merged['count']} shards"
            + (f"; missing shards {missing}, whose images are not scored." if missing else ".")
        ]
    return []


def metrics_markdown(result: dict) -> str:
    """A human-readable summary of a metrics.json dict: the four scores, then the per-class table."""
    lines = [
        "# Segmentation metrics",
        "",
        *_what_was_scored(result),
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
    result = json_plain(result)
    write_json(out_dir / "metrics.json", result)
    atomic_write_bytes(out_dir / "metrics.md", metrics_markdown(result).encode())
    return result
