"""export-trt: a translator or segmenter checkpoint -> STEM.onnx + STEM.json (and a TensorRT engine where possible).

Each step is validated in the same run: the ONNX against PyTorch on real images. Steps that need an NVIDIA GPU and
TensorRT are skipped with one line on a machine without them (exit 0), or refused with `--require-engine` (exit 2).
What the engine steps need is checked before anything is built, so a missing package never costs a build.
torch and onnx are imported inside the command so `--help` stays fast.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import click

from uda_trt.export.int8 import DEFAULT_CALIBRATION_IMAGES, KEEP_FLOAT, METHODS, CalibrationSet, calibration_set
from uda_trt.export.int8_eval import DEFAULT_SPLIT as INT8_EVAL_SPLIT
from uda_trt.export.int8_eval import check_int8_eval
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE, IntListType, fold_renamed, renamed_option, setup_logging

if TYPE_CHECKING:
    import numpy as np

    from uda_trt.export.engine import Profile, TimingCache

ENGINE_PACKAGES = ("tensorrt", "pycuda")
INSTALL = "pip install 'uda-trt[tensorrt]'"


def installed_packages() -> set[str]:
    """Which of ENGINE_PACKAGES this interpreter can import (found, not imported: importing pycuda starts CUDA)."""
    return {name for name in ENGINE_PACKAGES if importlib.util.find_spec(name) is not None}


def engine_blockers(gpu: bool, installed: Collection[str], fp16: bool, verify: bool) -> list[str]:
    """What stops the engine steps asked for on this machine, one phrase each; empty when they can all run.

    The build needs a GPU, `tensorrt` and STEM.fp16.onnx; `--verify` also runs the engine, which needs `pycuda`.
    """
    blockers = [] if gpu else ["no NVIDIA GPU found"]
    missing = [name for name in ENGINE_PACKAGES if name not in installed and (verify or name == "tensorrt")]
    if missing == ["pycuda"]:
        blockers.append(f"pycuda not installed: --verify runs the engine with it ({INSTALL}, or --no-verify)")
    elif missing:
        blockers.append(f"{' and '.join(missing)} not installed ({INSTALL})")
    if not fp16:
        blockers.append("the engine is built from STEM.fp16.onnx, which --no-fp16 turned off")
    return blockers


def engine_skip_reason(
    gpu: bool, installed: Collection[str], fp16: bool, verify: bool, require_engine: bool
) -> str | None:
    """None when the engine is to be built; else why it is skipped (after the ONNX export, exit 0).

    Raises UserError (exit 2, before any build) with `--require-engine`, and on a machine with a GPU and tensorrt
    that lacks only what `--verify` needs: there the engine would be built and then refused.
    """
    blockers = engine_blockers(gpu, installed, fp16, verify)
    if not blockers:
        return None
    reason = "; ".join(blockers)
    if require_engine:
        raise UserError(f"--require-engine: no TensorRT engine can be built and checked here: {reason}")
    if gpu and fp16 and "tensorrt" in installed:
        raise UserError(reason)
    return reason


def segmenter_engine_images(
    checkpoint: Path,
    images: list[np.ndarray] | None,
    batch: tuple[int, int, int],
    profile_sizes: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None,
) -> list[np.ndarray] | None:
    """For a segmenter, parity images inside its engine profile (export.parity.segmenter_parity_images), chosen
    before the export because the engine check reuses the export's images; translators' images pass unchanged."""
    from uda_trt.export.engine import default_profile
    from uda_trt.export.parity import segmenter_parity_images
    from uda_trt.train.checkpoints import require_model_checkpoint

    if require_model_checkpoint(checkpoint).kind != "segmenter":
        return images
    low, high = default_profile("segment", None, batch, profile_sizes).size_range()
    return segmenter_parity_images(images, low, high)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", metavar="CKPT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@renamed_option(
    "--output",
    "--output-dir",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for STEM.onnx, STEM.fp16.onnx, STEM.engine, STEM.int8.onnx and STEM.int8.engine (--int8) and "
    "STEM.json (default: next to the checkpoint).",
)
@click.option(
    "--size",
    type=SIZE,
    default=None,
    help="Translator working size WIDTHxHEIGHT, multiples of the model's divisor. Default: 1024x512 for ResNet "
    "(CycleGAN) generators (for GTA5 frames, 1914x1052, use 1024x564 to keep their aspect); for U-Net (pix2pix) "
    "generators the training crop in the config.json beside the checkpoint, else 2**depth square (256x256 for "
    "unet_256).",
)
@click.option(
    "--scale",
    type=float,
    default=None,
    help="Segmenter working scale applied inside the graph to full-resolution input (default: the checkpoint's).",
)
@click.option(
    "--parity-images",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of images for the ONNX-vs-PyTorch check (first 4, sorted); default: built-in synthetic scenes.",
)
@click.option("--opset", type=click.IntRange(14, 20), default=17, show_default=True, help="ONNX opset.")
@click.option(
    "--fp16/--no-fp16",
    default=True,
    show_default=True,
    help="Also write STEM.fp16.onnx (FP16 except InstanceNorm and overflowing ops), checked against STEM.onnx "
    "(translators: within 2 grey levels on >= 99.5% of pixels; segmenters: >= 99.5% identical labels). "
    "The TensorRT engine is built from it.",
)
@click.option(
    "--batch",
    "batch",
    default="1,4,8",
    show_default=True,
    type=IntListType("MIN,OPT,MAX", count=3, minimum=1, ordered=True),
    help="Engine profile batch sizes MIN,OPT,MAX: the engine runs any batch in the range, fastest at OPT.",
)
@click.option(
    "--profile-sizes",
    type=(SIZE, SIZE, SIZE),
    default=None,
    metavar="MIN OPT MAX",
    help="Engine profile image sizes, three WIDTHxHEIGHT (default: the working size for translators; "
    "256x128 2048x1024 2048x1024 for segmenters, which take full-resolution images).",
)
@click.option(
    "--workspace",
    type=click.FloatRange(0.25, 256),
    default=4.0,
    show_default=True,
    help="TensorRT builder workspace limit in GiB.",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT timing cache, reused across builds (default ~/.cache/uda-trt/tensorrt-VERSION-smCC.timing-cache, "
    "one per TensorRT version and GPU generation).",
)
@click.option(
    "--batch-norm",
    type=click.Choice(["per-image", "running"]),
    default=None,
    help="Translators with batch norm (pix2pix): per-image (default) normalises each image with its own statistics, "
    "as the pix2pix paper and the reference test.py without --eval do; running uses the statistics learned in "
    "training (the reference with --eval). Dropout is off either way.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the engine against STEM.onnx on the parity images (same bounds as the FP16 check), and the INT8 "
    "engine on the INT8 gate's held-out images with the INT8 gates; needs pycuda.",
)
@click.option(
    "--require-engine",
    is_flag=True,
    help="Exit 2, before anything is built, when no TensorRT engine can be built and checked here (no GPU, no "
    "tensorrt, or no pycuda for --verify) instead of skipping it.",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Also write STEM.int8.onnx (QDQ: int8 Conv/ConvTranspose/MatMul/Gemm with per-channel weights; pre- and "
    "post-processing, InstanceNorm and the layers whose quantization hurts most stay float), calibrated on "
    "--calibration and written only when it passes the gates against STEM.onnx on held-out images of that data "
    "(translators: within 3 grey levels on >= 99% of pixels and PSNR >= 35 dB; segmenters: >= 99% identical "
    "labels); exit 1 when it fails. Where the engine is built, STEM.int8.engine too, from STEM.int8.onnx with the "
    "same profile, checked with the same gates.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DATA",
    help="With --int8: images of the domain the artifact will see (translators: the source, e.g. GTA5; "
    "segmenters: the target, e.g. Cityscapes): an image folder or a GTA5- or Cityscapes-layout root.",
)
@click.option(
    "--calibration-images",
    type=click.IntRange(1, None),
    default=DEFAULT_CALIBRATION_IMAGES,
    show_default=True,
    help="Images to calibrate on, drawn from --calibration by a fixed seed; 8 more (a quarter of a small set) "
    "are held out for the gates.",
)
@click.option(
    "--calibration-split",
    default="train",
    show_default=True,
    help="Cityscapes split to calibrate on (Cityscapes-layout --calibration only).",
)
@click.option(
    "--calibration-method",
    type=click.Choice(["auto", *METHODS]),
    default="auto",
    show_default=True,
    help="auto: try each on the first 32 calibration images and keep the one closest to STEM.onnx on the "
    "held-out images.",
)
@click.option(
    "--int8-eval",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DATASET",
    help="Segmenters, with --int8: once STEM.int8.onnx is written, score STEM.onnx and it on DATASET (a labelled "
    "Cityscapes-layout root, as evaluate-seg reads) and print and record (sidecar: validation.int8_onnx.evaluation) "
    "both mIoUs and the change.",
)
@click.option(
    "--int8-eval-split",
    default=INT8_EVAL_SPLIT,
    show_default=True,
    help="Split of --int8-eval to score.",
)
@click.option("--int8-keep-float", type=click.Choice(KEEP_FLOAT), default="measured", hidden=True)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    checkpoint: Path,
    output_dir: Path | None,
    output_dir_old_spelling: Path | None,
    size: tuple[int, int] | None,
    scale: float | None,
    parity_images: Path | None,
    opset: int,
    fp16: bool,
    batch: tuple[int, int, int],
    profile_sizes: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None,
    workspace: float,
    timing_cache: Path | None,
    batch_norm: str | None,
    verify: bool,
    require_engine: bool,
    int8: bool,
    calibration: Path | None,
    calibration_images: int,
    calibration_split: str,
    calibration_method: str,
    int8_eval: Path | None,
    int8_eval_split: str,
    int8_keep_float: str,
    verbose: bool,
) -> None:
    """Export CKPT (a generator such as latest_net_G_A.pth, or a segmenter best.pt) for deployment.

    Writes STEM.onnx (uint8 NHWC RGB in, uint8 out, pre/post-processing inside) and its sidecar STEM.json,
    after checking ONNX Runtime against PyTorch (translators: within 1 grey level on >= 99.9% of pixels;
    segmenters: >= 99.9% identical labels; exit 1 when that fails). Then STEM.fp16.onnx (see --fp16) and, on
    a machine with an NVIDIA GPU and TensorRT, STEM.engine: a strongly typed FP16 engine (TensorRT 10 and 11)
    with one optimisation profile (--batch, --profile-sizes), checked against STEM.onnx unless --no-verify.
    Last, with --int8, STEM.int8.onnx (see --int8), with --int8-eval its mIoU beside STEM.onnx's, and where the
    engine is built, STEM.int8.engine: a strongly typed engine of the INT8 graph (explicit quantization).
    """
    setup_logging(verbose)
    output_dir = fold_renamed({"output_dir": output_dir, "output_dir_old_spelling": output_dir_old_spelling})[
        "output_dir"
    ]
    from uda_trt.export.parity import load_parity_images
    from uda_trt.runtime.runners import gpu_present

    skip_reason = engine_skip_reason(gpu_present(), installed_packages(), fp16, verify, require_engine)
    calibration_data = int8_calibration(int8, calibration, calibration_images, calibration_split)
    if int8_eval is not None:
        check_int8_eval_request(checkpoint, int8, int8_eval, int8_eval_split)
    images = load_parity_images(parity_images) if parity_images is not None else None
    if skip_reason is None:
        images = segmenter_engine_images(checkpoint, images, batch, profile_sizes)
    from uda_trt.export.onnx_export import export_onnx  # torch: only once the cheap checks passed

    result = export_onnx(
        checkpoint,
        output_dir=output_dir,
        working_size=size,
        scale=scale,
        opset=opset,
        parity_images=images,
        fp16=fp16,
        batch_norm=batch_norm,
    )
    click.echo(f"wrote {result.onnx_path} (parity: {result.parity.summary()})")
    if result.fp16_path is not None:
        click.echo(f"wrote {result.fp16_path} (parity: {result.fp16_parity.summary()})")
    click.echo(f"wrote {result.sidecar_path}")

    cache = timing_cache if timing_cache is not None else "default"
    if skip_reason is not None:  # one line for both engines: the INT8 one needs what the FP16 one needs
        both = " (STEM.engine and STEM.int8.engine)" if calibration_data is not None else ""
        click.echo(f"engine skipped{both}: {skip_reason}", err=True)
    else:
        from uda_trt.export.engine import default_profile, export_engine

        profile = default_profile(result.sidecar.task, result.sidecar.working_size, batch, profile_sizes)
        build, report = export_engine(result, profile, int(workspace * 2**30), cache, verify=verify)
        checked = f"parity: {report.summary()}" if report is not None else "not verified: --no-verify"
        click.echo(f"wrote {build.path} (TensorRT {build.tensorrt_version}, {build.gpu_name}; {checked})")
    if calibration_data is not None:
        from uda_trt.export.int8 import export_int8

        quantized = export_int8(result.onnx_path, calibration_data, calibration_method, int8_keep_float)
        click.echo(f"wrote {quantized.path} ({quantized.method} calibration; gates: {quantized.gate.summary()})")
        if int8_eval is not None:
            from uda_trt.export.int8_eval import evaluate_int8, summary_line

            click.echo(summary_line(evaluate_int8(result.onnx_path, quantized.path, int8_eval, int8_eval_split)))
        if skip_reason is None:
            write_int8_engine(result.onnx_path, calibration_data, profile, int(workspace * 2**30), cache, verify)


def write_int8_engine(
    onnx_path: Path, data: CalibrationSet, profile: Profile, workspace_bytes: int, cache: TimingCache, verify: bool
) -> None:
    """STEM.int8.engine from the STEM.int8.onnx just written (export.int8_engine), checked on the held-out images
    its gates were measured on; echoes a "wrote" line like the FP16 engine's."""
    from uda_trt.export.int8 import image_loader
    from uda_trt.export.int8_engine import export_int8_engine, gate_summary
    from uda_trt.runtime.sidecar import load_sidecar

    sidecar = load_sidecar(onnx_path)
    load = image_loader(sidecar.task, sidecar.working_size)
    images = [load(path) for path in data.held_out] if verify else []
    build, report = export_int8_engine(onnx_path, images, profile, workspace_bytes, cache, verify)
    checked = f"gates: {gate_summary(report)}" if report is not None else "not verified: --no-verify"
    click.echo(f"wrote {build.path} (TensorRT {build.tensorrt_version}, {build.gpu_name}; {checked})")


def check_int8_eval_request(checkpoint: Path, int8: bool, dataset: Path, split: str) -> None:
    """--int8-eval scores a segmenter's INT8 file: UserError (exit 2, before any export) without --int8, for a
    DATASET evaluate-seg could not score, or for a translator. The checkpoint's kind is checked last: reading it
    imports torch (seconds), so a mistyped DATASET is refused at once."""
    if not int8:
        raise UserError("--int8-eval applies with --int8: it scores STEM.onnx and STEM.int8.onnx on DATASET")
    check_int8_eval(dataset, split)
    from uda_trt.train.checkpoints import require_model_checkpoint

    kind = require_model_checkpoint(checkpoint).kind
    if kind != "segmenter":
        raise UserError(
            f"--int8-eval: {checkpoint.name} is a {kind} checkpoint; the mIoU change applies to segmenters (a "
            "translator's INT8 file is judged by its gates: grey levels and PSNR against STEM.onnx)"
        )


def int8_calibration(int8: bool, calibration: Path | None, count: int, split: str) -> CalibrationSet | None:
    """The images the INT8 step will use, drawn before anything is exported so bad input costs no export; None
    without --int8. UserError (exit 2) for --int8 without --calibration, or the reverse."""
    if calibration is None:
        if int8:
            raise UserError("--int8 needs --calibration DATA: images of the domain the artifact will see")
        return None
    if not int8:
        raise UserError("--calibration applies with --int8")
    return calibration_set(calibration, count, split)
