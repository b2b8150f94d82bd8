"""What a trainer's output folder says about its run: in progress (a training state), finished (`finished.json`), or
none; and which settings define a run, so a rerun that changes one is refused naming its flag as the user types it.

A finished run removes both training states (each two or three times the model: ~320 MB for deeplabv3_resnet50)
unless asked to keep them (`--keep-train-state`), and leaves `finished.json`: the iteration it reached and its
settings. --resume of a finished run returns at once (run-uda resumes every stage of a study this way), a rerun
without --resume is refused as for a run in progress, and a resume with a changed setting that defines the run, or
with a longer budget that would need the removed state, is refused in one line.

Torch-free, so the commands answer these questions before importing torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import write_json
from uda_trt.runtime.jobs.folders import refuse_changed

LATEST_STATE = "latest_train_state.pt"
PREVIOUS_STATE = "previous_train_state.pt"
FINISHED = "finished.json"
RESUME_REMEDY = "resume with the same options, or choose another --output"

CYCLEGAN_FINISHED = "uda-trt-cyclegan-finished"
SEGMENTER_FINISHED = "uda-trt-segmenter-finished"
PIX2PIX_FINISHED = "uda-trt-pix2pix-finished"
# What defines a run: a resumed run must repeat it. Config field -> the option that sets it. CycleGAN: the network
# shapes, what fixes the data order and the pooled images' size (n_layers_d has no option: always 3), and the
# semantic-consistency loss (its segmenter file as given, and its weight).
CYCLEGAN_FIXED = {
    "ngf": "--ngf",
    "n_blocks": "--n-blocks",
    "ndf": "--ndf",
    "n_layers_d": "n_layers_d",
    "batch_size": "--batch-size",
    "load_width": "--load-width",
    "crop_size": "--crop-size",
    "seed": "--seed",
    "semantic_loss": "--semantic-loss",
    "semantic_weight": "--semantic-weight",
}
# pix2pix: the network shapes, what fixes the data order and crops, and which side is the input.
PIX2PIX_FIXED = {
    "ngf": "--ngf",
    "num_downs": "--num-downs",
    "ndf": "--ndf",
    "n_layers_d": "n_layers_d",
    "batch_size": "--batch-size",
    "load_size": "--load-size",
    "crop_size": "--crop-size",
    "direction": "--direction",
    "seed": "--seed",
}
SEGMENTER_FIXED = {
    "architecture": "--arch",
    "optimizer": "--optimizer",
    "batch_size": "--batch-size",
    "scale": "--scale",
    "crop_size": "--crop-size",
    "val_fraction": "--val-fraction",
    "seed": "--seed",
}


def has_train_state(folder: Path) -> bool:
    """Whether `folder` holds a training state of either generation."""
    return (Path(folder) / LATEST_STATE).exists() or (Path(folder) / PREVIOUS_STATE).exists()


def holds_run(folder: Path) -> bool:
    """Whether `folder` holds a training run, in progress (a training state) or finished (`finished.json`)."""
    return has_train_state(folder) or (Path(folder) / FINISHED).exists()


def refuse_rerun(folder: Path) -> None:
    """A run started without --resume into a folder that holds one: UserError naming --resume."""
    if holds_run(folder):
        raise UserError(
            f"{folder} already holds a training run; pass --resume to continue it or choose another --output"
        )


def remove_train_states(folder: Path) -> None:
    """Delete both training states of a finished run (a damaged one a fallback set aside stays for inspection)."""
    for name in (LATEST_STATE, PREVIOUS_STATE):
        (Path(folder) / name).unlink(missing_ok=True)


def write_finished(folder: Path, fmt: str, iteration: int, config: Mapping[str, Any]) -> None:
    """Record, atomically, that the run in `folder` finished at `iteration` with settings `config` (plain types)."""
    write_json(Path(folder) / FINISHED, {"format": fmt, "version": 1, "iteration": iteration, "config": config})


def read_finished(folder: Path, fmt: str) -> dict[str, Any] | None:
    """The finished-run record of `folder`, or None when there is none; UserError when it is not one of `fmt`."""
    path = Path(folder) / FINISHED
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: unreadable finished-run record ({error})") from None
    if not isinstance(record, dict) or record.get("format") != fmt or not isinstance(record.get("config"), dict):
        raise UserError(f"{path}: not a {fmt} record")
    return record


def finished_iteration(
    folder: Path, fmt: str, settings: Mapping[str, Any], flags: Mapping[str, str], iterations: int
) -> int | None:
    """For --resume: the iteration of the finished run in `folder` when it needs no more training, or None when there
    is no finished run there, or a training state that resumes as usual (kept with --keep-train-state).

    `settings` are this invocation's values of settings that define the run (field -> value, `flags` names their
    options); one that differs from the record is refused as `refuse_settings_changed` does, and so is a longer
    run than the record's, which would need the training state the finished run removed."""
    if has_train_state(folder):
        return None
    record = read_finished(folder, fmt)
    if record is None:
        return None
    path = Path(folder) / FINISHED
    refuse_settings_changed(path, record["config"], settings, flags)
    done = int(record["iteration"])
    if iterations > done:
        raise UserError(
            f"{path}: the run finished at iteration {done} and its training state was removed, so it cannot go on "
            f"to --iterations {iterations}; choose another --output (--keep-train-state keeps a run extendable)"
        )
    return done


# How a setting left unset reads in a refusal: `full` for no crop (the default), `none` for an option not given.
UNSET_WORDS = {"semantic_loss": "none", "semantic_weight": "none"}


def flag_value(value: Any, unset: str = "full") -> str:
    """A setting's value as a user types it: sizes as WIDTHxHEIGHT, `unset` for None (no crop: `full`), numbers and
    names plainly."""
    if value is None:
        return unset
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return str(value)


def refuse_settings_changed(
    record: Path, previous: Mapping[str, Any], settings: Mapping[str, Any], flags: Mapping[str, str]
) -> None:
    """One-line UserError naming the flag and both values, as typed, of the first setting in `settings` that
    differs from `previous` (the config `record` holds)."""
    before = {key: flag_value(previous.get(key), UNSET_WORDS.get(key, "full")) for key in settings}
    now = {key: flag_value(value, UNSET_WORDS.get(key, "full")) for key, value in settings.items()}
    refuse_changed(record, before, now, flags, RESUME_REMEDY)
