"""export-trt --int8 quantizes DepthToSpace only where the ConvTranspose rewrite (export.transpose_phases) put it: a
DepthToSpace the model had of its own stays float, as before the rewrite existed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from helpers import write_gta5
from uda_trt.export.int8 import calibration_set, export_int8
from uda_trt.runtime.sidecar import Sidecar, file_sha256


def write_upsampling_translator(folder: Path) -> Path:
    """images -> ConvTranspose (x2, rewritten) -> SpaceToDepth -> DepthToSpace (the model's own) -> Conv (/2) ->
    translated, with its sidecar."""
    rng = np.random.default_rng(0)
    weights = {
        "up_w": rng.normal(size=(3, 3, 3, 3)) * 0.3,
        "down_w": rng.normal(size=(3, 3, 2, 2)) * 0.3,
        "mean": np.array(127.5),
    }
    nodes = [
        helper.make_node("Cast", ["images"], ["float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["float"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["nchw", "mean"], ["x"]),
        helper.make_node(
            "ConvTranspose", ["x", "up_w"], ["up"], name="up", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
            output_padding=[1, 1],
        ),
        helper.make_node("SpaceToDepth", ["up"], ["packed"], name="pack", blocksize=2),
        helper.make_node("DepthToSpace", ["packed"], ["unpacked"], name="own", blocksize=2, mode="DCR"),
        helper.make_node("Conv", ["unpacked", "down_w"], ["down"], name="down", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Add", ["down", "mean"], ["shifted"]),
        helper.make_node("Transpose", ["shifted"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Clip", ["nhwc", "low", "high"], ["clipped"]),
        helper.make_node("Cast", ["clipped"], ["translated"], to=TensorProto.UINT8),
    ]  # fmt: skip
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    initializers += [numpy_helper.from_array(np.float32(0), "low"), numpy_helper.from_array(np.float32(255), "high")]
    graph = helper.make_graph(
        nodes, "upsampling",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, ["N", "H", "W", 3])],
        initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True)
    onnx_path = folder / "upsampling.onnx"
    onnx.save(model, onnx_path)
    Sidecar(
        task="translate", architecture="upsampling", architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "translated", "dtype": "uint8", "layout": "NHWC"}],
        size_divisor=4, artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""}, opset=17, ir_version=10, exporter_version="test",
        working_size=(32, 16),
    ).write(folder / "upsampling.json")  # fmt: skip
    return onnx_path


def test_only_the_interleave_moves_int8_values(tmp_path):
    onnx_path = write_upsampling_translator(tmp_path / "artifacts")
    data = calibration_set(write_gta5(tmp_path / "gta5", count=4, size=(32, 16)), count=2)
    result = export_int8(onnx_path, data, "minmax", require_gates=False)
    policy = result.sidecar.int8_policy
    assert policy["conv_transpose_phases"] == [
        {"conv_transpose": "up", "conv": "up/phases", "interleave": "up/interleave"}
    ]
    assert "up/phases" in policy["quantized_nodes"] and "down" in policy["quantized_nodes"]
    nodes = onnx.load(result.path).graph.node
    producer = {name: node for node in nodes for name in node.output}
    by_name = {node.name: node for node in nodes}
    assert producer[by_name["up/interleave"].input[0]].op_type == "DequantizeLinear"  # int8 in, with its Conv
    assert producer[by_name["own"].input[0]].op_type == "SpaceToDepth"  # float, as the model had it
