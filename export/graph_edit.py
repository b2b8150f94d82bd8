"""Small in-place edits of ONNX graphs shared by the rewrites that run before an artifact is written
(export.output_phases, export.transpose_phases)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx


def node_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as plain Python values (ints, lists, bytes for strings)."""
    import onnx

    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def replace_nodes(graph: onnx.GraphProto, nodes: Iterable[onnx.NodeProto], replaced: set[str]) -> None:
    """Make `nodes` the graph's nodes, in that order, and drop the initializers named in `replaced` that none of
    them reads any more (a weight another node shares stays)."""
    nodes = list(nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name not in replaced or init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
