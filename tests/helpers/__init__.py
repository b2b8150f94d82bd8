"""Test helpers, importable as `helpers` (pyproject puts tests/ on pytest's pythonpath; the repository root is not).

One implementation of each: `run_cli` and `assert_user_error` (cli; the commands that import torch run forked from a
preloaded interpreter, helpers.preloaded), the tiny-dataset writer (datasets), the tiny ONNX models and one-layer
graphs (models), a tiny generator checkpoint and a built engine's layers (checkpoints), folder checks (files), fault
injection (faults) and a fake clock (clock). conftest.py files only wrap these in fixtures. Artifacts several modules
read, made once per session, are imported from their modules: the smoke study (helpers.studies) and the INT8 exports
(helpers.int8_exports).
"""

from __future__ import annotations

from helpers.checkpoints import GENERATOR_STEM, engine_layers, write_generator
from helpers.cli import BIN, assert_user_error, run_cli
from helpers.clock import FakeClock
from helpers.datasets import EVAL_LABEL_IDS, VOID_LABEL_IDS, write_cityscapes, write_gta5, write_paired_layouts
from helpers.faults import KILLED, LogProgress, kill_and_rerun, kill_points, run_deleting, run_until
from helpers.files import (
    assert_nothing_partial,
    assert_readable,
    copy_files,
    count_visible,
    png_digests,
    pth_bytes,
    visible_files,
    visible_paths,
    watch_untouched,
)
from helpers.models import one_layer_model, run_one_layer_model, write_invert_translator, write_red_over_14_segmenter
from helpers.pages import assert_study_pages
from helpers.processes import processes_left
from helpers.shared import as_process, process_record, run_once

__all__ = [
    "BIN",
    "EVAL_LABEL_IDS",
    "VOID_LABEL_IDS",
    "KILLED",
    "FakeClock",
    "GENERATOR_STEM",
    "engine_layers",
    "write_generator",
    "LogProgress",
    "assert_nothing_partial",
    "as_process",
    "assert_readable",
    "assert_study_pages",
    "assert_user_error",
    "copy_files",
    "count_visible",
    "kill_and_rerun",
    "process_record",
    "processes_left",
    "run_once",
    "kill_points",
    "png_digests",
    "pth_bytes",
    "run_cli",
    "run_deleting",
    "run_until",
    "visible_files",
    "visible_paths",
    "watch_untouched",
    "write_cityscapes",
    "write_gta5",
    "one_layer_model",
    "run_one_layer_model",
    "write_invert_translator",
    "write_paired_layouts",
    "write_red_over_14_segmenter",
]
