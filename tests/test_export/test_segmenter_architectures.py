"""The segmenters written here (the studies' U-Net, DeepLabV3+) export to ONNX with dynamic sizes and ONNX Runtime
matches PyTorch at sizes that are not multiples of the models' strides, with uint8 only at the graph's edges.

Through the functions export_onnx runs (export_graph, check_onnx_against_torch, uint8_violations), FP32 only: a full
export of these 120-160 MB graphs with its FP16 step costs tens of CPU seconds each. deeplabv3plus_mobilenet goes
through the whole chain, FP16 included, in tests/test_export/commands/test_segmenter_chain.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from uda_trt.export.graph_checks import uint8_violations
from uda_trt.export.graphs import SegmenterGraph
from uda_trt.export.onnx_export import (
    DEFAULT_OPSET,
    IR_VERSION,
    check_onnx_against_torch,
    export_graph,
    reference_margins,
)
from uda_trt.export.parity import synthetic_parity_images
from uda_trt.runtime.runners import OnnxRuntimeRunner
from uda_trt.runtime.sidecar import Sidecar, file_sha256
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

# (w, h): odd, so the U-Net's pools round up and its crops act; DeepLabV3+'s stride-4 and stride-16 maps do not
# divide evenly. Traced at 64x32, so any size that works here works because the graph's sizes are dynamic.
SIZES = ((67, 45), (50, 37))


def _sidecar(path: Path, architecture: str) -> Sidecar:
    """What the runner reads of the sidecar export_onnx would write (tensor names, layouts, scale)."""
    return Sidecar(
        task="segment",
        architecture=architecture,
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "labels", "dtype": "uint8", "layout": "NHW"}],
        size_divisor=1,
        artifacts={"onnx": {"file": path.name, "sha256": file_sha256(path)}},
        source_checkpoint={"file": "none", "sha256": "0" * 64},
        opset=DEFAULT_OPSET,
        ir_version=IR_VERSION,
        exporter_version="test",
        scale=0.75,
    )


@pytest.mark.parametrize("architecture", ["unet", "deeplabv3plus_resnet50"])
def test_onnx_matches_pytorch_at_sizes_that_are_not_multiples_of_the_stride(tmp_path, architecture):
    torch.manual_seed(0)
    graph = SegmenterGraph(build_segmenter(architecture), 0.75, NORMALIZATION["mean"], NORMALIZATION["std"])
    model = export_graph(graph, "labels", (64, 32))
    assert uint8_violations(model) == []  # TensorRT can parse it
    path = tmp_path / f"{architecture}.onnx"
    path.write_bytes(model.SerializeToString())

    images = [synthetic_parity_images("segment", size, 1)[0] for size in SIZES]
    sidecar = _sidecar(path, architecture)
    report = check_onnx_against_torch(graph, path, sidecar, images, reference_margins(graph, images))
    assert report.passed and report.images == 2, report.summary()
    assert report.pixels == sum(w * h for w, h in SIZES)  # labels at each input's full size
    with OnnxRuntimeRunner(path, sidecar, "onnxruntime-cpu") as runner:
        batch = np.stack([images[0], images[0][:, ::-1]])  # a batch of two, as evaluate-seg --batch-size sends
        labels = runner.infer({"images": batch})["labels"]
    assert labels.shape == (2, 45, 67) and labels.dtype == np.uint8 and labels.max() < 19
