"""The training curves of a run-uda study, read from what the trainers write.

CycleGAN: the loss lines of OUTPUT/train.log (`iteration N: lr LR D_A x G_A x ...`, one per log_every
iterations; a resumed run appends, and redoes the iterations since its last save with the same values on the CPU, so
the last line per iteration is kept). Segmenters: OUTPUT/history.json (one entry per held-out score: iteration,
held-out mIoU, mean training loss since the previous score). Timings are left out: the curves are part of
report.json, which a resumed study reproduces value for value.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

CYCLEGAN_LOSSES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")  # train.cyclegan's order
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
# `iter N lr LR D_A x ... idt_B x sec/iter S` as written straight to the file, or `... iteration N: lr LR D_A x ...
# idt_B x, S s/it` as a logging line. The value must end where a separator or the line does: a line cut short by a
# kill and continued by the next run's first line does not parse (that iteration is redone and logged again).
_LOSS_LINE = re.compile(
    rf"\biter(?:ation)? (\d+):? lr {_NUMBER} "
    + " ".join(rf"{name} ({_NUMBER})" for name in CYCLEGAN_LOSSES)
    + r"(?=[ ,]|$)"
)


def cyclegan_losses(folder: Path) -> dict:
    """{"iteration": [...], "losses": {name: [...]}} from FOLDER/train.log, by iteration; empty lists without it."""
    by_iteration: dict[int, list[float]] = {}
    path = Path(folder) / "train.log"
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            match = _LOSS_LINE.search(line.rstrip())
            if match:
                by_iteration[int(match.group(1))] = [float(value) for value in match.groups()[1:]]
    iterations = sorted(by_iteration)
    return {
        "iteration": iterations,
        "losses": {name: [by_iteration[i][k] for i in iterations] for k, name in enumerate(CYCLEGAN_LOSSES)},
    }


def segmenter_curve(folder: Path) -> dict:
    """{"iteration", "heldout_miou", "train_loss"} lists from FOLDER/history.json (None where a score is missing)."""
    path = Path(folder) / "history.json"
    try:
        validations = json.loads(path.read_text()).get("validations", [])
    except (OSError, ValueError, AttributeError):
        validations = []
    return {
        "iteration": [entry["iteration"] for entry in validations],
        "heldout_miou": [_finite(entry.get("heldout_miou")) for entry in validations],
        "train_loss": [_finite(entry.get("train_loss")) for entry in validations],
    }


def study_curves(out: Path, arms: list[str]) -> dict:
    """Every curve of the study in OUT: the CycleGAN losses and each arm's held-out scores."""
    out = Path(out)
    return {
        "cyclegan": cyclegan_losses(out / "cyclegan"),
        "segmenters": {arm: segmenter_curve(out / f"segmenter_{arm}") for arm in arms},
    }


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
