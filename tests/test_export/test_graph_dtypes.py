"""Exported graphs as TensorRT will parse them: uint8 only at the edges, a float32 tail in FP16, no NaN at the cast.

ONNX Runtime runs graphs that TensorRT refuses (a uint8 Transpose, a Cast from int64 to uint8), so these checks
read the graphs themselves, on real exports of tiny models; hand-built graphs are the negative controls.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from uda_trt.export import onnx_export
from uda_trt.export.fp16 import convert_to_fp16
from uda_trt.export.graph_checks import GraphCheckError, element_types, uint8_violations
from uda_trt.export.graphs import TranslatorGraph
from uda_trt.export.onnx_export import export_graph, export_onnx
from uda_trt.export.parity import synthetic_parity_images
from uda_trt.runtime.sidecar import load_sidecar
from uda_trt.train.checkpoints import save_segmenter_checkpoint
from uda_trt.train.networks import ResnetGenerator, UnetGenerator
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
MODEL_ENDS = ("Conv", "ConvTranspose")  # where a translator's post-processing begins


def _save_translator(folder: Path, generator: nn.Module) -> Path:
    path = folder / "latest_net_G_A.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(generator.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Every kind of graph export_onnx writes, FP32 and FP16, from tiny untrained models: name -> file."""
    root = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    files = {}
    resnet = export_onnx(_save_translator(root / "resnet", ResnetGenerator(ngf=4, n_blocks=1)), working_size=(32, 16))
    unet = export_onnx(_save_translator(root / "unet", UnetGenerator(num_downs=5, ngf=4)), working_size=(64, 32))
    segmenter_file = root / "seg" / "best.pt"
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    model = build_segmenter("lraspp_mobilenet_v3_large", num_classes=19)  # random weights, no download
    save_segmenter_checkpoint(segmenter_file, {**config, "normalization": NORMALIZATION}, model.state_dict())
    segmenter = export_onnx(segmenter_file, parity_images=synthetic_parity_images("segment", (128, 64), count=2))
    for name, result in (("resnet", resnet), ("unet", unet), ("segmenter", segmenter)):
        assert result.fp16_path is not None
        files[f"{name}.onnx"], files[f"{name}.fp16.onnx"] = result.onnx_path, result.fp16_path
    return files


GRAPHS = ["resnet.onnx", "resnet.fp16.onnx", "unet.onnx", "unet.fp16.onnx", "segmenter.onnx", "segmenter.fp16.onnx"]


@pytest.mark.slow
@pytest.mark.parametrize("name", GRAPHS)
def test_every_exported_graph_keeps_uint8_at_its_edges(exports, name):
    model = onnx.load(exports[name])
    assert uint8_violations(model) == []
    # spelled out for the exported graphs: images -> Cast(float) only, and the output written by Cast(float -> uint8)
    types = element_types(model)
    (images,) = model.graph.input
    (output,) = model.graph.output
    readers = [node for node in model.graph.node if images.name in node.input]
    assert readers and all(node.op_type == "Cast" and _cast_to(node) == TensorProto.FLOAT for node in readers)
    final = _producer(model, output.name)
    assert final.op_type == "Cast" and _cast_to(final) == TensorProto.UINT8
    assert types[final.input[0]] == TensorProto.FLOAT
    uint8 = sorted(tensor for tensor, elem in types.items() if elem == TensorProto.UINT8)
    assert uint8 == sorted([images.name, output.name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet.fp16.onnx", "unet.fp16.onnx", "segmenter.fp16.onnx"])
def test_fp16_graphs_compute_their_tail_in_fp32(exports, name):
    """From the generator's last convolution (or the segmenter's ArgMax) to the output, every node computes in
    float32: denormalise, NaN guard, round, clip, transpose and the cast to uint8."""
    model = onnx.load(exports[name])
    assert _fp16_in_tail(model) == []
    tail, ends = _tail(model)
    assert ends, "the walk from the output must stop at the model's last Conv, ConvTranspose or ArgMax"
    ops = {node.op_type for node in tail}
    if name.startswith("segmenter"):
        assert ops == {"ArgMax", "Cast"}
    else:
        assert {"Add", "Mul", "IsNaN", "Where", "Round", "Clip", "Transpose", "Cast"} <= ops


@pytest.mark.slow
def test_a_tail_left_to_the_converter_is_seen_in_fp16(exports):
    """Negative control: onnxconverter-common's default policy computes the tail in FP16; the walk must say so."""
    from onnxconverter_common import float16

    naive = float16.convert_float_to_float16(onnx.load(exports["resnet.onnx"]), keep_io_types=True)
    problems = _fp16_in_tail(naive)
    assert any(problem.startswith("Clip ") for problem in problems), problems
    assert any(problem.startswith("Cast ") and "FLOAT16" in problem for problem in problems), problems


@pytest.mark.slow
def test_the_sidecar_records_the_tail_kept_in_fp32(exports):
    assert load_sidecar(exports["resnet.fp16.onnx"]).fp16_policy["output_tail_nodes"] >= 8
    assert load_sidecar(exports["segmenter.fp16.onnx"]).fp16_policy["output_tail_nodes"] == 3  # ArgMax, 2 casts


NCHW = ["N", 3, "H", "W"]


def _uint8_graph(nodes: list, output_type: int = TensorProto.UINT8, output_shape: list = NCHW) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "control",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("out", output_type, output_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def _nchw(name: str = "transpose") -> onnx.NodeProto:
    return helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2], name=name)


NEGATIVE_CONTROLS = {
    # the old translator input: permute on the uint8 side, then cast
    "uint8 Transpose": (
        [_nchw(), helper.make_node("Cast", ["nchw"], ["out"], to=TensorProto.FLOAT, name="to_float")],
        TensorProto.FLOAT,
        NCHW,
        ["'images' read by Transpose 'transpose'", "intermediate tensor 'nchw' written by Transpose"],
    ),
    # the old translator output: cast to uint8, then permute
    "Cast then Transpose": (
        [
            helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT, name="to_float"),
            helper.make_node("Cast", ["x"], ["x8"], to=TensorProto.UINT8, name="to_uint8"),
            helper.make_node("Transpose", ["x8"], ["out"], perm=[0, 3, 1, 2], name="to_nchw"),
        ],
        TensorProto.UINT8,
        NCHW,
        ["intermediate tensor 'x8' written by Cast", "'x8' read by Transpose", "'out' written by Transpose"],
    ),
    # the old segmenter output: ArgMax's int64 straight to uint8
    "Cast from int64": (
        [
            helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT, name="to_float"),
            helper.make_node("ArgMax", ["x"], ["index"], axis=3, keepdims=0, name="argmax"),
            helper.make_node("Cast", ["index"], ["out"], to=TensorProto.UINT8, name="to_uint8"),
        ],
        TensorProto.UINT8,
        ["N", "H", "W"],
        ["'out' cast to uint8 from INT64 by 'to_uint8'"],
    ),
    # the old segmenter input: its size read from the uint8 tensor
    "Shape of uint8": (
        [
            helper.make_node("Shape", ["images"], ["shape"], name="shape"),
            helper.make_node("Cast", ["shape"], ["out"], to=TensorProto.FLOAT, name="to_float"),
        ],
        TensorProto.FLOAT,
        [4],
        ["'images' read by Shape 'shape'"],
    ),
}


@pytest.mark.parametrize("case", NEGATIVE_CONTROLS)
def test_the_checker_reports_uint8_inside_a_graph(case):
    nodes, output_type, output_shape, expected = NEGATIVE_CONTROLS[case]
    problems = uint8_violations(_uint8_graph(nodes, output_type, output_shape))
    for words in expected:
        assert any(words in problem for problem in problems), (words, problems)


def test_the_checker_accepts_uint8_at_the_edges():
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Cast", ["nchw"], ["out"], to=TensorProto.UINT8),
    ]
    assert uint8_violations(_uint8_graph(nodes)) == []


class _UInt8PermutingGraph(TranslatorGraph):
    """The translator graph as it was exported before: permutes on the uint8 side of both casts."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        y = ((self.generator(x) + 1.0) * 127.5).round().clamp(0.0, 255.0)
        return y.to(torch.uint8).permute(0, 2, 3, 1)


def test_an_export_with_uint8_inside_fails_in_one_line(tmp_path, monkeypatch):
    checkpoint = _save_translator(tmp_path, ResnetGenerator(ngf=4, n_blocks=1))
    monkeypatch.setattr(onnx_export, "TranslatorGraph", _UInt8PermutingGraph)
    with pytest.raises(GraphCheckError) as info:
        export_onnx(checkpoint, working_size=(32, 16))
    message = info.value.format_message()
    assert info.value.exit_code == 1 and "\n" not in message
    assert message.startswith("latest_net_G_A.onnx: TensorRT takes uint8 only as")
    assert "read by Transpose" in message and "no sidecar written" in message
    assert (tmp_path / "latest_net_G_A.onnx").exists() and not (tmp_path / "latest_net_G_A.json").exists()


def test_a_fp16_graph_with_uint8_inside_is_not_listed(tmp_path, monkeypatch):
    checkpoint = _save_translator(tmp_path, ResnetGenerator(ngf=4, n_blocks=1))
    bad = export_graph(_UInt8PermutingGraph(ResnetGenerator(ngf=4, n_blocks=1)), "translated", (64, 32))

    def convert_badly(model, batches):
        return dataclasses.replace(convert_to_fp16(model, batches), model=bad)

    monkeypatch.setattr("uda_trt.export.fp16.convert_to_fp16", convert_badly)
    with pytest.raises(GraphCheckError, match=r"^latest_net_G_A\.fp16\.onnx: .*latest_net_G_A\.onnx is fine$"):
        export_onnx(checkpoint, working_size=(32, 16))
    assert set(load_sidecar(tmp_path / "latest_net_G_A.onnx").artifacts) == {"onnx"}


class _Unbounded(nn.Module):
    """A broken 'generator': red NaN, green +inf where the input is bright and -inf where dark, blue the opposite."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([float("nan"), float("inf"), -float("inf")]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_nan_and_infinities_reach_the_final_cast_as_defined_grey_levels():
    """TensorRT's float -> uint8 cast is undefined for NaN and outside [0, 256): the value the final cast reads must
    be an integer in 0..255 whatever the generator returns, in the FP32 and the FP16 graph."""
    image = np.zeros((1, 4, 8, 3), np.uint8)
    image[:, :, 4:] = 200  # left half dark (x < 0), right half bright (x > 0)
    expected = np.zeros_like(image)
    expected[:, :, :4, 2] = 255  # dark: green -inf -> 0, blue +inf -> 255; red NaN -> 0
    expected[:, :, 4:, 1] = 255  # bright: green +inf -> 255, blue -inf -> 0
    graph = TranslatorGraph(_Unbounded())
    with torch.inference_mode():
        np.testing.assert_array_equal(graph(torch.from_numpy(image)).numpy(), expected)
    fp32 = export_graph(graph, "translated", (8, 4))
    fp16 = convert_to_fp16(fp32, [{"images": image}]).model
    for model in (fp32, fp16):
        output, cast_input = _run_with_final_cast_input(model, image)
        np.testing.assert_array_equal(output, expected)
        assert cast_input.dtype == np.float32 and np.isfinite(cast_input).all()
        assert cast_input.min() >= 0 and cast_input.max() <= 255 and (cast_input == np.round(cast_input)).all()


def _run_with_final_cast_input(model: onnx.ModelProto, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The graph's output and the tensor its final Cast reads, run by ONNX Runtime on the CPU."""
    import onnxruntime as ort

    final = _producer(model, model.graph.output[0].name)
    assert final.op_type == "Cast"
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(final.input[0], TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    output, cast_input = session.run(None, {"images": image})
    return output, cast_input


def _fp16_in_tail(model: onnx.ModelProto) -> list[str]:
    """Every float tensor of the output tail (`_tail`) that is not float32, in words: each node's outputs, and its
    inputs unless it is a Cast into float32 (where the float32 tail begins)."""
    types = element_types(model)
    tail, _ = _tail(model)
    return [
        f"{node.op_type} {node.name!r} {tensor!r} is {TensorProto.DataType.Name(types[tensor])}"
        for node in tail
        for tensor in [*node.output, *([] if _is_cast_to_float(node) else node.input)]
        if types.get(tensor) in FLOATS and types[tensor] != TensorProto.FLOAT
    ]


def _tail(model: onnx.ModelProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """(tail, ends): the nodes from the graph output up to the model's last Conv/ConvTranspose (not included) or
    ArgMax (included), and those end nodes."""
    producer = {name: node for node in model.graph.node for name in node.output}
    pending = [output.name for output in model.graph.output]
    tail: dict[str, onnx.NodeProto] = {}
    ends: dict[str, onnx.NodeProto] = {}
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in tail or node.name in ends:
            continue
        if node.op_type in MODEL_ENDS:
            ends[node.name] = node
            continue
        tail[node.name] = node
        if node.op_type == "ArgMax":
            ends[node.name] = node
            continue
        pending.extend(name for name in node.input if name)
    return list(tail.values()), list(ends.values())


def _producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if tensor in node.output)


def _cast_to(node: onnx.NodeProto) -> int:
    return next(attr.i for attr in node.attribute if attr.name == "to")


def _is_cast_to_float(node: onnx.NodeProto) -> bool:
    """A Cast into float32: where the float32 tail begins, so its input may be anything."""
    return node.op_type == "Cast" and _cast_to(node) == TensorProto.FLOAT
