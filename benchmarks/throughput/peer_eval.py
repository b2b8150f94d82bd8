"""The evaluator a user would write themselves, the peer evaluate-seg must beat (issue criterion C3).

The straightforward NumPy way, run as its own process on the same prediction files: Pillow decodes each ground-truth
and prediction PNG, one label-ID -> train-ID lookup table maps both, `np.bincount` over `gt * 20 + pred` on the
evaluated pixels gives one image's 19 x 20 confusion matrix, a `multiprocessing.Pool` with one process per core
maps the images and the matrices are summed. Per-class IoU = TP / (TP + FP + FN) over the 19 classes, as the official
evaluator and evaluate-seg count it; the criterion requires it to equal evaluate-seg's exactly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from uda_trt.benchmarks.throughput.measure import python_code_command, run_child
from uda_trt.runtime.labels import CLASS_NAMES

MIB = 1 << 20
PEER_CODE = """
import glob, json, os, sys
from multiprocessing import get_context
import numpy as np
from PIL import Image
from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID

ROOT, PREDICTIONS, SPLIT = os.environ["PEER_GT"], os.environ["PEER_PRED"], os.environ["PEER_SPLIT"]
LUT = np.asarray(LABEL_ID_TO_TRAIN_ID, dtype=np.int64)
PRED_LUT = np.where(LUT == 255, 19, LUT)  # a prediction outside the 19 classes: column 'other'


def matrix(pair):
    gt_path, pred_path = pair
    gt = LUT[np.asarray(Image.open(gt_path))]
    pred = PRED_LUT[np.asarray(Image.open(pred_path))]
    valid = gt != 255
    return np.bincount(gt[valid] * 20 + pred[valid], minlength=19 * 20).reshape(19, 20)


def main():
    pairs = []
    for gt in sorted(glob.glob(os.path.join(ROOT, "gtFine", SPLIT, "*", "*_gtFine_labelIds.png"))):
        stem = os.path.basename(gt)[: -len("_gtFine_labelIds.png")]
        city = stem.split("_")[0]
        pairs.append((gt, os.path.join(PREDICTIONS, city, stem + "_pred_labelIds.png")))
    with get_context("fork").Pool(os.cpu_count()) as pool:
        total = sum(pool.imap_unordered(matrix, pairs, chunksize=4))
    tp = np.diag(total[:, :19]).astype(np.float64)
    fn = total.sum(axis=1) - tp
    fp = total[:, :19].sum(axis=0) - tp
    union = tp + fp + fn
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    json.dump({"images": len(pairs), "iou": iou}, sys.stdout)


if __name__ == "__main__":
    main()
"""


def run_peer(cityscapes_root: Path, pred_dir: Path, split: str = "val") -> dict:
    """The peer evaluator as its own process: seconds, peak RSS, per-class IoU by name (NaN for a class without
    ground truth or prediction)."""
    env = {**os.environ, "PEER_GT": str(cityscapes_root), "PEER_PRED": str(pred_dir), "PEER_SPLIT": split}
    child = run_child(python_code_command(PEER_CODE), env=env)
    if child.returncode != 0:
        raise RuntimeError(f"the peer evaluator failed (exit {child.returncode}): {child.stderr.strip()[-500:]}")
    result = json.loads(child.stdout)
    return {
        "command": "Pillow decode, label-ID table, np.bincount; one process per core (benchmarks.throughput.peer_eval)",
        "seconds": child.seconds,
        "peak_rss_mb": child.peak_rss_bytes / MIB,
        "peak_rss_method": child.peak_rss_method,
        "images_scored": result["images"],
        "class_iou": {
            name: math.nan if value is None else value for name, value in zip(CLASS_NAMES, result["iou"], strict=True)
        },
    }
