"""ConvTranspose -> one Conv computing every output phase, interleaved by DepthToSpace: the same arithmetic in a
form ONNX Runtime's CPU provider can run in INT8.

ONNX Runtime has no integer ConvTranspose kernel on the CPU: a quantized ConvTranspose dequantizes its input and
weights and runs in float, so a translator's two upsampling layers stay at the float rate in an INT8 artifact
(measured on the 1024x512 ResNet-9 generator: 0.8 s of its 7 s per image on one AVX2 core). A ConvTranspose with
stride s computes each of its s x s output phases (the outputs at rows s*q + ry, columns s*q + rx) as an ordinary
convolution of its input with a sub-kernel of its weights: the taps k = (r + pad) mod s, stepping by s, in
reverse order. One Conv holds all phases side by side (phase-major output channels, each phase's taps placed in a
common window, the rest zero) and DepthToSpace (DCR) puts each phase's outputs at their place. The Conv quantizes
to a QLinearConv like any other. (Four separate phase Convs would waste no taps, but ONNX Runtime fuses no
QLinearConv for an int8 input that several Convs read: in ONNX Runtime 1.32 they ran in float.)

Rewritten: 2-D ConvTranspose nodes with constant weights and bias, one group, no dilation, the same stride on both
axes, an output exactly s times its input (kernel - stride - pads + output_padding = 0 per axis), so every phase
has the input's size whatever size the graph is fed, and a common window at most MAX_MAC_OVERHEAD times the
ConvTranspose's own multiply-accumulates: the reference ResNet generators' kernel 3, stride 2, padding 1,
output_padding 1 (16 taps for 9: 1.78x; in int8 faster than the float ConvTranspose, measured on the 1024x512
ResNet-9 generator) and the U-Net segmenter's kernel 2, stride 2 (1x) are; pix2pix's kernel 4, stride 2, padding 1
(36 taps for 16: 2.25x, not measured) is not. Any other ConvTranspose is left as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uda_trt.export.graph_edit import node_attributes, replace_nodes

if TYPE_CHECKING:
    import numpy as np
    import onnx

MAX_MAC_OVERHEAD = 2.0


@dataclass(frozen=True)
class _AxisPhase:
    """One output phase along one axis: the kernel taps it reads, in convolution order, and its pad before."""

    taps: list[int]
    pad_begin: int


@dataclass(frozen=True)
class PhaseConv:
    """A ConvTranspose rewritten: its name, and the Conv and DepthToSpace nodes that replace it."""

    conv_transpose: str
    conv: str
    interleave: str

    def to_dict(self) -> dict[str, Any]:
        return {"conv_transpose": self.conv_transpose, "conv": self.conv, "interleave": self.interleave}


def _axis_phases(kernel: int, stride: int, pad_begin: int) -> list[_AxisPhase] | None:
    """Output o = stride*i + k - pad_begin, so o = stride*q + r reads taps k = first + stride*j at input
    q + offset - j. As a correlation over q: the taps reversed, starting `count - 1 - offset` before q, ending
    `offset` after it. None when a phase has no tap or would read past that window (a crop, not a pad)."""
    phases = []
    for r in range(stride):
        first = (r + pad_begin) % stride
        offset = (r + pad_begin - first) // stride
        count = math.ceil((kernel - first) / stride)
        if count < 1 or not 0 <= offset <= count - 1:
            return None
        phases.append(_AxisPhase([first + stride * (count - 1 - m) for m in range(count)], count - 1 - offset))
    return phases


def _axis_window(phases: list[_AxisPhase]) -> tuple[int, int, list[int]]:
    """One window for every phase of an axis: (pad before, window length, each phase's offset in it)."""
    pad = max(phase.pad_begin for phase in phases)
    offsets = [pad - phase.pad_begin for phase in phases]
    length = max(offset + len(phase.taps) for offset, phase in zip(offsets, phases, strict=True))
    return pad, length, offsets


def _plan(node: onnx.NodeProto, weights: np.ndarray, initializers: dict) -> list[list[_AxisPhase]] | None:
    """Each axis's phases when `node` is one this module rewrites (module doc), else None."""
    attributes = node_attributes(node)
    has_bias = len(node.input) > 2 and node.input[2]
    if weights.ndim != 4 or attributes.get("group", 1) != 1 or "output_shape" in attributes:
        return None
    if attributes.get("auto_pad", b"NOTSET") != b"NOTSET" or (has_bias and node.input[2] not in initializers):
        return None
    kernel = list(attributes.get("kernel_shape", weights.shape[2:]))
    strides = list(attributes.get("strides", [1, 1]))
    pads = list(attributes.get("pads", [0, 0, 0, 0]))
    output_padding = list(attributes.get("output_padding", [0, 0]))
    if list(attributes.get("dilations", [1, 1])) != [1, 1] or strides[0] != strides[1] or strides[0] < 2:
        return None
    axes = []
    for axis in range(2):
        if kernel[axis] - strides[axis] - pads[axis] - pads[axis + 2] + output_padding[axis] != 0:
            return None
        phases = _axis_phases(kernel[axis], strides[axis], pads[axis])
        if phases is None:
            return None
        axes.append(phases)
    window = math.prod(strides[axis] * _axis_window(axes[axis])[1] for axis in range(2))
    return axes if window <= MAX_MAC_OVERHEAD * math.prod(kernel) else None


def _phase_kernel(weights: np.ndarray, axes: list[list[_AxisPhase]]) -> tuple[np.ndarray, list[int]]:
    """ConvTranspose weights (in, out, kh, kw) -> the Conv kernel (phases x out, in, h, w) computing every phase,
    phase-major as DepthToSpace's DCR mode reads it, and the Conv's pads."""
    import numpy as np

    (pad_y, height, offsets_y), (pad_x, width, offsets_x) = (_axis_window(phases) for phases in axes)
    rows, columns = axes
    channels_in, channels_out = weights.shape[:2]
    kernel = np.zeros((len(rows), len(columns), channels_out, channels_in, height, width), weights.dtype)
    for ry, row in enumerate(rows):
        for rx, column in enumerate(columns):
            y, x = offsets_y[ry], offsets_x[rx]
            taps = weights[:, :, row.taps][:, :, :, column.taps].transpose(1, 0, 2, 3)
            kernel[ry, rx, :, :, y : y + len(row.taps), x : x + len(column.taps)] = taps
    pads = [pad_y, pad_x, height - 1 - pad_y, width - 1 - pad_x]
    return kernel.reshape(-1, channels_in, height, width), pads


def split_conv_transposes(model: onnx.ModelProto) -> list[PhaseConv]:
    """Rewrite, in place, every ConvTranspose of `model` that the module doc describes (named nodes: the names
    key the new ones, NAME/phases and NAME/interleave); what was rewritten."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    rewritten, nodes, replaced = [], [], set()
    for node in graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "ConvTranspose" else None
        weights = None if weight is None else numpy_helper.to_array(weight)
        axes = None if weights is None else _plan(node, weights, initializers)
        if axes is None:
            nodes.append(node)
            continue
        phases = len(axes[0]) * len(axes[1])
        kernel, pads = _phase_kernel(weights, axes)
        inputs = [node.input[0], f"{node.name}/phases.weight"]
        graph.initializer.append(numpy_helper.from_array(kernel, inputs[1]))
        if len(node.input) > 2 and node.input[2]:
            bias = np.tile(numpy_helper.to_array(initializers[node.input[2]]), phases)
            inputs.append(f"{node.name}/phases.bias")
            graph.initializer.append(numpy_helper.from_array(bias, inputs[2]))
        replaced.update(node.input[1:])
        stacked = f"{node.output[0]}/phases"
        rewritten.append(PhaseConv(node.name, f"{node.name}/phases", f"{node.name}/interleave"))
        nodes.append(
            onnx.helper.make_node(
                "Conv",
                inputs,
                [stacked],
                name=rewritten[-1].conv,
                kernel_shape=list(kernel.shape[2:]),
                pads=pads,
                strides=[1, 1],
                dilations=[1, 1],
                group=1,
            )
        )
        blocksize = len(axes[0])
        nodes.append(
            onnx.helper.make_node(
                "DepthToSpace",
                [stacked],
                list(node.output),
                name=rewritten[-1].interleave,
                blocksize=blocksize,
                mode="DCR",
            )
        )
    replace_nodes(graph, nodes, replaced)
    return rewritten
