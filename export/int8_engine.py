"""INT8 ONNX -> TensorRT engine (`STEM.int8.engine`), through export.engine's build and the INT8 gates.

TensorRT builds a QDQ graph by explicit quantization: the Q/DQ nodes say where int8 is used, the network is
strongly typed, and no precision builder flag is set ("Use explicit quantization with Strong Typing. Precision-control
build flags are not required and should not be specified": TensorRT developer guide, Explicit Quantization,
docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html). So
export.engine.build_engine builds it unchanged, from the INT8 graph's TensorRT form:

  - ONNX Runtime's QDQ quantizer stores each Conv/ConvTranspose bias as an int32 initializer behind a
    DequantizeLinear; TensorRT's ONNX parser refuses a DequantizeLinear of int32 ("only activation types allowed as
    input to this layer", microsoft/onnxruntime#14229, #17738). Each is replaced by the float32 bias it computes,
    (q - zero_point) * scale, per axis where the scale is a vector: the same value up to float rounding. The layer
    still reads int8 weights and activations; TensorRT adds the float bias in its int8 kernels' epilogue.
  - TensorRT quantizes symmetrically only ("Working with Quantized Types"): every QuantizeLinear/DequantizeLinear
    must be int8 with a zero point of 0 (ONNX's default zero point is uint8, so a Q without one is refused too).
  - uint8 only at the graph's edges, as for every graph TensorRT builds (export.graph_checks).

The CPU artifact `STEM.int8.onnx` stays as written: ONNX Runtime fuses its int32-bias form into integer kernels.
The TensorRT form lives in a temporary folder for the build only. The engine is checked against STEM.onnx with the
INT8 gates (export.int8.GATES) and listed in the sidecar (`artifacts.int8_engine`, block `int8_engine`,
`validation.int8_engine`) only once it passed. export-trt checks it on the images STEM.int8.onnx was gated on (the
held-out calibration images), not on the FP16 engine's parity images: INT8 ranges are calibrated for one domain,
and the built-in scenes are another. Measured on the test suite's tiny translator: STEM.int8.onnx (and its TensorRT
form) kept 99.1 % of pixels within 3 grey levels on its held-out images and 88.6 % on the built-in scenes, so a
parity-image gate would refuse an engine that does exactly what the gated INT8 file does.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from uda_trt.export.engine import DEFAULT_WORKSPACE_GIB, EngineBuild, Profile, TimingCache
from uda_trt.runtime.errors import UserError

if TYPE_CHECKING:  # numpy and onnx load when the step runs
    import numpy as np
    import onnx

    from uda_trt.export.int8 import GateReport


def tensorrt_form(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """A copy of an INT8 QDQ graph in the form TensorRT builds (module doc): int32 DequantizeLinear initializers
    folded to float32, then checked. UserError (one line, `label` first) when a Q/DQ is not int8 with zero point 0;
    GraphCheckError (exit 1) when uint8 appears inside the graph."""
    import onnx

    from uda_trt.export.graph_checks import require_uint8_at_edges

    form = onnx.ModelProto()
    form.CopyFrom(model)
    fold_int32_dequantize(form)
    require_symmetric_int8(form, label)
    require_uint8_at_edges(form, label, "; no INT8 engine built")
    return form


def fold_int32_dequantize(model: onnx.ModelProto) -> list[str]:
    """Replace, in place, every DequantizeLinear whose input is an int32 initializer (with initializer scale and zero
    point) by a float32 initializer of the value it computes, named as its output; drop the initializers only it
    read. Returns the folded tensors' names."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    kept, folded, released = [], [], set()
    for node in graph.node:
        operands = [initializers.get(name) for name in node.input if name]  # "": an optional input left out
        if (
            node.op_type != "DequantizeLinear"
            or operands[0] is None
            or operands[0].data_type != TensorProto.INT32
            or any(operand is None for operand in operands[1:])
        ):
            kept.append(node)
            continue
        values = [numpy_helper.to_array(operand) for operand in operands]
        axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 1)
        value = dequantize(values[0], values[1], values[2] if len(values) > 2 else None, axis)
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        folded.append(node.output[0])
        released.update(node.input)
    del graph.node[:]
    graph.node.extend(kept)
    still_read = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    unused = released - still_read
    for container in (graph.initializer, graph.input):  # old IR versions also list initializers as inputs
        survivors = [item for item in container if item.name not in unused]
        del container[:]
        container.extend(survivors)
    return folded


def dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero_point) * scale in float32; per axis `axis` when `scale` is a vector."""
    import numpy as np

    scale = scale.astype(np.float32)
    zero = np.zeros((), np.int64) if zero_point is None else zero_point.astype(np.int64)
    if scale.ndim == 1 and quantized.ndim > 0:
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.ndim == 1 else zero
    return (quantized.astype(np.int64) - zero).astype(np.float32) * scale


def symmetric_int8_violations(model: onnx.ModelProto) -> list[str]:
    """Every QuantizeLinear/DequantizeLinear that is not int8 with zero point 0, in words; [] when TensorRT can build
    the graph's quantization. A DequantizeLinear of anything but int8 (an int32 bias left unfolded, uint8) is listed;
    a QuantizeLinear without a zero point is uint8 (ONNX's default) and listed."""
    import numpy as np
    from onnx import TensorProto, numpy_helper, shape_inference

    from uda_trt.export.graph_checks import element_types

    try:
        types = element_types(model)
    except shape_inference.InferenceError as error:
        return [f"its types are inconsistent ({str(error).strip().splitlines()[0]})"]
    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        where = f"{node.op_type} {node.name or node.output[0]!r}"
        if node.op_type == "DequantizeLinear" and types.get(node.input[0]) != TensorProto.INT8:
            problems.append(f"{where} reads {_type_name(types.get(node.input[0]))}, not int8")
        if len(node.input) < 3 or not node.input[2]:
            if node.op_type == "QuantizeLinear":
                problems.append(f"{where} has no zero point, so quantizes to uint8")
            continue
        zero_point = constants.get(node.input[2])
        if zero_point is None:
            problems.append(f"{where} has a zero point that is not a constant")
        elif zero_point.data_type != TensorProto.INT8:
            problems.append(f"{where} has a {_type_name(zero_point.data_type)} zero point, not int8")
        elif np.any(numpy_helper.to_array(zero_point) != 0):
            problems.append(f"{where} has a non-zero zero point (TensorRT quantizes symmetrically)")
    return problems


def require_symmetric_int8(model: onnx.ModelProto, label: str) -> None:
    """UserError (one line, `label` first) when `symmetric_int8_violations` finds anything."""
    problems = symmetric_int8_violations(model)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise UserError(f"{label}: TensorRT builds int8 Q/DQ with zero point 0 only: {shown}; no INT8 engine built")


def _type_name(elem: int | None) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(elem or TensorProto.UNDEFINED).lower()


def batched_gate(
    task: str,
    images: Sequence[np.ndarray],
    reference_fn: Callable[[np.ndarray], np.ndarray],
    candidate_fn: Callable[[np.ndarray], np.ndarray],
    batch: tuple[int, int] = (1, 1),
) -> GateReport:
    """The INT8 gates (export.int8.gate) of `candidate_fn` against `reference_fn`, both run on `images` in batches of
    `batch` = (min, max) images, as an engine's profile accepts them (export.parity.parity_batches)."""
    from uda_trt.export.int8 import gate
    from uda_trt.export.parity import parity_batches

    reference: list[np.ndarray | None] = [None] * len(images)
    candidate: list[np.ndarray | None] = [None] * len(images)
    for indices, stacked in parity_batches(images, batch):
        ref_out, cand_out = reference_fn(stacked), candidate_fn(stacked)
        for row, index in enumerate(indices):  # rows past len(indices) repeat images to fill the batch
            reference[index], candidate[index] = ref_out[row], cand_out[row]
    return gate(task, reference, candidate)


def gate_summary(report: GateReport) -> str:
    """One line of the engine's gates, e.g. 'PSNR 48.10 dB (need >= 35.0 dB), 99.5% of pixels within 3 grey levels
    (need >= 99.000%), max |diff| 4, 3 images vs STEM.onnx'."""
    psnr = ""
    if report.psnr_db is not None:
        value = "inf" if math.isinf(report.psnr_db) else f"{report.psnr_db:.2f}"
        psnr = f"PSNR {value} dB (need >= {report.required_psnr_db} dB), "
    return f"{psnr}{report.agreement.summary()}".replace(" vs onnx", " vs STEM.onnx")


def export_int8_engine(
    onnx_path: Path,
    images: Sequence[np.ndarray],
    profile: Profile,
    workspace_bytes: int = int(DEFAULT_WORKSPACE_GIB * 2**30),
    timing_cache: TimingCache = "default",
    verify: bool = True,
) -> tuple[EngineBuild, GateReport | None]:
    """Build `STEM.int8.engine` from the TensorRT form of `STEM.int8.onnx` (beside `onnx_path`, STEM.onnx), check it
    against STEM.onnx with the INT8 gates on `images` (export-trt: the held-out images of the INT8 gate, module doc),
    resized into the profile before the build, then list it in the sidecar on disk: artifacts.int8_engine, the
    `int8_engine` block (as `engine`, built from "int8_onnx"), validation.int8_engine.

    Raises ParityError (exit 1) when a gate fails: the engine is kept for inspection and not listed. UserError for
    an INT8 file the sidecar does not list, a graph TensorRT cannot quantize, or a failed build (build_engine).
    """
    import onnx

    from uda_trt.export.engine import build_engine, fit_parity_to_profile
    from uda_trt.export.parity import ParityError
    from uda_trt.runtime.jobs.files import json_plain
    from uda_trt.runtime.runners import OnnxRuntimeRunner, TensorRTRunner
    from uda_trt.runtime.sidecar import file_sha256, load_sidecar, sidecar_path

    onnx_path = Path(onnx_path)
    stem = onnx_path.name[: -len(".onnx")]
    int8_path = onnx_path.with_name(f"{stem}.int8.onnx")
    engine_path = onnx_path.with_name(f"{stem}.int8.engine")
    json_path = sidecar_path(onnx_path)
    sidecar = load_sidecar(int8_path)  # listed, and unchanged since its gates passed
    if verify:  # resized whatever the task: the INT8 gates use no near-tie masks, so any input in the profile is fair
        images = fit_parity_to_profile("translate", list(images), profile, sidecar.size_divisor)
    engine_path.unlink(missing_ok=True)  # the sidecar on disk does not list one yet
    form = tensorrt_form(onnx.load(int8_path), int8_path.name)
    with tempfile.TemporaryDirectory(prefix="uda-trt-int8-engine-") as folder:
        form_path = Path(folder) / f"{stem}.int8.tensorrt.onnx"
        onnx.save(form, form_path)
        label = f"{int8_path} (its TensorRT form)"
        build = build_engine(form_path, engine_path, profile, workspace_bytes, timing_cache, label=label)
    facts = {**build.sidecar_fields(), "built_from": "int8_onnx"}
    report = None
    if verify:
        listed = dataclasses.replace(sidecar, int8_engine=facts)
        name = sidecar.output_name()
        with (
            OnnxRuntimeRunner(onnx_path, sidecar, "onnxruntime-cpu") as fp32,
            TensorRTRunner(engine_path, listed) as engine,
        ):
            report = batched_gate(
                sidecar.task,
                images,
                lambda batch: fp32.infer({"images": batch})[name],
                lambda batch: engine.infer({"images": batch})[name],
                profile.batch_range(),
            )
        if not report.passed:
            raise ParityError(
                f"INT8 gate failed for {engine_path.name}: {'; '.join(report.failures())}; {engine_path.name} kept "
                "for inspection and not listed in the sidecar"
            )
    current = load_sidecar(json_path)
    validation = {**(current.validation or {})}
    if report is not None:
        validation["int8_engine"] = report.to_dict()
    current = dataclasses.replace(
        current,
        artifacts={**current.artifacts, "int8_engine": {"file": engine_path.name, "sha256": file_sha256(engine_path)}},
        int8_engine=json_plain(facts),
        validation=validation,
    )
    current.write(json_path)
    return build, report
