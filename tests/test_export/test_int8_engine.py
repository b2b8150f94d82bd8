"""The TensorRT form of STEM.int8.onnx (export.int8_engine), on this CPU: real INT8 files of a tiny translator and a
tiny segmenter written by export-trt --int8 lose their int32 bias DequantizeLinears, keep only int8 zero-point-0
Q/DQ and uint8 at the edges, and in ONNX Runtime compute what STEM.int8.onnx computes, within the INT8 gates of
STEM.onnx; graphs TensorRT could not quantize are refused naming the file. The engine build itself is in
test_int8_engine_gpu.py."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from helpers import GENERATOR_STEM
from helpers.int8_exports import (
    SEGMENTER_CALIBRATION_IMAGES,
    SEGMENTER_SPLIT,
    TRANSLATOR_CALIBRATION_IMAGES,
    shared_int8_segmenter,
    shared_int8_translator,
)
from uda_trt.export.graph_checks import uint8_violations
from uda_trt.export.int8 import calibration_set, image_loader
from uda_trt.export.int8_engine import (
    batched_gate,
    dequantize,
    fold_int32_dequantize,
    require_symmetric_int8,
    symmetric_int8_violations,
    tensorrt_form,
)
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.runners import OnnxRuntimeRunner
from uda_trt.runtime.sidecar import load_sidecar

STEM = GENERATOR_STEM


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> tuple[Path, object]:
    """STEM.onnx and the process of export-trt --int8 on the barely trained tiny generator (helpers.write_generator:
    smooth outputs INT8 can reproduce), calibrated on 8 images of a 12-image GTA5 root: the export test_int8 reads
    (helpers.int8_exports)."""
    run_dir, result = shared_int8_translator(tmp_path_factory)
    assert result.returncode == 0, result.stderr
    return run_dir / f"{STEM}.onnx", result


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> tuple[Path, object]:
    """best.onnx and the process of export-trt --int8 on an untrained LR-ASPP segmenter, calibrated on a tiny
    Cityscapes val split: the export test_int8 and commands/test_int8_eval read (helpers.int8_exports)."""
    folder, result = shared_int8_segmenter(tmp_path_factory)
    assert result.returncode == 0, result.stderr
    return folder / "seg" / "best.onnx", result


def _int8(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name.replace(".onnx", ".int8.onnx"))


def _dequantize_inputs(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every DequantizeLinear's input that is an initializer, by node name."""
    initializers = {init.name: init.data_type for init in model.graph.initializer}
    return {
        node.name: initializers[node.input[0]]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers
    }


@contextlib.contextmanager
def _runs(onnx_path: Path, form: onnx.ModelProto, tmp_path: Path) -> Iterator[tuple[list[np.ndarray], dict]]:
    """(the INT8 gate's held-out images and 2 calibration images, batch functions of STEM.onnx, STEM.int8.onnx and
    `form` (saved to tmp_path), each through the runtime's CPU runner)."""
    sidecar = load_sidecar(onnx_path)
    root = onnx_path.parent.parent
    if sidecar.task == "translate":
        data = calibration_set(root / "gta5", TRANSLATOR_CALIBRATION_IMAGES)
    else:
        data = calibration_set(root / "cityscapes", SEGMENTER_CALIBRATION_IMAGES, SEGMENTER_SPLIT)
    load = image_loader(sidecar.task, sidecar.working_size)
    images = [load(path) for path in data.held_out + data.calibration[:2]]
    onnx.save(form, tmp_path / "form.onnx")
    paths = {"fp32": onnx_path, "int8": _int8(onnx_path), "form": tmp_path / "form.onnx"}
    with contextlib.ExitStack() as stack:
        runners = {
            key: stack.enter_context(OnnxRuntimeRunner(path, sidecar, "onnxruntime-cpu")) for key, path in paths.items()
        }
        name = sidecar.output_name()
        yield (
            images,
            {key: (lambda batch, r=runner: r.infer({"images": batch})[name]) for key, runner in runners.items()},
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["translator", "segmenter"])
def test_tensorrt_form_has_only_int8_zero_point_0_qdq_and_folds_every_int32_bias(kind, request):
    onnx_path, _ = request.getfixturevalue(kind)
    int8_path = _int8(onnx_path)
    model = onnx.load(int8_path)
    before = _dequantize_inputs(model)
    biases = [name for name, elem in before.items() if elem == TensorProto.INT32]
    assert biases, "ONNX Runtime's quantizer stores Conv biases as int32 behind a DequantizeLinear"
    assert symmetric_int8_violations(model)  # the CPU file as written is not TensorRT's form
    form = tensorrt_form(model, int8_path.name)
    after = _dequantize_inputs(form)
    assert set(after.values()) == {TensorProto.INT8} and set(after) == set(before) - set(biases)
    assert symmetric_int8_violations(form) == [] and uint8_violations(form) == []
    onnx.checker.check_model(form)
    # each folded bias is the float the DequantizeLinear computed; the CPU artifact on disk is untouched
    original = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    folded = {init.name: numpy_helper.to_array(init) for init in form.graph.initializer}
    nodes = {node.name: node for node in model.graph.node}
    for name in biases:
        q, scale, zero = (original[tensor] for tensor in nodes[name].input)
        value = folded[nodes[name].output[0]]
        assert value.dtype == np.float32 and value.shape == q.shape
        np.testing.assert_allclose(value, (q.astype(np.float64) - zero) * scale, rtol=1e-6)
        assert nodes[name].input[0] not in folded  # the int32 initializer went with its node
    assert _dequantize_inputs(onnx.load(int8_path)) == before


@pytest.mark.slow
def test_translator_tensorrt_form_computes_what_the_int8_file_does_within_the_gates(translator, tmp_path):
    """Same arithmetic up to the bias's float rounding: against STEM.int8.onnx within 1 grey level on all but a
    handful of pixels, and against STEM.onnx within the INT8 gates, as the INT8 file itself is."""
    onnx_path, _ = translator
    form = tensorrt_form(onnx.load(_int8(onnx_path)), "form")
    with _runs(onnx_path, form, tmp_path) as (images, run):
        batch = np.stack(images)
        int8, trt_form = run["int8"](batch).astype(np.int16), run["form"](batch)
        assert trt_form.shape == batch.shape and trt_form.dtype == np.uint8
        same = np.mean(np.abs(int8 - trt_form).max(axis=-1) <= 1)
        assert same >= 0.999, same
        report = batched_gate("translate", images, run["fp32"], run["form"], (1, 2))
    assert report.passed, report.failures()
    assert report.psnr_db >= 35.0 and report.agreement.images == len(images)


@pytest.mark.slow
def test_segmenter_tensorrt_form_gives_the_int8_files_labels(segmenter, tmp_path):
    onnx_path, _ = segmenter
    form = tensorrt_form(onnx.load(_int8(onnx_path)), "form")
    with _runs(onnx_path, form, tmp_path) as (images, run):
        batch = np.stack(images)
        agree = np.mean(run["int8"](batch) == run["form"](batch))
        assert agree >= 0.999, agree
        report = batched_gate("segment", images, run["fp32"], run["form"], (2, 4))
    assert report.passed, report.failures()


def _set_zero_point(model: onnx.ModelProto, array: np.ndarray | None) -> str:
    """Give the first activation QuantizeLinear, and the DequantizeLinear reading it, a zero point of `array` (None:
    none, ONNX's default uint8), a consistent graph as ONNX Runtime's asymmetric or uint8 settings write; returns
    the QuantizeLinear's name."""
    quantize = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    dequantize = next(
        n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == quantize.output[0]
    )
    for node in (quantize, dequantize):
        if array is None:
            del node.input[2]
        else:
            node.input[2] = f"{quantize.name}_test_zero_point"
    if array is not None:
        model.graph.initializer.append(numpy_helper.from_array(array, quantize.input[2]))
    declared = [info for info in model.graph.value_info if info.name != quantize.output[0]]  # ORT's: int8
    del model.graph.value_info[:]
    model.graph.value_info.extend(declared)
    return quantize.name


@pytest.mark.slow
def test_graphs_tensorrt_cannot_quantize_are_refused_naming_the_file(translator):
    onnx_path, _ = translator
    int8_path = _int8(onnx_path)
    label = int8_path.name
    # an int32 bias DequantizeLinear left in: what TensorRT's parser refuses
    with pytest.raises(UserError, match=rf"^{label}: TensorRT builds int8 Q/DQ .*reads int32, not int8") as info:
        require_symmetric_int8(onnx.load(int8_path), label)
    assert "\n" not in info.value.format_message()
    # asymmetric or uint8 quantization, in the graph TensorRT would otherwise build
    cases = [
        (np.array(128, np.uint8), "has a uint8 zero point"),
        (np.array(3, np.int8), "has a non-zero zero point"),
        (None, "has no zero point, so quantizes to uint8"),
    ]
    for zero_point, problem in cases:
        model = onnx.load(int8_path)
        node = _set_zero_point(model, zero_point)
        with pytest.raises(UserError, match=rf"^{label}: .*QuantizeLinear '{node}' {problem}") as info:
            tensorrt_form(model, label)
        assert "\n" not in info.value.format_message()


def test_dequantize_follows_onnx_per_tensor_and_per_axis():
    rng = np.random.default_rng(0)
    q = rng.integers(-(2**20), 2**20, (3, 4, 2), dtype=np.int32)
    scale = np.array([0.5, 0.25, 2.0, 1e-3], np.float32)
    zero = np.array([0, 1, -2, 0], np.int32)
    per_axis = dequantize(q, scale, zero, axis=1)
    for c in range(4):
        np.testing.assert_allclose(per_axis[:, c], (q[:, c].astype(np.float64) - zero[c]) * scale[c], rtol=1e-6)
    assert per_axis.dtype == np.float32
    np.testing.assert_array_equal(dequantize(q, np.array(0.5, np.float32), None, axis=1), q.astype(np.float32) * 0.5)
    np.testing.assert_allclose(dequantize(q, scale[:2], None, axis=-1)[..., 1], q[..., 1] * 0.25, rtol=1e-6)


def test_folding_keeps_initializers_other_nodes_still_read():
    """A scale shared with a node that stays (here an Identity) survives the fold; the int32 tensor does not."""
    from onnx import helper

    bias = numpy_helper.from_array(np.array([10, -20], np.int32), "bias_q")
    scale = numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "bias_scale")
    zero = numpy_helper.from_array(np.array([0, 0], np.int32), "bias_zero")
    nodes = [
        helper.make_node("DequantizeLinear", ["bias_q", "bias_scale", "bias_zero"], ["bias"], axis=0, name="dq"),
        helper.make_node("Add", ["x", "bias"], ["y"], name="add"),
        helper.make_node("Identity", ["bias_scale"], ["s"], name="keep"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("y", "s")],
        [bias, scale, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert fold_int32_dequantize(model) == ["bias"]
    left = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    assert set(left) == {"bias_scale", "bias"} and [n.name for n in model.graph.node] == ["add", "keep"]
    np.testing.assert_array_equal(left["bias"], np.array([5.0, -5.0], np.float32))
    onnx.checker.check_model(model)


@pytest.mark.slow
def test_export_trt_without_the_engine_step_skips_both_engines_in_one_line(translator):
    """Without the engine step (--no-fp16 here; on a CPU machine also no GPU and no TensorRT): STEM.int8.onnx is
    written and listed, no .int8.engine, and one skip line that names it too."""
    onnx_path, result = translator
    skipped = [line for line in result.stderr.splitlines() if line.startswith("engine skipped")]
    assert len(skipped) == 1 and "STEM.int8.engine" in skipped[0], result.stderr
    assert not list(onnx_path.parent.glob("*.engine"))
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    assert "int8_onnx" in sidecar["artifacts"] and "int8_engine" not in sidecar["artifacts"]
    assert sidecar["int8_engine"] is None
