"""The export-trt --int8 runs several test modules read (test_int8, test_int8_engine, commands/test_int8_eval), made
once per session (helpers.shared.run_once): each costs a CLI process that imports torch and several quantizations
of its model, and every test that reads one only reads it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from helpers.checkpoints import write_generator
from helpers.cli import run_cli
from helpers.datasets import write_cityscapes, write_gta5
from helpers.shared import as_process, process_record, run_once

TRANSLATOR_SIZE = "64x32"
TRANSLATOR_CALIBRATION_IMAGES = 8  # of the 12-image GTA5 root: 3 held out, 8 of the other 9 calibrate

# The segmenter's data: one Cityscapes-layout root whose val split (64x32) both calibrates (--calibration-split val,
# not the default, so the flag is seen to reach the sidecar) and is scored by --int8-eval (its default split).
SEGMENTER_SPLIT = "val"
SEGMENTER_CITIES = {"aachen": 4, "bremen": 4}  # 8 images: 2 held out for the gate, 6 calibrate
SEGMENTER_CALIBRATION_IMAGES = 6


def export_int8_translator(folder: Path, *args: object) -> dict:
    """export-trt --int8 (then `args`) on a barely trained generator (helpers.write_generator, trained on
    FOLDER/gta5: 12 GTA5-layout images, 80x40), calibrated on that root; the process's record.

    Writes FOLDER/gta5 and FOLDER/run/latest_net_G_A.{pth,onnx,json} (and .int8.onnx when the gates pass).
    """
    gta5 = write_gta5(folder / "gta5", count=12, size=(80, 40))
    checkpoint = write_generator(folder / "run", gta5)
    command = ("export-trt", checkpoint, "--size", TRANSLATOR_SIZE, "--no-fp16", "--int8", "--calibration", gta5)
    return process_record(run_cli(*command, *args))


def shared_int8_translator(tmp_path_factory) -> tuple[Path, SimpleNamespace]:
    """(FOLDER/run, finished process) of `export_int8_translator` with the default (auto) calibration method on
    TRANSLATOR_CALIBRATION_IMAGES images, made once per session; never modify its files."""
    images = TRANSLATOR_CALIBRATION_IMAGES

    def make(folder: Path) -> dict:
        return export_int8_translator(folder, "--calibration-images", images)

    folder, record = run_once(tmp_path_factory, "int8-translator", make)
    return folder / "run", as_process(record)


def export_int8_segmenter(folder: Path) -> dict:
    """export-trt --int8 --int8-eval of an untrained LR-ASPP segmenter (torch seed 0, scale 0.5): parity on the
    val images, calibrated (auto method) on SEGMENTER_CALIBRATION_IMAGES of them, both mIoUs scored on them too; the
    process's record.

    Writes FOLDER/seg/best.{pt,onnx,int8.onnx,json} and FOLDER/cityscapes. An untrained segmenter predicts nearly
    one class everywhere: the runs check plumbing (layout, split, label gate, evaluation), not INT8 quality.
    """
    import torch

    from uda_trt.train.checkpoints import save_segmenter_checkpoint
    from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

    torch.manual_seed(0)
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    checkpoint = folder / "seg" / "best.pt"
    model = build_segmenter(config["architecture"], num_classes=19)
    save_segmenter_checkpoint(checkpoint, {**config, "normalization": NORMALIZATION}, model.state_dict())
    root = folder / "cityscapes"
    write_cityscapes(root, SEGMENTER_CITIES, size=(64, 32), split=SEGMENTER_SPLIT)
    command = (
        "export-trt", checkpoint, "--no-fp16", "--parity-images", root / "leftImg8bit" / SEGMENTER_SPLIT,
        "--int8", "--calibration", root, "--calibration-split", SEGMENTER_SPLIT,
        "--calibration-images", SEGMENTER_CALIBRATION_IMAGES, "--int8-eval", root,
    )  # fmt: skip
    return process_record(run_cli(*command))


def shared_int8_segmenter(tmp_path_factory) -> tuple[Path, SimpleNamespace]:
    """(FOLDER, finished process) of `export_int8_segmenter`, made once per session; never modify its files."""
    folder, record = run_once(tmp_path_factory, "int8-segmenter", export_int8_segmenter)
    return folder, as_process(record)


__all__ = [
    "SEGMENTER_CALIBRATION_IMAGES",
    "SEGMENTER_CITIES",
    "SEGMENTER_SPLIT",
    "TRANSLATOR_CALIBRATION_IMAGES",
    "TRANSLATOR_SIZE",
    "export_int8_segmenter",
    "export_int8_translator",
    "shared_int8_segmenter",
    "shared_int8_translator",
]
