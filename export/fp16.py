"""FP32 ONNX -> mixed-precision ONNX (`STEM.fp16.onnx`): FP16 everywhere except where FP16 breaks the model.

TensorRT 11 takes precision from the ONNX itself (the FP16 builder flag is gone), so the FP16 engine is built from
this graph. Kept in FP32:
  - InstanceNormalization, always: its variance overflows FP16 and wrecks CycleGAN outputs (TensorRT #2691);
  - the converter's own block list (Resize, TopK, Range, ...): ops with no or unsafe FP16 kernels;
  - shape arithmetic: every node upstream of a size, scale, shape or index input (Resize scales/sizes, Reshape,
    Slice, Pad, ...), stopping at Shape nodes. FP16 makes 0.8 into 0.7998, so floor(80 * 0.8) becomes 63, not 64:
    the segmenter's working-size resize would change size;
  - every tensor whose FP32 values on the calibration images come within OVERFLOW_MARGIN of the FP16 maximum,
    with the nodes that produce and consume it;
  - the output tail: the elementwise and layout nodes between each graph output and the model's last compute-heavy
    node (the translator's denormalise, NaN guard, round, clip, transpose and cast to uint8 after the generator's
    last convolution; the segmenter's ArgMax and its casts). The float -> uint8 cast is exact only for integers in
    0..255 (undefined outside [0, 256) in TensorRT), and FP16 spacing is 0.25 near 255.
The conversion is onnxconverter-common's `convert_float_to_float16`; this module only chooses what it blocks and
then checks the result on the graph, because on a CPU the overflow does not show numerically (ONNX Runtime's CPU
kernels compute most FP16 ops in FP32): `fp32_violations` is the real guard.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from uda_trt.export.graph_checks import element_types

FP32_OP_TYPES = ("InstanceNormalization",)
FP16_MAX = 65504.0
OVERFLOW_MARGIN = 4.0  # headroom for images brighter or busier than the calibration set
OVERFLOW_LIMIT = FP16_MAX / OVERFLOW_MARGIN


class Fp16PolicyError(ValueError):
    """The FP16 graph computes in FP16 something the policy keeps in FP32."""


@dataclass(frozen=True)
class Fp16Model:
    """A converted model and the policy it follows, as recorded in the sidecar's `fp16_policy`."""

    model: onnx.ModelProto
    fp32_op_types: list[str]  # op types present in the graph that compute in FP32
    overflow_tensors: list[str]  # FP32-graph tensors kept FP32: calibration saw values near the FP16 maximum
    shape_arithmetic_nodes: int  # nodes computing sizes, scales and indices, kept exact
    output_tail_nodes: int  # post-processing nodes between the model's last heavy node and the outputs, kept FP32
    calibration_images: int
    calibration_max_abs: float  # largest |value| of any float tensor on the calibration images

    def policy(self) -> dict:
        """JSON-plain description for the sidecar."""
        return {
            "converter": _converter_version(),
            "fp32_op_types": self.fp32_op_types,
            "overflow_tensors": self.overflow_tensors,
            "overflow_limit": OVERFLOW_LIMIT,
            "shape_arithmetic_nodes": self.shape_arithmetic_nodes,
            "output_tail_nodes": self.output_tail_nodes,
            "calibration_images": self.calibration_images,
            "calibration_max_abs": self.calibration_max_abs,
        }


def convert_to_fp16(model: onnx.ModelProto, calibration_batches: Sequence[dict[str, np.ndarray]]) -> Fp16Model:
    """Convert a FP32 model to mixed precision with uint8 inputs and outputs unchanged, and check the result.

    calibration_batches: feeds for the FP32 model (e.g. [{"images": uint8 1xHxWx3}]), used to find tensors that
    overflow FP16. `model` is not modified. Raises Fp16PolicyError when the converted graph breaks the policy.
    """
    from onnxconverter_common import float16

    source = onnx.ModelProto()
    source.CopyFrom(model)
    _name_unnamed_nodes(source.graph)
    max_abs = tensor_max_abs(source, calibration_batches)
    overflow = sorted(name for name, value in max_abs.items() if not value <= OVERFLOW_LIMIT)  # NaN counts too

    op_types = {node.op_type for node in source.graph.node}
    source_types = element_types(source)
    blocked_ops = set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OP_TYPES)
    shape_nodes = _shape_arithmetic_nodes(source.graph)
    tail_nodes = output_tail_nodes(source.graph)
    blocked_nodes = _nodes_touching(source.graph, overflow) | _casts_to_float(source.graph) | shape_nodes | tail_nodes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns about every value it clamps into FP16 range
        converted = float16.convert_float_to_float16(
            source,
            keep_io_types=True,
            op_block_list=sorted(blocked_ops),
            node_block_list=sorted(blocked_nodes),
        )
    _drop_fp16_round_trips(converted.graph)
    converted.ir_version = model.ir_version
    onnx.checker.check_model(converted, full_check=True)

    fp32_op_types = sorted(op_types & blocked_ops)
    exact_nodes = shape_nodes | tail_nodes
    float_exact_tensors = [name for node in source.graph.node if node.name in exact_nodes for name in node.output]
    float_exact_tensors = [name for name in float_exact_tensors if source_types.get(name) == TensorProto.FLOAT]
    must_stay_fp32 = _producers(source.graph, [*overflow, *float_exact_tensors])
    violations = fp32_violations(converted, FP32_OP_TYPES, must_stay_fp32, tail_nodes)
    if violations:
        raise Fp16PolicyError("FP16 conversion left FP32-only values in FP16: " + "; ".join(violations[:5]))
    return Fp16Model(
        model=converted,
        fp32_op_types=fp32_op_types,
        overflow_tensors=overflow,
        shape_arithmetic_nodes=len(shape_nodes),
        output_tail_nodes=len(tail_nodes),
        calibration_images=sum(len(next(iter(batch.values()))) for batch in calibration_batches),
        calibration_max_abs=max(max_abs.values(), default=0.0),
    )


def fp32_violations(
    model: onnx.ModelProto,
    op_types: Iterable[str],
    producers: Iterable[tuple[str, int]] = (),
    nodes: Iterable[str] = (),
) -> list[str]:
    """Every floating-point value that should be FP32 but is not, in words; [] when the graph keeps the policy.

    Checks, by ONNX type inference, each input and output of every node of `op_types` (InstanceNormalization
    computes in the type of its input: an FP16 input means FP16 statistics) and of every node named in `nodes`,
    and each (node name, output index) in `producers`: that output must be FP32 and must not feed a Cast to FP16,
    which is where it would overflow.
    """
    types = element_types(model)
    op_types = set(op_types)
    named = set(nodes)
    by_name = {node.name: node for node in model.graph.node}
    problems = [f"node {name!r} is missing from the converted graph" for name in sorted(named - set(by_name))]
    for node in model.graph.node:
        if node.op_type not in op_types and node.name not in named:
            continue
        for role, names in (("input", node.input), ("output", node.output)):
            for name in names:
                elem = types.get(name)
                if elem is not None and elem != TensorProto.FLOAT and _is_float(elem):
                    problems.append(f"{node.op_type} {node.name!r} {role} {name!r} is {_type_name(elem)}")
    for node_name, index in producers:
        node = by_name.get(node_name)
        if node is None or index >= len(node.output):
            problems.append(f"node {node_name!r} (output {index}) is missing from the converted graph")
            continue
        tensor = node.output[index]
        elem = types.get(tensor)
        if elem != TensorProto.FLOAT:
            problems.append(f"{node.op_type} {node_name!r} output {tensor!r} is {_type_name(elem or 0)}")
        for consumer in model.graph.node:
            if tensor in consumer.input and _casts_to(consumer, TensorProto.FLOAT16):
                problems.append(f"{node.op_type} {node_name!r} output {tensor!r} feeds Cast-to-FP16 {consumer.name!r}")
    return problems


def tensor_max_abs(model: onnx.ModelProto, batches: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """Largest |value| of every FP32 tensor of the top-level graph over `batches`, run by ONNX Runtime on the CPU.

    Every float tensor is made a graph output, so memory is that of all activations of one batch at once: feed
    one image per batch.
    """
    import onnxruntime as ort

    types = element_types(model)
    produced = [name for node in model.graph.node for name in node.output if name]
    names = [name for name in produced if types.get(name) == TensorProto.FLOAT]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {output.name for output in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names if name not in existing
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as exported
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    max_abs = dict.fromkeys(names, 0.0)
    for feeds in batches:
        for name, value in zip(names, session.run(names, feeds), strict=True):
            if value.size:
                largest = float(np.max(np.abs(value)))
                max_abs[name] = largest if np.isnan(largest) else max(max_abs[name], largest)
    return max_abs


# Inputs that hold sizes, scales, shapes, indices or axes rather than data, by op type (positions).
_SHAPE_INPUTS = {
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Pad": (1, 3),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "TopK": (1,),
    "Gather": (1,),
    "ReduceMean": (1,),
    "ReduceSum": (1,),
    "ReduceMax": (1,),
    "ReduceMin": (1,),
}
_SHAPE_SOURCES = {"Shape", "Size"}


def _shape_arithmetic_nodes(graph: onnx.GraphProto) -> set[str]:
    """Names of the nodes that compute shape-like inputs: all ancestors of those inputs, up to Shape nodes."""
    producer = {name: node for node in graph.node for name in node.output}
    pending = [
        node.input[i]
        for node in graph.node
        for i in _SHAPE_INPUTS.get(node.op_type, ())
        if i < len(node.input) and node.input[i]
    ]
    found: set[str] = set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in found:
            continue  # a graph input or initializer, or already walked
        found.add(node.name)
        if node.op_type not in _SHAPE_SOURCES:
            pending.extend(name for name in node.input if name)
    return found


# Elementwise and layout ops: what post-processing is made of, between a model's last heavy node and the outputs.
_TAIL_OPS = {
    *("Add", "Sub", "Mul", "Div", "Neg", "Abs", "Round", "Floor", "Ceil", "Clip", "Min", "Max", "Tanh", "Sigmoid"),
    *("IsNaN", "IsInf", "Not", "Where", "Cast", "Transpose", "Identity", "Constant", "Squeeze", "Unsqueeze"),
}
_TAIL_ENDS = {"ArgMax", "ArgMin"}  # part of the tail, but the scores they read are the model's


def output_tail_nodes(graph: onnx.GraphProto) -> set[str]:
    """Names of the nodes of the graph outputs' post-processing: walking up from each output through `_TAIL_OPS`
    nodes and into ArgMax/ArgMin, stopping at any other node (the generator's last Conv or ConvTranspose, the
    segmenter's Resize). Nodes must be named (`_name_unnamed_nodes`)."""
    producer = {name: node for node in graph.node for name in node.output}
    pending = [output.name for output in graph.output]
    found: set[str] = set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in found or node.op_type not in _TAIL_OPS | _TAIL_ENDS:
            continue
        found.add(node.name)
        if node.op_type not in _TAIL_ENDS:
            pending.extend(name for name in node.input if name)
    return found


def _nodes_touching(graph: onnx.GraphProto, tensors: Iterable[str]) -> set[str]:
    """Names of the nodes that produce or consume any of `tensors`."""
    wanted = set(tensors)
    return {node.name for node in graph.node if wanted & {*node.input, *node.output}}


def _drop_fp16_round_trips(graph: onnx.GraphProto) -> None:
    """Rewire FP32 -> Cast(FP16) -> Cast(FP32) -> consumers to FP32 -> consumers, in place.

    The converter removes such a round trip between two blocked nodes only when the first cast has a single
    consumer (its `remove_unnecessary_cast_node` mis-tests the multi-consumer case); left in, a tensor kept FP32
    for overflow would pass through FP16 anyway. Removing it changes no value the converter meant to keep.
    """
    nodes = list(graph.node)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    removed: set[int] = set()
    for to16 in nodes:
        if not _casts_to(to16, TensorProto.FLOAT16):
            continue
        source = to16.input[0]
        for to32 in consumers.get(to16.output[0], []):
            if not _casts_to(to32, TensorProto.FLOAT) or to32.output[0] in graph_outputs:
                continue
            for user in consumers.get(to32.output[0], []):
                user.input[:] = [source if name == to32.output[0] else name for name in user.input]
            removed.add(id(to32))
        still_used = any(id(user) not in removed for user in consumers.get(to16.output[0], []))
        if not still_used and to16.output[0] not in graph_outputs:
            removed.add(id(to16))
    kept = [node for node in nodes if id(node) not in removed]
    del graph.node[:]
    graph.node.extend(kept)


def _producers(graph: onnx.GraphProto, tensors: Iterable[str]) -> list[tuple[str, int]]:
    """(node name, output index) of the node that produces each of `tensors`."""
    wanted = set(tensors)
    return [(node.name, i) for node in graph.node for i, name in enumerate(node.output) if name in wanted]


def _casts_to(node: onnx.NodeProto, elem: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == elem for a in node.attribute)


def _casts_to_float(graph: onnx.GraphProto) -> set[str]:
    """Cast-to-FP32 nodes: the converter retypes their output to FP16 but not their `to` attribute, so they stay
    FP32 and it casts after them (ONNX Runtime refuses the graph otherwise)."""
    return {node.name for node in graph.node if _casts_to(node, TensorProto.FLOAT)}


def _name_unnamed_nodes(graph: onnx.GraphProto) -> None:
    """Node names key the converter's block list; give every unnamed node a unique one."""
    taken = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _is_float(elem: int) -> bool:
    return elem in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def _type_name(elem: int) -> str:
    return TensorProto.DataType.Name(elem)


def _converter_version() -> str:
    from importlib import metadata

    try:
        return f"onnxconverter-common {metadata.version('onnxconverter-common')}"
    except metadata.PackageNotFoundError:
        return "onnxconverter-common"
