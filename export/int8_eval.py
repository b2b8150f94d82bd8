"""export-trt --int8-eval: what INT8 costs a segmenter in accuracy, beside the label gate.

The gate compares STEM.int8.onnx with STEM.onnx label by label on a few held-out images; this scores both against
ground truth on a labelled Cityscapes-layout split (the layout evaluate-seg reads), through the runtime's own
evaluation (runtime.evaluate.score_engine, the code behind `evaluate-seg --engine`), so the two mIoUs and their
difference are the numbers evaluate-seg gives for each file. The figures go into the sidecar, under
validation.int8_onnx.evaluation.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import json_plain
from uda_trt.runtime.sidecar import load_sidecar, sidecar_path

DEFAULT_SPLIT = "val"


def check_int8_eval(root: Path, split: str = DEFAULT_SPLIT) -> None:
    """Refuse (UserError, exit 2, naming --int8-eval) a DATASET evaluate-seg could not score, before any export:
    a missing folder, or no labelled leftImg8bit/SPLIT images."""
    from uda_trt.runtime.datasets import cityscapes_samples

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--int8-eval {root}: folder not found")
    try:
        cityscapes_samples(root, split, require_labels=True)
    except UserError as error:
        raise UserError(f"--int8-eval {root}: {error.message} (a Cityscapes-layout root with split {split})") from None


def miou_change_points(fp32: float | None, int8: float | None) -> float | None:
    """INT8 minus FP32 mIoU in percentage points; None when either is undefined."""
    if fp32 is None or int8 is None or not (math.isfinite(fp32) and math.isfinite(int8)):
        return None
    return 100 * (int8 - fp32)


def evaluate_int8(onnx_path: Path, int8_path: Path, root: Path, split: str = DEFAULT_SPLIT) -> dict[str, Any]:
    """Score STEM.onnx and STEM.int8.onnx on ROOT's SPLIT and record both mIoUs and their change in the sidecar.

    Returns the record (JSON-plain: an undefined mIoU is None): dataset, split, images scored and skipped,
    fp32_miou and int8_miou (fractions), miou_change_points (INT8 minus FP32, percentage points).
    """
    from uda_trt.runtime.evaluate import score_engine

    scored = {name: score_engine(path, root, split) for name, path in (("fp32", onnx_path), ("int8", int8_path))}
    miou = {name: outcome.cm.scores()["mean_iou"] for name, outcome in scored.items()}
    record = json_plain(
        {
            "dataset": str(Path(root).resolve()),
            "split": split,
            "images_scored": scored["int8"].scored,
            "images_skipped": len(scored["int8"].skipped),
            "fp32_miou": miou["fp32"],
            "int8_miou": miou["int8"],
            "miou_change_points": miou_change_points(miou["fp32"], miou["int8"]),
        }
    )
    json_path = sidecar_path(onnx_path)
    current = load_sidecar(json_path)
    validation = dict(current.validation or {})
    validation["int8_onnx"] = {**validation.get("int8_onnx", {}), "evaluation": record}
    dataclasses.replace(current, validation=validation).write(json_path)
    return record


def summary_line(record: dict[str, Any]) -> str:
    """'mIoU FP32 x.x, INT8 y.y (change +z.z points)', percentages with one decimal; n/a where undefined."""

    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    change = record["miou_change_points"]
    change_text = "n/a" if change is None else f"{change:+.1f} points"
    return f"mIoU FP32 {percent(record['fp32_miou'])}, INT8 {percent(record['int8_miou'])} (change {change_text})"
