"""ConvTranspose -> phase Conv + DepthToSpace (export.transpose_phases): the rewritten graph computes what ONNX
Runtime's own ConvTranspose computes, at any input size, and layers outside the rule are left untouched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers import one_layer_model, run_one_layer_model
from uda_trt.export.graph_edit import node_attributes
from uda_trt.export.transpose_phases import split_conv_transposes

SIZES = ((5, 7), (8, 6))  # the graph's H and W are symbolic: both sizes through the same rewritten file


def conv_transpose_model(
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: list[int],
    output_padding: list[int],
    bias: bool = True,
    group: int = 1,
    dilations: tuple[int, int] = (1, 1),
    bias_input: bool = False,
) -> onnx.ModelProto:
    """x (1, 4, H, W) -> ConvTranspose 4 -> 6 channels (random weights) -> Relu."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 6 // group, *kernel)).astype(np.float32)
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w", "b"] if bias else ["x", "w"],
        ["layer"],
        name="up",
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=pads,
        output_padding=output_padding,
        group=group,
        dilations=list(dilations),
    )
    biases = rng.normal(size=6).astype(np.float32) if bias else None
    return one_layer_model(
        node, weights, biases, [1, 4, "height", "width"], [1, 6, "out_height", "out_width"], bias_input
    )


@pytest.mark.parametrize(
    ("kernel", "stride", "pads", "output_padding", "bias"),
    [
        ((3, 3), (2, 2), [1, 1, 1, 1], [1, 1], True),  # the ResNet generators' upsampling
        ((2, 2), (2, 2), [0, 0, 0, 0], [0, 0], False),  # the U-Net segmenter's
        ((3, 3), (2, 2), [0, 0, 1, 1], [0, 0], True),  # asymmetric pads
        ((3, 2), (2, 2), [1, 0, 1, 0], [1, 0], True),  # a different kernel per axis
        ((3, 3), (3, 3), [0, 0, 0, 0], [0, 0], True),  # stride 3: nine phases
    ],
)
def test_rewritten_conv_transpose_computes_the_same_at_every_size(kernel, stride, pads, output_padding, bias):
    model = conv_transpose_model(kernel, stride, pads, output_padding, bias)
    rewritten = onnx.ModelProto.FromString(model.SerializeToString())
    phase_convs = split_conv_transposes(rewritten)
    onnx.checker.check_model(rewritten, full_check=True)
    assert [p.to_dict() for p in phase_convs] == [
        {"conv_transpose": "up", "conv": "up/phases", "interleave": "up/interleave"}
    ]
    assert [node.op_type for node in rewritten.graph.node] == ["Conv", "DepthToSpace", "Relu"]
    assert {init.name for init in rewritten.graph.initializer}.isdisjoint({"w", "b"})  # the old weights are gone
    rng = np.random.default_rng(1)
    for height, width in SIZES:
        x = rng.normal(size=(1, 4, height, width)).astype(np.float32)
        expected = run_one_layer_model(model, x)
        assert expected.shape == (1, 6, stride[0] * height, stride[1] * width)
        np.testing.assert_allclose(run_one_layer_model(rewritten, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"kernel": (4, 4), "stride": (2, 2), "pads": [1, 1, 1, 1], "output_padding": [0, 0]},  # 2.25x the MACs
        {"kernel": (3, 3), "stride": (2, 2), "pads": [1, 1, 1, 1], "output_padding": [0, 0]},  # 2H - 1 rows
        {"kernel": (3, 3), "stride": (2, 1), "pads": [1, 1, 1, 1], "output_padding": [1, 0]},  # strides differ
        {"kernel": (3, 3), "stride": (2, 2), "pads": [1, 1, 1, 1], "output_padding": [1, 1], "group": 2},
        {"kernel": (2, 2), "stride": (2, 2), "pads": [1, 1, 1, 1], "output_padding": [0, 0], "dilations": (2, 2)},
        {"kernel": (3, 3), "stride": (2, 2), "pads": [1, 1, 1, 1], "output_padding": [1, 1], "bias_input": True},
    ],
    ids=["pix2pix-kernel-4", "odd-output", "strides-differ", "grouped", "dilated", "bias-not-constant"],
)
def test_conv_transposes_outside_the_rule_are_left_as_they_are(settings):
    model = conv_transpose_model(**settings)
    before = model.SerializeToString()
    assert split_conv_transposes(model) == []
    assert model.SerializeToString() == before


def test_conv_transposes_sharing_weights_each_get_their_own():
    """Two ConvTransposes reading the same weights and bias: both rewritten, no name clash, the same outputs."""
    model = conv_transpose_model((3, 3), (2, 2), [1, 1, 1, 1], [1, 1])
    first = model.graph.node[0]
    second = helper.make_node(
        "ConvTranspose",
        ["y", "w", "b"],
        ["z"],
        name="up2",
        **node_attributes(first),
    )
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.random.default_rng(2).normal(size=(6, 6, 3, 3)).astype(np.float32), "w")
    )
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 6
    model.graph.node.append(second)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 6, "h", "w"]))
    rewritten = onnx.ModelProto.FromString(model.SerializeToString())
    assert [p.conv_transpose for p in split_conv_transposes(rewritten)] == ["up", "up2"]
    onnx.checker.check_model(rewritten, full_check=True)
    x = np.random.default_rng(3).normal(size=(1, 6, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(run_one_layer_model(rewritten, x), run_one_layer_model(model, x), rtol=1e-5, atol=1e-5)
