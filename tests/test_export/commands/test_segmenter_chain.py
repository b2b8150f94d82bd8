"""A segmenter architecture written here, as a user runs it: train-segmenter --arch deeplabv3plus_mobilenet ->
export (FP32 and FP16 ONNX, both checked) -> evaluate-seg --engine STEM.onnx, on tiny data whose evaluation images
(67x45) are not a multiple of any of the model's strides.

The two ends run as console scripts; the export runs in this process through export_onnx, the function export-trt
calls (its command line is tested on the same kind of checkpoint in test_export_trt.py): a third torch import would
cost more than the rest of the test.

The other new architectures share the checkpoint format and the export path; their ONNX parity at such sizes is in
tests/test_export/test_segmenter_architectures.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import write_cityscapes, write_gta5
from uda_trt.export.graphs import SegmenterGraph
from uda_trt.export.onnx_export import export_onnx
from uda_trt.export.parity import load_parity_images
from uda_trt.runtime.imageio import read_rgb
from uda_trt.runtime.labels import label_ids_to_train_ids
from uda_trt.runtime.metrics import ConfusionMatrix
from uda_trt.train.checkpoints import load_segmenter_checkpoint
from uda_trt.train.segmenters import build_segmenter_from_checkpoint

ARCH = "deeplabv3plus_mobilenet"


@pytest.mark.slow
def test_deeplabv3plus_trains_exports_and_evaluate_seg_scores_what_pytorch_predicts(tmp_path, cli):
    source = write_gta5(tmp_path / "gta5", count=4, size=(64, 32), seed=1)
    cityscapes = tmp_path / "cityscapes"
    truth = write_cityscapes(cityscapes, {"aachen": 2}, size=(67, 45), seed=4, split="val")
    run = tmp_path / "run"

    trained = cli(
        "train-segmenter", "--data", source, "--output", run, "--arch", ARCH, "--scale", "1", "--crop-size", "full",
        "--batch-size", "2", "--iterations", "3", "--optimizer", "adamw", "--lr", "1e-3", "--val-fraction", "0.25",
        "--precise-bn-batches", "1", "--workers", "0", "--device", "cpu",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip() == str(run / "best.pt")
    checkpoint = load_segmenter_checkpoint(run / "best.pt")
    assert checkpoint["format"] == "uda-trt-segmenter" and checkpoint["config"]["architecture"] == ARCH

    images = cityscapes / "leftImg8bit" / "val"
    export_onnx(run / "best.pt", parity_images=load_parity_images(images))  # as export-trt --parity-images does
    sidecar = json.loads((run / "best.json").read_text())
    assert sidecar["architecture"] == ARCH and sidecar["artifacts"]["fp16_onnx"]["file"] == "best.fp16.onnx"
    for artifact in ("onnx", "fp16_onnx"):  # FP32 vs PyTorch, FP16 vs FP32, on the 67x45 images
        assert sidecar["validation"][artifact]["passed"] and sidecar["validation"][artifact]["images"] == 2

    scored = cli(
        "evaluate-seg", "--engine", run / "best.onnx", "--cityscapes", cityscapes, "--output", tmp_path / "metrics"
    )
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert (metrics["images_scored"], metrics["images_skipped"]) == (2, 0)

    # What the checkpoint predicts in PyTorch, at full size, scored the same way: the chain lost nothing on the way.
    graph = SegmenterGraph(build_segmenter_from_checkpoint(checkpoint), 1.0, **checkpoint["config"]["normalization"])
    expected = ConfusionMatrix()
    for stem, label_ids in truth.items():
        rgb = read_rgb(images / "aachen" / f"{stem}_leftImg8bit.png")
        with torch.inference_mode():
            predicted = graph(torch.from_numpy(rgb[None]))[0].numpy()
        expected.update(label_ids_to_train_ids(label_ids), predicted)
    moved = np.abs(np.array(metrics["confusion_matrix"]) - expected.matrix).sum()
    assert expected.matrix.sum() > 0 and moved <= 0.002 * expected.matrix.sum()  # near-tie pixels may flip
