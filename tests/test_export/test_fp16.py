"""FP16 ONNX: InstanceNorm and overflowing values stay FP32 (asserted on the graph), parity with FP32 on images."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxconverter_common import float16

from uda_trt.export.fp16 import FP32_OP_TYPES, convert_to_fp16, fp32_violations, tensor_max_abs
from uda_trt.export.graphs import SegmenterGraph, TranslatorGraph
from uda_trt.export.onnx_export import FP16_PARITY, export_graph
from uda_trt.export.parity import compare, synthetic_parity_images
from uda_trt.runtime.runners import open_runner
from uda_trt.runtime.sidecar import file_sha256, load_sidecar
from uda_trt.train.networks import ResnetGenerator
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

SIZE = (64, 32)  # (w, h)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {init.name: init.data_type for init in inferred.graph.initializer}
    types.update({v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]})
    return types


@pytest.fixture(scope="module")
def translator() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export_graph(TranslatorGraph(ResnetGenerator(ngf=8, n_blocks=2)), "translated", SIZE)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return synthetic_parity_images("translate", SIZE, count=2)


def test_translator_fp16_keeps_instance_norm_fp32_and_matches_fp32(translator, images):
    result = convert_to_fp16(translator, [{"images": image[None]} for image in images])
    half = result.model
    assert fp32_violations(half, FP32_OP_TYPES) == []
    assert result.fp32_op_types == ["InstanceNormalization"] and result.overflow_tensors == []
    assert result.calibration_images == 2 and 0 < result.calibration_max_abs < 65504
    # Really FP16: every Conv and ConvTranspose weight, while the uint8 interface is untouched.
    types = _elem_types(half)
    weights = [node.input[1] for node in half.graph.node if node.op_type in ("Conv", "ConvTranspose")]
    assert weights and all(types[name] == TensorProto.FLOAT16 for name in weights)
    norms = [node for node in half.graph.node if node.op_type == "InstanceNormalization"]
    assert len(norms) == 1 + 2 + 2 * 2 + 2 and all(types[node.input[0]] == TensorProto.FLOAT for node in norms)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [TensorProto.UINT8]
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [TensorProto.UINT8]
    assert half.ir_version == translator.ir_version

    bounds = FP16_PARITY["translate"]
    reference = [_run(translator, {"images": image[None]})[0] for image in images]
    candidate = [_run(half, {"images": image[None]})[0] for image in images]
    report = compare("translate", reference, candidate, bounds["required"], bounds["tolerance"], "onnx")
    assert report.passed, report.summary()


def test_fully_fp16_graph_fails_the_instance_norm_assertion(translator):
    """Negative control: the converter's default policy puts InstanceNormalization in FP16; the guard must see it."""
    naive = float16.convert_float_to_float16(translator, keep_io_types=True)
    problems = fp32_violations(naive, FP32_OP_TYPES)
    assert problems and all("InstanceNormalization" in problem for problem in problems)
    assert any("FLOAT16" in problem for problem in problems)


def _overflow_model(consumers: int) -> onnx.ModelProto:
    """uint8 x -> float -> *10 -> *100 (up to 255,000: beyond FP16) -> /4000 by `consumers` nodes -> sum -> uint8."""
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Mul", ["xf", "ten"], ["medium"], name="times_ten"),
        helper.make_node("Mul", ["medium", "hundred"], ["big"], name="times_hundred"),
    ]
    parts = []
    for index in range(consumers):
        nodes.append(helper.make_node("Div", ["big", "divisor"], [f"part{index}"], name=f"shrink{index}"))
        parts.append(f"part{index}")
    nodes.append(helper.make_node("Sum", parts, ["total"], name="sum"))
    nodes.append(helper.make_node("Clip", ["total", "low", "high"], ["clipped"], name="clip"))
    nodes.append(helper.make_node("Cast", ["clipped"], ["y"], to=TensorProto.UINT8, name="to_uint8"))
    constants = {"ten": 10.0, "hundred": 100.0, "divisor": 4000.0, "low": 0.0, "high": 255.0}
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", 8])],
        [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("consumers", [1, 2])
def test_values_beyond_fp16_stay_fp32(consumers):
    model = _overflow_model(consumers)
    x = np.array([[0, 1, 50, 100, 128, 200, 254, 255]], np.uint8)
    assert tensor_max_abs(model, [{"x": x}])["big"] == 255_000
    result = convert_to_fp16(model, [{"x": x}])
    assert result.overflow_tensors == ["big"]
    assert fp32_violations(result.model, FP32_OP_TYPES, [("times_hundred", 0)]) == []
    np.testing.assert_array_equal(_run(result.model, {"x": x}), _run(model, {"x": x}))
    types = _elem_types(result.model)
    assert types["medium"] == TensorProto.FLOAT16  # values in range are still FP16


def test_overflow_guard_sees_a_cast_to_fp16():
    """Negative control: blocking the nodes around the overflowing tensor is not enough with the bare converter
    when the tensor has two consumers (it leaves an FP16 round trip); the guard must report it."""
    model = _overflow_model(2)
    blocked = ["to_float", "times_hundred", "shrink0", "shrink1"]
    bare = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    problems = fp32_violations(bare, FP32_OP_TYPES, [("times_hundred", 0)])
    assert problems and "Cast-to-FP16" in problems[0]


def test_unnamed_nodes_are_blocked_too():
    """The converter keys its node block list by name: nodes without one must still stay FP32 when they overflow."""
    model = _overflow_model(2)
    for node in model.graph.node:
        node.name = ""
    x = np.full((1, 8), 255, np.uint8)
    result = convert_to_fp16(model, [{"x": x}])
    assert result.overflow_tensors == ["big"]
    np.testing.assert_array_equal(_run(result.model, {"x": x}), _run(model, {"x": x}))
    assert all(node.name for node in result.model.graph.node) and not any(node.name for node in model.graph.node)


def test_segmenter_fp16_labels_match_fp32():
    """Scale 0.8 on 160x80 images: in FP16 the resize size would be floor(80 * 0.7998) = 63, not 64; the shape
    arithmetic must stay FP32 for the labels (and their size) to match."""
    torch.manual_seed(0)
    model = build_segmenter("lraspp_mobilenet_v3_large", num_classes=19)
    graph = SegmenterGraph(model, 0.8, NORMALIZATION["mean"], NORMALIZATION["std"])
    fp32 = export_graph(graph, "labels", (128, 64))
    images = synthetic_parity_images("segment", (160, 80), count=2)
    result = convert_to_fp16(fp32, [{"images": image[None]} for image in images])
    assert "Resize" in result.fp32_op_types and fp32_violations(result.model, ["Resize"]) == []
    assert result.shape_arithmetic_nodes > 0
    reference = [_run(fp32, {"images": image[None]})[0] for image in images]
    candidate = [_run(result.model, {"images": image[None]})[0] for image in images]
    report = compare("segment", reference, candidate, FP16_PARITY["segment"]["required"], 0, "onnx")
    assert report.passed, report.summary()


@pytest.mark.slow
def test_export_cli_writes_a_checked_fp16_onnx_that_batch_translate_runs(tmp_path, cli):
    torch.manual_seed(0)
    checkpoint = tmp_path / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=4, n_blocks=2).state_dict(), checkpoint)
    result = cli("export-trt", checkpoint, "--size", "64x32")
    assert result.returncode == 0, result.stderr
    fp16_path = tmp_path / "latest_net_G_A.fp16.onnx"
    assert f"wrote {fp16_path}" in result.stdout
    sidecar = json.loads((tmp_path / "latest_net_G_A.json").read_text())
    assert sidecar["artifacts"]["fp16_onnx"] == {"file": fp16_path.name, "sha256": file_sha256(fp16_path)}
    policy = sidecar["fp16_policy"]
    assert policy["fp32_op_types"] == ["InstanceNormalization"] and policy["calibration_images"] == 3
    assert policy["overflow_tensors"] == [] and policy["converter"].startswith("onnxconverter-common")
    check = sidecar["validation"]["fp16_onnx"]
    assert check["passed"] and check["reference"] == "onnx" and check["tolerance"] == 2 and check["required"] == 0.995
    assert load_sidecar(fp16_path).fp16_policy == policy  # the runtime reads and verifies the FP16 artifact

    source = tmp_path / "in"
    source.mkdir()
    from PIL import Image

    for index, image in enumerate(synthetic_parity_images("translate", (80, 44), count=2)):
        Image.fromarray(image).save(source / f"{index}.png")
    outputs = {}
    for artifact in ("latest_net_G_A.onnx", "latest_net_G_A.fp16.onnx"):
        out = tmp_path / artifact.replace(".", "_")
        args = ["--engine", tmp_path / artifact, "--input", source, "--output", out, "--output-size", "working"]
        run = cli("batch-translate", *args)
        assert run.returncode == 0, run.stderr
        outputs[artifact] = [np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))]
    fp32_images, fp16_images = outputs.values()
    assert len(fp32_images) == 2 and fp32_images[0].shape == (32, 64, 3)
    report = compare("translate", fp32_images, fp16_images, 0.995, 2, "onnx")
    assert report.passed, report.summary()
    with open_runner(fp16_path) as runner:
        assert runner.backend == "onnxruntime-cpu"


@pytest.mark.slow
def test_no_fp16_flag_writes_the_fp32_onnx_only(tmp_path, cli):
    torch.manual_seed(0)
    checkpoint = tmp_path / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=4, n_blocks=2).state_dict(), checkpoint)
    result = cli("export-trt", checkpoint, "--size", "32x16", "--no-fp16")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest_net_G_A.json",
        "latest_net_G_A.onnx",
        "latest_net_G_A.pth",
    ]
    sidecar = json.loads((tmp_path / "latest_net_G_A.json").read_text())
    assert set(sidecar["artifacts"]) == {"onnx"} and sidecar["fp16_policy"] is None
