"""Per-class figures of a study's arms: one bar chart of every arm's per-class IoU, and each arm's confusion matrix
as a row-normalised heatmap, so a reader sees which classes an arm confuses, not only its mean.

Both read the metrics dicts evaluate-seg writes (runtime.metrics.write_metrics: `per_class`, `confusion_matrix` with
ground-truth rows 0..18 and predicted columns 0..18 plus one for predictions outside the 19 classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from uda_trt.benchmarks.figures import _pyplot
from uda_trt.runtime.labels import CLASS_NAMES

PER_CLASS_FIGURE = "per_class_iou.png"
OTHER_COLUMN = "other"  # the confusion matrix's last column: predictions outside the 19 classes


def confusion_figure_name(arm: str) -> str:
    return f"confusion_{arm}.png"


def write_per_class_bars(out: Path, arms: Mapping[str, dict], titles: Mapping[str, str] | None = None) -> Path:
    """OUT/per_class_iou.png: per-class IoU (%) of every arm as grouped bars, classes in train-ID order; a class
    with no ground truth in the scored set (IoU undefined) gets no bar."""
    plt = _pyplot()
    names = list(arms)
    width = 0.8 / max(1, len(names))
    positions = np.arange(len(CLASS_NAMES))
    figure, axis = plt.subplots(figsize=(12, 4.2))
    for index, arm in enumerate(names):
        ious = [entry["iou"] for entry in arms[arm]["metrics"]["per_class"]]
        values = [100 * v if v is not None and np.isfinite(v) else np.nan for v in ious]
        label = (titles or {}).get(arm, arm)
        axis.bar(positions + (index - (len(names) - 1) / 2) * width, values, width, label=label)
    axis.set_xticks(positions, CLASS_NAMES, rotation=45, ha="right")
    axis.set_ylabel("IoU (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Per-class IoU on target val")
    axis.legend(ncols=min(len(names), 4), fontsize="small")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path = Path(out) / PER_CLASS_FIGURE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its pixel count (rows without pixels stay 0): the share of a class's
    pixels predicted as each class."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def write_confusion_heatmap(out: Path, arm: str, metrics: dict, title: str | None = None) -> Path:
    """OUT/confusion_ARM.png: the arm's confusion matrix, row-normalised, class names on both axes, the diagonal
    share written in each cell of it."""
    plt = _pyplot()
    shares = row_normalised(np.asarray(metrics["confusion_matrix"]))
    columns = [*CLASS_NAMES, OTHER_COLUMN][: shares.shape[1]]
    figure, axis = plt.subplots(figsize=(8.6, 7.4))
    image = axis.imshow(shares, cmap="viridis", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("ground truth")
    for row in range(min(shares.shape)):
        if shares[row].sum() > 0:
            colour = "black" if shares[row, row] > 0.6 else "white"
            axis.text(row, row, f"{100 * shares[row, row]:.0f}", ha="center", va="center", fontsize=6, color=colour)
    axis.set_title(f"{title or arm}: share of each ground-truth class's pixels")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    figure.tight_layout()
    path = Path(out) / confusion_figure_name(arm)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_class_figures(out: Path, arms: Mapping[str, dict], titles: Mapping[str, str] | None = None) -> list[Path]:
    """The bar chart and one heatmap per arm; the paths written, bar chart first."""
    paths = [write_per_class_bars(out, arms, titles)]
    for arm, entry in arms.items():
        paths.append(write_confusion_heatmap(out, arm, entry["metrics"], (titles or {}).get(arm)))
    return paths
