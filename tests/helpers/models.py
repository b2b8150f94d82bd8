"""Tiny real ONNX models with their sidecars, built with onnx.helper: a translator and a segmenter whose outputs a
test can predict exactly, so pipelines are checked against known answers rather than against themselves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx


def write_invert_translator(folder: Path, working_size: tuple[int, int] = (32, 16), divisor: int = 4) -> Path:
    """A real ONNX translator that returns 255 - image, with its sidecar: STEM.onnx + STEM.json in `folder`.

    Inversion (not identity) makes a pipeline that writes its input instead of the engine's output fail the tests.
    """
    import onnx
    from onnx import TensorProto, helper

    from uda_trt.runtime.sidecar import Sidecar, file_sha256

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["c255", "x"], ["y"]),
            helper.make_node("Cast", ["y"], ["translated"], to=TensorProto.UINT8),
        ],
        "invert",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "invert.onnx"
    onnx.save(model, onnx_path)
    Sidecar(
        task="translate",
        architecture="invert",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "translated", "dtype": "uint8", "layout": "NHWC"}],
        size_divisor=divisor,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""},
        opset=17,
        ir_version=10,
        exporter_version="test",
        working_size=working_size,
    ).write(folder / "invert.json")
    return onnx_path


def write_red_over_14_segmenter(folder: Path) -> Path:
    """A real ONNX 'segmenter' whose labels are the red channel // 14 (train IDs 0..18), with its sidecar."""
    import onnx
    from onnx import TensorProto, helper

    from uda_trt.runtime.labels import CLASS_NAMES, PALETTE, TRAIN_ID_TO_LABEL_ID
    from uda_trt.runtime.sidecar import Sidecar, file_sha256

    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["images", "channel"], ["red"], axis=3),
            helper.make_node("Div", ["red", "fourteen"], ["labels"]),
        ],
        "red_over_14",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, ["N", "H", "W"])],
        [
            helper.make_tensor("channel", TensorProto.INT64, [], [0]),
            helper.make_tensor("fourteen", TensorProto.UINT8, [], [14]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "seg.onnx"
    onnx.save(model, onnx_path)
    Sidecar(
        task="segment",
        architecture="red_over_14",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "labels", "dtype": "uint8", "layout": "NHW"}],
        size_divisor=1,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""},
        opset=17,
        ir_version=10,
        exporter_version="test",
        scale=1.0,
        class_names=list(CLASS_NAMES),
        train_id_to_label_id=TRAIN_ID_TO_LABEL_ID.tolist(),
        palette=PALETTE.tolist(),
    ).write(folder / "seg.json")
    return onnx_path


def one_layer_model(
    node: onnx.NodeProto,
    weights: np.ndarray,
    bias: np.ndarray | None,
    input_shape: list,
    output_shape: list,
    bias_input: bool = False,
    opset: int = 17,
) -> onnx.ModelProto:
    """x -> `node` (reading x, w and, with `bias`, b; writing "layer") -> Relu -> y: one layer to rewrite and run.
    `bias_input` makes b a graph input instead of a constant (fed by run_one_layer_model)."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = [numpy_helper.from_array(weights, "w")]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)]
    if bias is not None and bias_input:
        graph_inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, list(bias.shape)))
    elif bias is not None:
        initializers.append(numpy_helper.from_array(bias, "b"))
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["layer"], ["y"], name="relu")],
        "one_layer",
        graph_inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def run_one_layer_model(model: onnx.ModelProto, x: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y for input x (and b, when the model takes its bias as an input) on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x} if bias is None else {"x": x, "b": bias}
    return session.run(None, feeds)[0]
