"""Checks on an exported ONNX graph as a graph, before anything runs it: what TensorRT's ONNX parser would refuse.

TensorRT takes uint8 only as a network input or output ("TensorRT does not support UINT8 types for intermediate
tensors") and converts uint8 only to and from float32 and float16. ONNX Runtime runs a graph that breaks this
without complaint, so a CPU-only test suite would never see it; `uint8_violations` does, on the graph.
"""

from __future__ import annotations

import click
import onnx
from onnx import TensorProto, shape_inference

_UINT8_PARTNERS = (TensorProto.FLOAT, TensorProto.FLOAT16)  # the only types TensorRT casts uint8 to or from


class GraphCheckError(click.ClickException):
    """An exported graph that TensorRT could not build: the export failed (exit code 1), the problem in the message."""

    exit_code = 1


def uint8_violations(model: onnx.ModelProto) -> list[str]:
    """Every uint8 tensor that is not at the graph's edge, in words; [] when TensorRT can parse the graph's uint8.

    Allowed: a graph input read only by Cast-to-float32/float16 nodes, and a graph output written by a Cast from
    float32/float16 (and read, if at all, only by such casts). Anything else uint8 (an intermediate tensor, an
    initializer or Constant, a Transpose or Shape reading the input, a Cast from int64) is reported. Top-level
    graph only: the exported graphs have no subgraphs.
    """
    graph = model.graph
    types = element_types(model)
    for node in graph.node:  # a Cast's output type is its `to`, whatever inference managed
        if node.op_type == "Cast":
            types[node.output[0]] = _cast_to(node)
    initializers = {init.name for init in graph.initializer}
    inputs = {value.name for value in graph.input} - initializers
    outputs = {value.name for value in graph.output}
    producer = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    problems = []
    for name in sorted(name for name, elem in types.items() if elem == TensorProto.UINT8):
        node = producer.get(name)
        if name in inputs:
            if name in outputs:
                problems.append(f"graph input {name!r} is also a graph output")
        elif name in initializers or node is None:
            problems.append(f"uint8 constant {name!r}")
        elif node.op_type != "Cast" or name not in outputs:
            where = "graph output" if name in outputs else "intermediate tensor"
            problems.append(f"uint8 {where} {name!r} written by {node.op_type} {node.name!r}")
        elif types.get(node.input[0]) not in _UINT8_PARTNERS:
            source = _type_name(types.get(node.input[0]))
            problems.append(f"graph output {name!r} cast to uint8 from {source} by {node.name!r}")
        for reader in consumers.get(name, []):
            if reader.op_type != "Cast" or _cast_to(reader) not in _UINT8_PARTNERS:
                problems.append(f"uint8 {name!r} read by {reader.op_type} {reader.name!r}")
    return problems


def require_uint8_at_edges(model: onnx.ModelProto, label: str, consequence: str = "") -> None:
    """Raise GraphCheckError (one line, `label` first) when `uint8_violations` finds anything."""
    problems = uint8_violations(model)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise GraphCheckError(
            f"{label}: TensorRT takes uint8 only as a graph input cast to float or an output cast from float: "
            f"{shown}{consequence}"
        )


def element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the top-level graph (inputs, initializers, inferred intermediates)."""
    inferred = shape_inference.infer_shapes(model, check_type=True)
    types = {init.name: init.data_type for init in inferred.graph.initializer}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    for node in inferred.graph.node:  # Constant outputs may lack value_info
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types.setdefault(node.output[0], attr.t.data_type)
    return types


def _cast_to(node: onnx.NodeProto) -> int:
    return next((attr.i for attr in node.attribute if attr.name == "to"), TensorProto.UNDEFINED)


def _type_name(elem: int | None) -> str:
    return TensorProto.DataType.Name(elem or TensorProto.UNDEFINED)
