"""Merging the metrics of evaluate-seg shards (`--shard I/N`) into the metrics of the whole split.

Each shard's metrics.json carries its raw 19 x 20 confusion matrix and its shard. The merge checks the shards belong
to one evaluation (same classes, same N, the same split and model or predictions, each shard once), sums the
matrices and writes metrics.json / metrics.md with `runtime.metrics.write_metrics`, the code an unsharded run uses:
every score is a function of the summed matrix, so the merged metrics equal an unsharded run's exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.eval_figures import write_eval_figures
from uda_trt.runtime.metrics import ConfusionMatrix, write_metrics

METRICS_NAME = "metrics.json"
# what every shard of one evaluation has in common (paths are left out: shards may run where the data is mounted
# elsewhere; the artifact is compared by its sha256)
SHARED_KEYS = (
    "schema_version",
    "num_classes",
    "class_names",
    "mode",
    "split",
    "ground_truth_images",
    "id_type",
    "artifact_sha256",
    "batch_size",  # --engine: the shards' unit
)
# what the merged metrics.json says about what was scored, taken from the first shard
DESCRIBING_KEYS = (
    "mode",
    "predictions",
    "id_type",
    "artifact",
    "artifact_sha256",
    "architecture",
    "batch_size",
    "cityscapes",
    "split",
    "ground_truth_images",
)


@dataclass(frozen=True)
class ShardMetrics:
    """One shard's metrics.json, read and checked."""

    folder: Path
    metrics: dict
    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def read_shard(folder: Path) -> ShardMetrics:
    """FOLDER/metrics.json of an `evaluate-seg --shard` run; a UserError naming the file when it is not one."""
    path = Path(folder) / METRICS_NAME
    if not path.is_file():
        raise UserError(f"{folder}: no {METRICS_NAME} (give the --output folders of evaluate-seg --shard runs)")
    try:
        metrics = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    shard = metrics.get("shard") if isinstance(metrics, dict) else None
    if not isinstance(shard, dict):
        raise UserError(f"{path}: records no shard (evaluate-seg ran without --shard); merge-metrics merges shards")
    try:
        index, count = int(shard["index"]), int(shard["count"])
        matrix = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
        classes = int(metrics["num_classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not an evaluate-seg metrics file ({exc})") from None
    if matrix.shape != (classes, classes + 1) or (matrix < 0).any():
        raise UserError(f"{path}: confusion_matrix is not {classes} x {classes + 1} counts")
    if not 0 <= index < count:
        raise UserError(f"{path}: shard {index}/{count} is not a shard I/N with 0 <= I < N")
    return ShardMetrics(Path(folder), metrics, index, count)


def check_together(shards: list[ShardMetrics], allow_missing: bool = False) -> list[int]:
    """Refuse shards that are not of one evaluation, in one line; returns the missing shard indices (refused
    too unless `allow_missing`)."""
    first = shards[0]
    seen: dict[int, ShardMetrics] = {}
    for shard in shards:
        if shard.count != first.count:
            raise UserError(
                f"{shard.folder}: shard {shard.label}, but {first.folder} is shard {first.label}; "
                "give the shards of one evaluate-seg --shard I/N job (one N)"
            )
        if shard.index in seen:
            raise UserError(f"{seen[shard.index].folder} and {shard.folder} are both shard {shard.label}")
        seen[shard.index] = shard
        for key in SHARED_KEYS:
            if shard.metrics.get(key) != first.metrics.get(key):
                raise UserError(
                    f"{shard.folder}: {key} is {_short(shard.metrics.get(key))}, but {first.folder} has "
                    f"{_short(first.metrics.get(key))}; the shards of one evaluation share it"
                )
    missing = [index for index in range(first.count) if index not in seen]
    if missing and not allow_missing:
        names = ", ".join(f"{index}/{first.count}" for index in missing)
        raise UserError(
            f"shard(s) {names} missing: give every shard's folder, or pass --allow-missing to merge only these"
        )
    return missing


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def merge_shards(shards: list[ShardMetrics], output: Path, missing: list[int], figures: bool = True) -> dict:
    """Sum the shards' matrices and counts and write OUTPUT/metrics.{json,md} (and, with `figures`,
    OUTPUT/confusion.png); returns the metrics.json dict."""
    shards = sorted(shards, key=lambda shard: shard.index)
    cm = ConfusionMatrix()
    for shard in shards:
        cm.add(np.asarray(shard.metrics["confusion_matrix"], dtype=np.int64))
    first = shards[0].metrics
    extra = {key: first[key] for key in DESCRIBING_KEYS if key in first}
    if first.get("mode") == "engine":  # shards may have run on different machines
        extra["backend"] = ", ".join(sorted({str(shard.metrics.get("backend")) for shard in shards}))
    extra["skipped"] = [item for shard in shards for item in shard.metrics.get("skipped") or []]
    extra["merged"] = {
        "count": shards[0].count,
        "shards": [
            {"index": shard.index, "folder": str(shard.folder), "images": shard.metrics["shard"].get("images")}
            for shard in shards
        ],
        "missing": missing,
    }
    drawn = write_eval_figures(Path(output), cm.matrix, []) if figures else []
    extra["figures"] = [path.name for path in drawn]
    scored = sum(int(shard.metrics.get("images_scored", 0)) for shard in shards)
    skipped = sum(int(shard.metrics.get("images_skipped", 0)) for shard in shards)
    return write_metrics(Path(output), cm, scored, skipped, extra)
