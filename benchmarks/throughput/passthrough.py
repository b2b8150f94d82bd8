"""A pass-through translator artifact: `images` -> Identity -> `translated`, with a sidecar the runtime accepts.

Running batch-translate with it measures everything but the model: decode, resize, batching, encode and the job's
bookkeeping. That is the codec-bound case (criterion B) and the flat-memory check (criterion D).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from uda_trt.runtime.sidecar import Sidecar, file_sha256, sidecar_path

IR_VERSION = 10
OPSET = 17


def passthrough_model() -> onnx.ModelProto:
    """uint8 N x H x W x 3 in, the same tensor out."""
    shape = ["batch", "height", "width", 3]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["translated"])],
        "passthrough",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bench-throughput")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write_passthrough(folder: Path, working_size: tuple[int, int], divisor: int = 4, stem: str = "passthrough") -> Path:
    """Write `folder/STEM.onnx` and its sidecar `STEM.json` (task translate); return the .onnx path.

    working_size is (width, height) and must be a multiple of `divisor`, as for an exported generator.
    """
    width, height = working_size
    if width % divisor or height % divisor:
        raise ValueError(f"working size {width}x{height} is not a multiple of {divisor}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"{stem}.onnx"
    onnx.save(passthrough_model(), onnx_path)
    Sidecar(
        task="translate",
        architecture="identity",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "translated", "dtype": "uint8", "layout": "NHWC"}],
        size_divisor=divisor,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""},  # no checkpoint: the graph is written here
        opset=OPSET,
        ir_version=IR_VERSION,
        exporter_version="bench-throughput pass-through",
        working_size=(width, height),
    ).write(sidecar_path(onnx_path))
    return onnx_path
