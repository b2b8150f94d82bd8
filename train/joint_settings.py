"""What defines a joint CycleGAN + segmenter run (train-cyclegan --joint-segmenter), torch-free so the command answers
before importing torch: its finished-run format, the settings a resumed run must repeat, and the check that a run
folder is resumed in the mode (joint or plain) it was started in.
"""

from __future__ import annotations

import json
from pathlib import Path

from uda_trt.runtime.errors import UserError
from uda_trt.train.run_folder import CYCLEGAN_FIXED, holds_run

JOINT_FINISHED = "uda-trt-cyclegan-joint-finished"
JOINT_TRAIN_STATE_FORMAT = "uda-trt-cyclegan-joint-train-state"
SEGMENTER_OPTIMIZERS = ("sgd", "adamw")
# A joint run is a CycleGAN run plus its segmenter F_T and the labelled mix it learns from.
JOINT_FIXED = {
    **CYCLEGAN_FIXED,
    "joint_segmenter": "--joint-segmenter",
    "target_label_fraction": "--target-label-fraction",
    "segmenter_optimizer": "--segmenter-optimizer",
    "segmenter_lr": "--segmenter-lr",
    # Fixed although training does not depend on it: config.json then describes every F_T file of the folder.
    "segmenter_precise_bn_batches": "--segmenter-precise-bn-batches",
}


def refuse_other_mode(output: Path, joint: bool) -> None:
    """--resume of a run folder started in the other mode (joint vs plain CycleGAN): one-line UserError naming
    --joint-segmenter. Read from the folder's config.json; a folder without one (no run yet) passes."""
    output = Path(output)
    record = output / "config.json"
    if not holds_run(output) or not record.is_file():
        return
    try:
        recorded = json.loads(record.read_text(encoding="utf-8")).get("config") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return  # the trainer's own state and finished-record checks still apply
    started_joint = recorded.get("joint_segmenter") is not None
    if started_joint and not joint:
        raise UserError(
            f"{output} holds a joint run (--joint-segmenter {recorded['joint_segmenter']}); resume it with the same "
            "--joint-segmenter and --target-label-fraction, or choose another --output"
        )
    if joint and not started_joint:
        raise UserError(
            f"{output} holds a plain CycleGAN run; --joint-segmenter cannot continue it, choose another --output"
        )
