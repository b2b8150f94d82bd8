"""evaluate-seg --predictions against the official Cityscapes evaluator, both run as users run them (criterion C).

Both are separate processes timed from start to exit on the same prediction files. The official evaluator runs its
`csEvalPixelLevelSemanticLabeling` script's `main()` with its defaults, ground truth found through
CITYSCAPES_DATASET, predictions through CITYSCAPES_RESULTS, results written to CITYSCAPES_EXPORT_DIR. Its defaults
include instance-level scores (iIoU), whose code calls `np.in1d`, which NumPy 2.4 removed: the child restores it as
the `np.isin` NumPy documents as its replacement, so the script runs as it does for users on older NumPy. It runs a
second time with instance-level scores off (pixel-level IoU only, what evaluate-seg computes), reported beside.
The other process is the `evaluate-seg` console script. Per-class IoU must be identical in all three.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from uda_trt.benchmarks.throughput.measure import python_code_command, python_entry_command, run_child
from uda_trt.runtime.datasets import cityscapes_ground_truth
from uda_trt.runtime.imageio import read_label
from uda_trt.runtime.labels import CLASS_NAMES, TRAIN_ID_TO_LABEL_ID

OFFICIAL_MODULE = "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"
OFFICIAL_RESULT = "resultPixelLevelSemanticLabeling.json"
_RESTORE_IN1D = """
import numpy as np
if not hasattr(np, "in1d"):  # removed in NumPy 2.4; isin is its documented replacement
    np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(
        a, b, assume_unique=assume_unique, invert=invert
    ).ravel()
"""
# The script's main(), as its console script runs it (no arguments: ground truth by glob, predictions by search).
OFFICIAL_DEFAULT = (
    _RESTORE_IN1D
    + f"""
import sys
from {OFFICIAL_MODULE} import main
sys.argv = [sys.argv[0]]
main()
"""
)
# The same with instance-level scores off: what main() runs, minus the iIoU work.
OFFICIAL_PIXEL_ONLY = f"""
import glob
from {OFFICIAL_MODULE} import args, evaluateImgLists, getPrediction
args.evalInstLevelScore = False
ground_truth = glob.glob(args.groundTruthSearch)
evaluateImgLists([getPrediction(args, gt) for gt in ground_truth], ground_truth, args)
"""
MAX_LABEL_ID = 33  # the official evaluator's confusion matrix covers label IDs 0..33
MIB = 1 << 20


def official_unavailable_reason() -> str | None:
    """None when cityscapesscripts is installed, else one line."""
    if importlib.util.find_spec("cityscapesscripts") is None:
        return "cityscapesscripts not installed (pip install 'uda-trt[dev]')"
    return None


def cython_fast_path() -> bool:
    """Whether the official evaluator's compiled confusion-matrix extension (its CSUPPORT path) is importable."""
    return importlib.util.find_spec("cityscapesscripts.evaluation.addToConfusionMatrix") is not None


def make_predictions(cityscapes_root: Path, split: str, pred_dir: Path, seed: int = 0) -> int:
    """Write `pred_dir/{city}/{stem}_pred_labelIds.png` for every ground truth: the labels with some perturbed.

    Per image: a few rectangles relabelled with a random class or a non-evaluated ID, and 1 % of pixels set to a
    random label ID 0..33, so every IoU is below 1 and the 'other' predictions are exercised. Returns the count.
    """
    eval_ids = np.asarray(TRAIN_ID_TO_LABEL_ID, dtype=np.uint8)
    pairs = cityscapes_ground_truth(cityscapes_root, split)
    for index, (stem, gt_path) in enumerate(pairs):
        rng = np.random.default_rng((seed, index))
        labels = read_label(gt_path).copy()
        height, width = labels.shape
        for _ in range(6):
            h, w = int(rng.integers(height // 20, height // 4)), int(rng.integers(width // 20, width // 4))
            y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
            labels[y : y + h, x : x + w] = rng.choice(eval_ids) if rng.random() < 0.8 else rng.integers(0, 7)
        noise = rng.random(labels.shape) < 0.01
        labels[noise] = rng.integers(0, MAX_LABEL_ID + 1, size=int(noise.sum()), dtype=np.uint8)
        city = stem.split("_")[0]
        out = Path(pred_dir) / city / f"{stem}_pred_labelIds.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), labels, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise RuntimeError(f"{out}: could not write the prediction")
    return len(pairs)


def run_official(cityscapes_root: Path, pred_dir: Path, out_dir: Path, instance_level: bool = True) -> dict:
    """The official evaluator on split val (the only split it scores): seconds, peak RSS, per-class IoU by name.

    instance_level: its default run (with iIoU); False: pixel-level scores only.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CITYSCAPES_DATASET": str(Path(cityscapes_root).resolve()),
        "CITYSCAPES_RESULTS": str(Path(pred_dir).resolve()),
        "CITYSCAPES_EXPORT_DIR": str(Path(out_dir).resolve()),
    }
    child = run_child(python_code_command(OFFICIAL_DEFAULT if instance_level else OFFICIAL_PIXEL_ONLY), env=env)
    if child.returncode != 0:
        tail = (child.stdout + child.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"the official evaluator failed (exit {child.returncode}): {' | '.join(tail)}")
    result = json.loads((Path(out_dir) / OFFICIAL_RESULT).read_text())
    how = "main() with its defaults" if instance_level else "main() with evalInstLevelScore = False"
    return {
        "command": f"{OFFICIAL_MODULE}: {how}",
        "seconds": child.seconds,
        "peak_rss_mb": child.peak_rss_bytes / MIB,
        "peak_rss_method": child.peak_rss_method,
        "cython_fast_path": cython_fast_path(),
        "instance_level_scores": instance_level,
        "class_iou": {name: float(result["classScores"][name]) for name in CLASS_NAMES},
    }


def run_ours(cityscapes_root: Path, pred_dir: Path, out_dir: Path, split: str = "val") -> dict:
    """`evaluate-seg --predictions` as a user runs it: seconds, peak RSS, per-class IoU by name (NaN for null).
    With --no-figures: the official evaluator and the peer draw no pictures, so all three time the scoring alone."""
    command = python_entry_command(
        "uda_trt.runtime.commands.evaluate_seg:main",
        "--predictions",
        pred_dir,
        "--cityscapes",
        cityscapes_root,
        "--split",
        split,
        "--id-type",
        "labelid",
        "--output",
        out_dir,
        "--no-figures",
    )
    child = run_child(command)
    if child.returncode != 0:
        raise RuntimeError(f"evaluate-seg failed (exit {child.returncode}): {child.stderr.strip()[-500:]}")
    metrics = json.loads((Path(out_dir) / "metrics.json").read_text())
    iou = {row["name"]: math.nan if row["iou"] is None else float(row["iou"]) for row in metrics["per_class"]}
    return {
        "command": "evaluate-seg --predictions ... --id-type labelid --no-figures",
        "seconds": child.seconds,
        "peak_rss_mb": child.peak_rss_bytes / MIB,
        "peak_rss_method": child.peak_rss_method,
        "images_scored": metrics["images_scored"],
        "class_iou": iou,
    }


def compare_iou(official: dict[str, float], ours: dict[str, float]) -> dict:
    """Class-by-class equality (NaN equals NaN), the largest absolute difference, and the classes that differ."""
    differing = []
    max_diff = 0.0
    for name in CLASS_NAMES:
        a, b = official[name], ours[name]
        if math.isnan(a) or math.isnan(b):
            if math.isnan(a) != math.isnan(b):
                differing.append(name)
                max_diff = math.inf
            continue
        if a != b:
            differing.append(name)
            max_diff = max(max_diff, abs(a - b))
    return {"identical": not differing, "max_abs_diff": max_diff, "differing_classes": differing}
