"""Few-output-channel Conv -> stride-2 phase Conv + DepthToSpace + crop (export.output_phases): the rewritten graph
computes what ONNX Runtime's own Conv computes at every input size, odd outputs included, and Convs outside the rule
are left untouched; an exported ResNet translator's STEM.onnx carries the rewrite, its FP16 graph does not."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from helpers import one_layer_model, run_one_layer_model, write_generator
from uda_trt.export.graph_edit import node_attributes
from uda_trt.export.onnx_export import export_onnx
from uda_trt.export.output_phases import stack_output_phases

# H x W through the same file (symbolic axes): even outputs, odd outputs (the crop's work), a one-row output
SIZES = ((12, 10), (13, 9), (7, 8))


def conv_model(
    channels_out: int = 3,
    kernel: tuple[int, int] = (7, 7),
    pads: tuple[int, int, int, int] | None = (0, 0, 0, 0),
    bias: bool = True,
    bias_input: bool = False,
    **attributes,
) -> onnx.ModelProto:
    """x (2, 4, H, W) -> Conv 4 -> channels_out (random weights) -> Relu, opset 14 (export-trt's lowest)."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(channels_out, 4 // attributes.get("group", 1), *kernel)).astype(np.float32)
    if pads is not None:
        attributes["pads"] = list(pads)
    node = helper.make_node(
        "Conv", ["x", "w", "b"] if bias else ["x", "w"], ["layer"], name="out", kernel_shape=list(kernel), **attributes
    )
    biases = rng.normal(size=channels_out).astype(np.float32) if bias else None
    shapes = [2, 4, "height", "width"], [2, channels_out, "out_height", "out_width"]
    return one_layer_model(node, weights, biases, *shapes, bias_input, opset=14)


@pytest.mark.parametrize(
    ("channels_out", "kernel", "pads", "bias"),
    [
        (3, (7, 7), (0, 0, 0, 0), True),  # the ResNet generators' output layer (after its reflection pad)
        (1, (5, 3), (2, 1, 0, 3), False),  # asymmetric pads, a different kernel per axis, no bias
        (7, (3, 3), (1, 1, 1, 1), True),  # the most output channels the rule takes
    ],
)
def test_rewritten_conv_computes_the_same_at_every_size(channels_out, kernel, pads, bias):
    model = conv_model(channels_out, kernel, pads, bias)
    rewritten = onnx.ModelProto.FromString(model.SerializeToString())
    records = stack_output_phases(rewritten)
    onnx.checker.check_model(rewritten, full_check=True)
    assert [record.to_dict() for record in records] == [
        {"conv": "out", "phases": "out/phases", "interleave": "out/interleave", "crop": "out/crop"}
    ]
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops == ["Conv", "DepthToSpace", "Shape", "Gather", "Add", "Slice", "Relu"]
    phases = rewritten.graph.node[0]
    assert node_attributes(phases)["strides"] == [2, 2]
    assert {init.name for init in rewritten.graph.initializer}.isdisjoint({"w", "b"})  # the old weights are gone
    rng = np.random.default_rng(1)
    for height, width in SIZES:
        x = rng.normal(size=(2, 4, height, width)).astype(np.float32)
        expected = run_one_layer_model(model, x)
        assert expected.shape == (
            2,
            channels_out,
            height + pads[0] + pads[2] - kernel[0] + 1,
            width + pads[1] + pads[3] - kernel[1] + 1,
        )
        np.testing.assert_allclose(run_one_layer_model(rewritten, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"channels_out": 8},  # a whole block of output channels: ONNX Runtime's fast path already
        {"kernel": (7, 1)},  # a kernel narrower than MIN_KERNEL on one axis
        {"strides": [2, 2]},
        {"dilations": [2, 2]},
        {"group": 2, "channels_out": 4},
        {"auto_pad": "SAME_UPPER", "pads": None},
        {"bias_input": True},
    ],
    ids=["eight-channels", "narrow-kernel", "strided", "dilated", "grouped", "auto-pad", "bias-not-constant"],
)
def test_convs_outside_the_rule_are_left_as_they_are(settings):
    model = conv_model(**settings)
    before = model.SerializeToString()
    assert stack_output_phases(model) == []
    assert model.SerializeToString() == before


def test_exported_resnet_translator_runs_its_output_layer_as_phases(tmp_path):
    """export_onnx: STEM.onnx (checked against PyTorch by the export itself) has the rewrite and lists it in the
    sidecar; STEM.fp16.onnx, TensorRT's source, keeps the traced output layer."""
    checkpoint = write_generator(tmp_path / "run")
    result = export_onnx(checkpoint, working_size=(32, 16))
    assert result.parity.passed
    rewrites = json.loads(result.sidecar_path.read_text())["onnx_rewrites"]["output_phases"]
    fp16 = onnx.load(result.fp16_path)
    traced = [node.name for node in fp16.graph.node if node.op_type == "Conv"]
    # this tiny generator (ngf 4) has 4 channels after its first layer too; ngf 64 has only the output layer
    assert [rewrite["conv"] for rewrite in rewrites] == [traced[0], traced[-1]]
    names = {node.name for node in onnx.load(result.onnx_path).graph.node}
    for rewrite in rewrites:
        assert {rewrite[key] for key in ("phases", "interleave", "crop")} <= names
        assert rewrite["conv"] not in names
