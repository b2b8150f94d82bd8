"""Which layers the sidecar's `int8_policy.quantized_nodes` lists: those ONNX Runtime's quantizer really quantized.

A layer kept float still reads a dequantized activation when another consumer of the same tensor is quantized (one
Q/DQ pair serves the tensor's every consumer): a segmenter's low-level classifier and the backbone layer after it both
read the same features. Listing it as quantized made a demo segmenter's sidecar list 60 quantized and 7 float layers
of 66, one of them under both."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from uda_trt.export.int8 import quantized_nodes

LAYERS = ["quantized_conv", "float_conv"]


class _Images(CalibrationDataReader):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.feeds = iter([{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(2)])

    def get_next(self) -> dict | None:
        return next(self.feeds, None)


def two_convs_reading_one_tensor(path) -> None:
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), f"w{i}") for i in (0, 1)]
    nodes = [
        helper.make_node("Relu", ["x"], ["features"], name="relu"),
        helper.make_node("Conv", ["features", "w0"], ["a"], name=LAYERS[0], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["features", "w1"], ["b"], name=LAYERS[1], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_float_layer_reading_a_dequantized_tensor_is_not_listed(tmp_path):
    source, quantized = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    two_convs_reading_one_tensor(source)
    quantize_static(
        str(source),
        str(quantized),
        _Images(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        nodes_to_exclude=[LAYERS[1]],
    )
    model = onnx.load(quantized)
    dequantized = {output for node in model.graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    float_conv = next(node for node in model.graph.node if node.name == LAYERS[1])
    assert float_conv.input[0] in dequantized  # the case: its input is the quantized conv's dequantized input
    assert quantized_nodes(model, LAYERS) == [LAYERS[0]]
