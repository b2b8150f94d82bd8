"""Multiply-accumulate (MAC) counts of ONNX graphs at concrete input shapes, from the graph the engine runs.

Counting on the exported ONNX graph rather than the PyTorch module means the number describes exactly what is
deployed, pre/post-processing included, and needs no torch. Shapes come from ONNX shape inference after the
dynamic input axes are pinned to the requested sizes, so they flow through the graph's Transpose/Cast/Pad ops.

Only the ops that dominate the arithmetic of the translators and segmenters are counted: Conv, ConvTranspose,
MatMul and Gemm. Every other op (normalisation, activations, elementwise ops, Resize, quantised variants such as
QLinearConv, and anything inside If/Loop subgraphs) counts 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from uda_trt.export.graph_edit import node_attributes

log = logging.getLogger(__name__)

Shape = tuple[int | None, ...]  # None: a dimension shape inference could not make concrete


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one forward pass: the total and its split by ONNX op type (counted types only)."""

    total: int
    by_op_type: dict[str, int]


def count_macs(model: onnx.ModelProto | Path, input_shapes: dict[str, tuple[int, ...]]) -> MacCount:
    """MACs of `model` (a ModelProto, or the path of an .onnx file) with its inputs fixed to `input_shapes`.

    input_shapes maps graph input names to concrete shapes, e.g. {"images": (1, 512, 1024, 3)} for a translator
    (uint8 N x H x W x 3). The model passed in is not modified. Per node:
      Conv          output elements * (C_in / group) * prod(kernel)
      ConvTranspose input elements * (C_out / group) * prod(kernel): each input pixel is scattered into every
                    kernel position. Counting per output element instead overcounts strided transposed convs by
                    prod(stride) (the 4x behind the 56.8 G MACs often quoted for the CycleGAN generator).
      MatMul        output elements * K, i.e. M * N * K per matrix, times the (broadcast) batch dimensions
      Gemm          M * N * K; the bias add and alpha/beta scaling are not counted
    All other ops count 0. Raises ValueError for an unknown input name, a shape that contradicts the graph, a
    failed shape inference, or a counted node whose needed shape is unknown (the message names the node).
    """
    proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    fixed = _fold_constants(_with_fixed_inputs(proto, input_shapes))
    while True:
        try:
            inferred = shape_inference.infer_shapes(fixed, check_type=True, strict_mode=True, data_prop=True)
        except shape_inference.InferenceError as error:
            raise ValueError(f"shape inference failed for input shapes {input_shapes}: {error}") from error
        shapes = _known_shapes(inferred.graph)
        if not _fold_known_shapes(fixed, shapes):
            break
        fixed = _fold_constants(fixed)

    by_op_type: dict[str, int] = {}
    for index, node in enumerate(inferred.graph.node):
        counter = _COUNTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if counter is None:
            continue
        macs = counter(node, _ShapeLookup(node, index, shapes))
        by_op_type[node.op_type] = by_op_type.get(node.op_type, 0) + macs
    return MacCount(total=sum(by_op_type.values()), by_op_type=by_op_type)


def _with_fixed_inputs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of `model` whose named inputs have the given concrete dims, without declared intermediate shapes.

    Declared value_info and output shapes may be symbolic or fixed at trace time; inference recomputes them all
    from the inputs, and strict inference would reject a stale fixed one.
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:
        output.type.tensor_type.ClearField("shape")
    initializers = {init.name for init in fixed.graph.initializer}
    inputs = {value.name: value for value in fixed.graph.input if value.name not in initializers}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ValueError(f"input_shapes names {name!r}, which is not a graph input; inputs: {sorted(inputs)}")
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise ValueError(f"input {name!r}: shape {tuple(shape)} has rank {len(shape)}, the graph's has {len(dims)}")
        for axis, (dim, size) in enumerate(zip(dims, shape, strict=True)):
            if size < 1:
                raise ValueError(f"input {name!r}: dimension {axis} must be >= 1, got {size}")
            if dim.HasField("dim_value") and dim.dim_value != size:
                fixed_size = dim.dim_value
                raise ValueError(f"input {name!r}: dimension {axis} is fixed to {fixed_size} in the graph, got {size}")
            dim.dim_value = int(size)  # replaces any dim_param: the oneof keeps one of the two
    return fixed


# Ops never folded: their value is not a function of their inputs, or they hold subgraphs.
_NOT_FOLDABLE = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
_NOT_FOLDABLE |= {"If", "Loop", "Scan"}


def _fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` (modified in place) with every node computed only from constants replaced by Constant nodes.

    The legacy exporter computes the pads of ReflectionPad2d through Concat/Reshape/Slice/Transpose/Cast of
    constants; shape inference's data propagation does not follow Reshape or Transpose, so without folding every
    Pad output, and every shape after it, loses its spatial dims. Evaluated with onnx's reference implementation.
    """
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    overridable = {value.name for value in graph.input}  # an initializer that is also an input is a default only
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name not in overridable}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        foldable = (
            node.domain in ("", "ai.onnx")
            and node.op_type not in _NOT_FOLDABLE
            and all(name in constants for name in node.input if name)
        )
        if not foldable:
            nodes.append(node)
            continue
        feeds = {name: constants[name] for name in node.input if name}
        outputs = [name for name in node.output if name]  # "" marks an optional output that is not produced
        try:
            values = ReferenceEvaluator(node, opsets={"": opset}).run(outputs, feeds)
        except Exception as error:  # noqa: BLE001 - the reference raises many types for ops it lacks; keep the node
            log.debug("not folding %s node %r: %s", node.op_type, node.name, error)
            values = None
        if values is None or not all(isinstance(v, np.ndarray) for v in values):  # also sequences, optionals
            nodes.append(node)
            continue
        constants.update(zip(outputs, values, strict=True))
        if node.op_type == "Constant":
            nodes.append(node)
            continue
        for name, value in zip(outputs, values, strict=True):
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _fold_known_shapes(model: onnx.ModelProto, shapes: dict[str, Shape]) -> bool:
    """Replace, in place, each Shape node whose input's shape inference made concrete with a Constant; whether any
    was. A graph that computes a size from its input's shape (export.output_phases crops with a Slice whose ends
    are the input's H and W plus a constant) keeps its shapes only once that size is a constant: shape inference's
    data propagation does not carry it into Slice."""
    folded = False
    for index, node in enumerate(model.graph.node):
        shape = shapes.get(node.input[0]) if node.op_type == "Shape" and node.domain in ("", "ai.onnx") else None
        if shape is None or any(dim is None for dim in shape):
            continue
        attributes = node_attributes(node)
        value = np.array(shape, np.int64)[attributes.get("start", 0) : attributes.get("end", len(shape))]
        constant = numpy_helper.from_array(value, node.output[0])
        model.graph.node[index].CopyFrom(helper.make_node("Constant", [], [node.output[0]], value=constant))
        folded = True
    return folded


def _known_shapes(graph: onnx.GraphProto) -> dict[str, Shape]:
    """Every tensor of the top-level graph whose rank is known, with None for each dim that is not concrete."""
    shapes: dict[str, Shape] = {init.name: tuple(int(d) for d in init.dims) for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    return shapes


class _ShapeLookup:
    """Concrete shapes of one node's tensors, raising a ValueError that names the node when one is unknown."""

    def __init__(self, node: onnx.NodeProto, index: int, shapes: dict[str, Shape]) -> None:
        self._node = node
        self._index = index
        self._shapes = shapes

    def input(self, position: int) -> tuple[int, ...]:
        return self._concrete(self._node.input[position])

    def output(self, position: int) -> tuple[int, ...]:
        return self._concrete(self._node.output[position])

    def _concrete(self, tensor: str) -> tuple[int, ...]:
        shape = self._shapes.get(tensor)
        if shape is None or any(dim is None for dim in shape):
            node = self._node
            label = repr(node.name) if node.name else f"#{self._index} (unnamed)"
            found = "unknown" if shape is None else str(tuple("?" if d is None else d for d in shape))
            raise ValueError(
                f"{node.op_type} node {label}: shape of tensor {tensor!r} is {found}; cannot count its MACs "
                "(give every dynamic graph input a concrete shape, or the graph computes this shape at run time)"
            )
        return shape  # type: ignore[return-value]  # no None left


def _conv(node: onnx.NodeProto, shapes: _ShapeLookup) -> int:
    # Weight (C_out, C_in / group, *kernel): each output element is a dot product over C_in / group * kernel.
    weight = shapes.input(1)
    return math.prod(shapes.output(0)) * math.prod(weight[1:])


def _conv_transpose(node: onnx.NodeProto, shapes: _ShapeLookup) -> int:
    # Weight (C_in, C_out / group, *kernel): each input element is multiplied into C_out / group * kernel outputs.
    weight = shapes.input(1)
    return math.prod(shapes.input(0)) * math.prod(weight[1:])


def _matmul(node: onnx.NodeProto, shapes: _ShapeLookup) -> int:
    # numpy semantics: every output element (batch dims broadcast, 1-D operands promoted) sums over K = A[-1].
    return math.prod(shapes.output(0)) * shapes.input(0)[-1]


def _gemm(node: onnx.NodeProto, shapes: _ShapeLookup) -> int:
    trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
    a = shapes.input(0)
    return math.prod(shapes.output(0)) * (a[0] if trans_a else a[1])


_COUNTERS: dict[str, Callable[[onnx.NodeProto, _ShapeLookup], int]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MatMul": _matmul,
    "Gemm": _gemm,
}
