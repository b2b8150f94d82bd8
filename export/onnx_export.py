"""Checkpoint -> `STEM.onnx` + sidecar `STEM.json`, checked against PyTorch on real images in the same run.

The legacy TorchScript exporter (`dynamo=False`) handles dynamic batch/height/width for ResNet/U-Net generators
and torchvision segmenters; onnx writes an IR version newer than onnxruntime reads, so it is pinned (IR 10).
`STEM.onnx` is the traced graph with its few-output-channel Convs rewritten for ONNX Runtime's CPU kernels
(export.output_phases); `STEM.fp16.onnx`, TensorRT's source, is converted from the traced graph as it is.
Every graph written (FP32 and FP16) is first checked as a graph (export.graph_checks: uint8 only at the edges, as
TensorRT needs), then against its reference on images. The sidecar is written only after parity passes: the
runtime never finds a sidecar for an unverified model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from uda_trt.export.graph_checks import require_uint8_at_edges
from uda_trt.export.graphs import SegmenterGraph, TranslatorGraph, with_per_image_statistics
from uda_trt.export.output_phases import OutputPhases, stack_output_phases
from uda_trt.export.parity import (
    SEGMENTER_PARITY_SIZE,
    ParityError,
    ParityReport,
    relative_margins,
    require,
    run_parity,
    synthetic_parity_images,
)
from uda_trt.runtime import labels
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import resize_rgb
from uda_trt.runtime.jobs.files import atomic_write_bytes, json_plain
from uda_trt.runtime.runners import OnnxRuntimeRunner
from uda_trt.runtime.sidecar import Sidecar, file_sha256, sidecar_path

log = logging.getLogger(__name__)

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 would write 14
DEFAULT_OPSET = 17
DEFAULT_WORKING_SIZE = (1024, 512)  # (w, h): half-resolution Cityscapes, a multiple of 4 and of 256
# Segmenters: `tie_margin` (see export.parity.relative_margins) leaves out pixels whose two best classes are closer
# than the rounding each step may bring; FP16 arithmetic moves logits by a few percent of their spread.
ONNX_PARITY = {
    "translate": {"required": 0.999, "tolerance": 1},
    "segment": {"required": 0.999, "tolerance": 0, "tie_margin": 0.02},
}
FP16_PARITY = {
    "translate": {"required": 0.995, "tolerance": 2},
    "segment": {"required": 0.995, "tolerance": 0, "tie_margin": 0.1},
}


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote and measured."""

    onnx_path: Path
    sidecar_path: Path
    sidecar: Sidecar
    parity: ParityReport
    fp16_path: Path | None = None  # None when FP16 was not asked for
    fp16_parity: ParityReport | None = None
    parity_images: list[np.ndarray] = dataclasses.field(default_factory=list, repr=False)  # for later checks
    # segmenters: the PyTorch reference's top-two margins per image (export.parity.relative_margins)
    parity_margins: list[np.ndarray] | None = dataclasses.field(default=None, repr=False)


@dataclass(frozen=True)
class _Prepared:
    """A checkpoint turned into an exportable graph plus the sidecar fields that describe it."""

    task: str
    graph: nn.Module
    output_name: str
    size_divisor: int
    trace_size: tuple[int, int]  # (w, h) of the dummy input used for tracing; axes stay dynamic
    fields: dict[str, Any]
    args: dict[str, Any] = dataclasses.field(default_factory=dict)  # recorded with the architecture's own args


DEFAULT_BATCH_NORM = "per-image"  # for generators with batch norm; "running" is the alternative


def _prepare_translator(
    info: Any, working_size: tuple[int, int] | None, scale: float | None, batch_norm: str | None = None
) -> _Prepared:
    from uda_trt.train.checkpoints import build_translator, size_divisor

    if scale is not None:
        raise UserError("--scale applies to segmenters; a translator takes --size WIDTHxHEIGHT")
    divisor = size_divisor(info.architecture, info.args)
    width, height = working_size or default_translator_size(info)
    if width % divisor or height % divisor:
        raise UserError(
            f"--size {width}x{height}: {info.architecture} needs width and height multiples of {divisor}, "
            f"e.g. {_round_to(width, divisor)}x{_round_to(height, divisor)}"
        )
    generator = build_translator(info.architecture, info.args, info.state_dict)
    norm = info.args.get("norm")
    if norm != "batch" and batch_norm is not None:
        raise UserError(f"--batch-norm {batch_norm}: {info.path.name} has no batch norm (its norm is {norm})")
    if norm == "batch":
        batch_norm = batch_norm or DEFAULT_BATCH_NORM
        if batch_norm == "per-image":
            generator = with_per_image_statistics(generator)
    side = max(64, divisor)
    return _Prepared(
        task="translate",
        graph=TranslatorGraph(generator),
        output_name="translated",
        size_divisor=divisor,
        trace_size=(2 * side, side),
        fields={"working_size": (width, height)},
        args={"batch_norm": batch_norm} if norm == "batch" else {},
    )


def default_translator_size(info: Any) -> tuple[int, int]:
    """The working size (w, h) a translator is exported at without `--size`.

    ResNet generators (CycleGAN) are trained on crops and run at any resolution: DEFAULT_WORKING_SIZE. A U-Net's
    innermost layer sees the whole image it was trained on (pix2pix's 256x256 crop for unet_256), so it runs at its
    training size: the crop that train-pix2pix's config.json beside the checkpoint records for this generator, else
    the reference's square crop, 2**num_downs on a side.
    """
    if info.architecture != "unet_generator":
        return DEFAULT_WORKING_SIZE
    crop = _recorded_crop(Path(info.path).parent / "config.json", info.args)
    side = 2 ** int(info.args["num_downs"])
    size = crop or (side, side)
    log.info("working size %dx%d (%s)", *size, "the training crop in config.json" if crop else "the U-Net's own")
    return size


def _recorded_crop(config_json: Path, args: dict[str, Any]) -> tuple[int, int] | None:
    """The training crop a train-pix2pix config.json records, when it describes a generator of these `args`."""
    try:
        recorded = json.loads(config_json.read_text())
        generator, crop = recorded["generator"], recorded["config"]["crop_size"]
        same = generator["architecture"] == "unet_generator" and all(
            generator["args"][key] == args[key] for key in ("num_downs", "ngf", "input_nc", "output_nc")
        )
        width, height = (int(side) for side in crop)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (width, height) if same else None


def _prepare_segmenter(info: Any, working_size: tuple[int, int] | None, scale: float | None) -> _Prepared:
    from uda_trt.train.segmenters import NORMALIZATION, build_segmenter_from_checkpoint

    if working_size is not None:
        raise UserError("--size applies to translators; a segmenter takes full-resolution images and --scale F")
    config = info.args
    scale = float(scale if scale is not None else config.get("scale", 1.0))
    if not 0 < scale <= 4:
        raise UserError(f"--scale {scale}: must be in (0, 4]")
    normalization = config.get("normalization") or NORMALIZATION
    model = build_segmenter_from_checkpoint(info)
    num_classes = int(config.get("num_classes", labels.NUM_CLASSES))
    if num_classes != labels.NUM_CLASSES:
        raise UserError(
            f"segmenter has {num_classes} classes; the runtime expects the {labels.NUM_CLASSES} Cityscapes classes"
        )
    return _Prepared(
        task="segment",
        graph=SegmenterGraph(model, scale, normalization["mean"], normalization["std"]),
        output_name="labels",
        size_divisor=1,
        trace_size=(128, 64),
        fields={
            "scale": scale,
            "class_names": list(labels.CLASS_NAMES),
            "train_id_to_label_id": [int(v) for v in labels.TRAIN_ID_TO_LABEL_ID],
            "palette": labels.PALETTE.tolist(),
        },
    )


def _round_to(value: int, divisor: int) -> int:
    return max(divisor, round(value / divisor) * divisor)


def export_graph(
    graph: nn.Module, output_name: str, trace_size: tuple[int, int], opset: int = DEFAULT_OPSET
) -> onnx.ModelProto:
    """Trace a uint8-NHWC graph to ONNX (input `images`, dynamic batch/height/width), pin the IR version, check it.

    trace_size (w, h) only sizes the dummy input; the exported axes stay dynamic.
    """
    width, height = trace_size
    dummy = torch.zeros((1, height, width, 3), dtype=torch.uint8)
    output_axes = {0: "batch", 1: "height", 2: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings are not the user's
        torch.onnx.export(
            graph.eval(),
            (dummy,),
            buffer,
            input_names=["images"],
            output_names=[output_name],
            dynamic_axes={"images": {0: "batch", 1: "height", 2: "width"}, output_name: output_axes},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    _inline_shared_initializers(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def with_output_phases(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[OutputPhases]]:
    """A copy of `model` with its few-output-channel Convs rewritten for ONNX Runtime's CPU provider
    (export.output_phases), and what was rewritten. `STEM.onnx` is this copy; the FP16 graph, which TensorRT
    builds its engines from with kernels of its own choosing, is converted from the traced `model` as it is."""
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    rewrites = stack_output_phases(rewritten)
    if rewrites:
        onnx.checker.check_model(rewritten, full_check=True)
    return rewritten, rewrites


def _inline_shared_initializers(model: onnx.ModelProto) -> None:
    """Replace each `Identity(initializer)` node with a copy of that initializer under the node's output name.

    The exporter stores equal constants once and reads the copies through Identity nodes (an untrained batch norm's
    scales are all ones in every layer). The FP16 converter then converts the initializer but not the Identity
    outputs' declared type, and the graph no longer type-checks; plain initializers convert cleanly.
    """
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    declared = {tensor.name for tensor in model.graph.initializer}
    values = [value for value in model.graph.value_info if value.name not in declared]
    del model.graph.value_info[:]
    model.graph.value_info.extend(values)


def exporter_version() -> str:
    """Versions that produced an artifact, for the sidecar."""
    try:
        own = metadata.version("uda-trt")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return f"uda-trt {own}; torch {torch.__version__}; onnx {onnx.__version__}"


def export_onnx(
    checkpoint: Path,
    output_dir: Path | None = None,
    working_size: tuple[int, int] | None = None,
    scale: float | None = None,
    opset: int = DEFAULT_OPSET,
    parity_images: list[np.ndarray] | None = None,
    fp16: bool = True,
    batch_norm: str | None = None,
) -> ExportResult:
    """Export a translator or segmenter checkpoint to `STEM.onnx` and write `STEM.json` once parity passes.

    working_size: (w, h) for translators (default: default_translator_size); scale: segmenter working scale
    (default: the checkpoint's). parity_images: RGB uint8 images (translators: resized to the working size;
    segmenters: used at their own resolution); default: built-in synthetic scenes. fp16: also write
    `STEM.fp16.onnx` (see export.fp16), checked against the FP32 ONNX on the same images.
    batch_norm: for a translator with batch norm (pix2pix), "per-image" (default) normalises each image with its own
    statistics, as the pix2pix paper and the reference test.py without --eval do
    (export.graphs.with_per_image_statistics); "running" uses the training's running statistics (eval mode, the
    reference with --eval).
    Raises UserError (exit 2) for a checkpoint of the wrong kind or impossible sizes, ParityError (exit 1) when ONNX
    Runtime disagrees with PyTorch or the FP16 model with the FP32 one (the FP32 ONNX and its sidecar are kept in
    that case: they passed), GraphCheckError (exit 1) when a written graph has uint8 anywhere but at its edges
    (export.graph_checks).
    """
    from uda_trt.train.checkpoints import require_model_checkpoint

    checkpoint = Path(checkpoint)
    info = require_model_checkpoint(checkpoint)
    if info.kind == "translator":
        prepared = _prepare_translator(info, working_size, scale, batch_norm)
    elif info.kind == "segmenter":
        if batch_norm is not None:
            raise UserError("--batch-norm applies to translators with batch norm (pix2pix generators)")
        prepared = _prepare_segmenter(info, working_size, scale)
    else:  # require_model_checkpoint refuses the other kinds; guard against new ones
        raise UserError(f"{checkpoint}: a {info.kind} checkpoint cannot be exported")

    out_dir = Path(output_dir) if output_dir is not None else checkpoint.parent
    onnx_path = out_dir / f"{checkpoint.stem}.onnx"
    json_path = sidecar_path(onnx_path)

    model = export_graph(prepared.graph, prepared.output_name, prepared.trace_size, opset)
    cpu_model, rewrites = with_output_phases(model)
    try:
        json_path.unlink(missing_ok=True)  # an old sidecar describes an old model; never leave it beside a new one
        atomic_write_bytes(onnx_path, cpu_model.SerializeToString())
    except OSError as error:
        raise UserError(f"{onnx_path}: cannot write it ({error.strerror}); choose another --output") from None
    log.debug("wrote %s", onnx_path)
    require_uint8_at_edges(cpu_model, onnx_path.name, f"; {onnx_path.name} kept for inspection, no sidecar written")

    sidecar = Sidecar(
        task=prepared.task,
        architecture=info.architecture,
        architecture_args=json_plain({**info.args, **prepared.args}),
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": prepared.output_name, "dtype": "uint8", "layout": _output_layout(prepared.task)}],
        size_divisor=prepared.size_divisor,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
        opset=opset,
        ir_version=model.ir_version,
        exporter_version=exporter_version(),
        onnx_rewrites={"output_phases": [rewrite.to_dict() for rewrite in rewrites]} if rewrites else None,
        **prepared.fields,
    )
    images = _parity_inputs(prepared, sidecar, parity_images)
    margins = reference_margins(prepared.graph, images) if prepared.task == "segment" else None
    report = check_onnx_against_torch(prepared.graph, onnx_path, sidecar, images, margins)
    sidecar = dataclasses.replace(sidecar, validation={"onnx": report.to_dict()})
    sidecar.write(json_path)
    log.debug("wrote %s (%s)", json_path, report.summary())
    result = ExportResult(
        onnx_path=onnx_path,
        sidecar_path=json_path,
        sidecar=sidecar,
        parity=report,
        parity_images=images,
        parity_margins=margins,
    )
    return export_fp16(result, model, images) if fp16 else result


def export_fp16(result: ExportResult, model: onnx.ModelProto, images: list[np.ndarray]) -> ExportResult:
    """Write `STEM.fp16.onnx` from the traced FP32 `model`, check it against `STEM.onnx` on `images`, extend the
    sidecar.

    The FP32 sidecar is already on disk, so a failure here (ParityError, exit 1) leaves a working FP32 export.
    """
    from uda_trt.export.fp16 import Fp16PolicyError, convert_to_fp16

    sidecar = result.sidecar
    fp16_path = result.onnx_path.with_name(result.onnx_path.name[: -len(".onnx")] + ".fp16.onnx")
    fp16_path.unlink(missing_ok=True)  # the sidecar on disk does not list it; never leave an old one beside
    try:
        converted = convert_to_fp16(model, [{"images": image[None]} for image in images])
    except Fp16PolicyError as error:
        raise ParityError(f"{fp16_path.name}: {error}; {result.onnx_path.name} is fine, use it") from None
    try:
        atomic_write_bytes(fp16_path, converted.model.SerializeToString())
    except OSError as error:
        raise UserError(f"{fp16_path}: cannot write it ({error.strerror})") from None
    kept = f"; {fp16_path.name} kept for inspection and not listed in the sidecar; {result.onnx_path.name} is fine"
    require_uint8_at_edges(converted.model, fp16_path.name, kept)
    bounds = FP16_PARITY[sidecar.task]
    name = sidecar.output_name()
    with (
        OnnxRuntimeRunner(result.onnx_path, sidecar, "onnxruntime-cpu") as fp32,
        OnnxRuntimeRunner(fp16_path, sidecar, "onnxruntime-cpu") as half,
    ):
        report = run_parity(
            sidecar.task,
            images,
            lambda batch: fp32.infer({"images": batch})[name],
            lambda batch: half.infer({"images": batch})[name],
            bounds["required"],
            bounds["tolerance"],
            "onnx",
            near_ties(result.parity_margins, bounds),
        )
    require(report, fp16_path, f"; {fp16_path.name} kept for inspection and not listed in the sidecar")
    sidecar = dataclasses.replace(
        sidecar,
        artifacts={**sidecar.artifacts, "fp16_onnx": {"file": fp16_path.name, "sha256": file_sha256(fp16_path)}},
        fp16_policy=converted.policy(),
        validation={**(sidecar.validation or {}), "fp16_onnx": report.to_dict()},
    )
    sidecar.write(result.sidecar_path)
    log.debug("wrote %s (%s)", fp16_path, report.summary())
    return dataclasses.replace(result, sidecar=sidecar, fp16_path=fp16_path, fp16_parity=report)


def reference_margins(graph: nn.Module, images: list[np.ndarray]) -> list[np.ndarray]:
    """Per image, how clearly the PyTorch segmenter decides each pixel (export.parity.relative_margins)."""
    with torch.inference_mode():
        return [relative_margins(graph.logits(torch.from_numpy(image[None]))[0].numpy()) for image in images]


def near_ties(margins: list[np.ndarray] | None, bounds: dict) -> list[np.ndarray] | None:
    """The pixels a check with these bounds leaves out: margins below its `tie_margin` (None: compare every pixel)."""
    if margins is None or "tie_margin" not in bounds:
        return None
    return [margin < bounds["tie_margin"] for margin in margins]


def check_onnx_against_torch(
    graph: nn.Module,
    onnx_path: Path,
    sidecar: Sidecar,
    images: list[np.ndarray],
    margins: list[np.ndarray] | None = None,
) -> ParityReport:
    """ONNX Runtime (CPU, the runtime's own runner) vs the PyTorch graph on the same uint8 images (segmenters:
    `margins` are the reference's top-two margins; near-ties are left out of the label agreement)."""
    bounds = ONNX_PARITY[sidecar.task]
    name = sidecar.output_name()

    def torch_fn(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(batch)).numpy()

    with OnnxRuntimeRunner(onnx_path, sidecar, "onnxruntime-cpu") as runner:
        report = run_parity(
            sidecar.task,
            images,
            torch_fn,
            lambda batch: runner.infer({"images": batch})[name],
            bounds["required"],
            bounds["tolerance"],
            "pytorch",
            near_ties(margins, bounds),
        )
    require(report, onnx_path, f"; {onnx_path.name} kept for inspection, no sidecar written")
    return report


def _parity_inputs(prepared: _Prepared, sidecar: Sidecar, images: list[np.ndarray] | None) -> list[np.ndarray]:
    if prepared.task == "translate":
        size = sidecar.working_size
        if images is None:
            return synthetic_parity_images("translate", size)
        return [resize_rgb(image, size) if image.shape[1::-1] != size else image for image in images]
    return images if images is not None else synthetic_parity_images("segment", SEGMENTER_PARITY_SIZE)


def _output_layout(task: str) -> str:
    return "NHWC" if task == "translate" else "NHW"
