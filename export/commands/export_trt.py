"""export-trt: a translator or segmenter checkpoint -> STEM.onnx + STEM.json (and a TensorRT engine where possible).

Each step is validated in the same run: the ONNX against PyTorch on real images. Steps that need an NVIDIA GPU and
TensorRT are skipped with one line on a machine without them (exit 0), or refused with `--require-engine` (exit 2).
torch and onnx are imported inside the command so `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE, IntListType, fold_renamed, renamed_option, setup_logging


def engine_unavailable_reason(fp16: bool) -> str | None:
    """Why no engine is built on this machine, or None when one can be."""
    from uda_trt.runtime.runners import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is None and not fp16:
        return "the engine is built from STEM.fp16.onnx, which --no-fp16 turned off"
    return reason


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", metavar="CKPT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@renamed_option(
    "--output",
    "--output-dir",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for STEM.onnx, STEM.fp16.onnx, STEM.engine and STEM.json (default: next to the checkpoint).",
)
@click.option(
    "--size",
    type=SIZE,
    default=None,
    help="Translator working size WIDTHxHEIGHT, multiples of the model's divisor (default 1024x512; for GTA5 "
    "frames, 1914x1052, use 1024x564 to keep their aspect).",
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
    help="TensorRT timing cache, reused across builds (default ~/.cache/uda-trt/tensorrt.timing-cache).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the engine against STEM.onnx on the parity images (same bounds as the FP16 check).",
)
@click.option(
    "--require-engine",
    is_flag=True,
    help="Exit 2 when no TensorRT engine can be built here (no GPU or no TensorRT) instead of skipping it.",
)
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
    verify: bool,
    require_engine: bool,
    verbose: bool,
) -> None:
    """Export CKPT (a generator such as latest_net_G_A.pth, or a segmenter best.pt) for deployment.

    Writes STEM.onnx (uint8 NHWC RGB in, uint8 out, pre/post-processing inside) and its sidecar STEM.json,
    after checking ONNX Runtime against PyTorch (translators: within 1 grey level on >= 99.9% of pixels;
    segmenters: >= 99.9% identical labels; exit 1 when that fails). Then STEM.fp16.onnx (see --fp16) and, on
    a machine with an NVIDIA GPU and TensorRT, STEM.engine: a strongly typed FP16 engine (TensorRT 10 and 11)
    with one optimisation profile (--batch, --profile-sizes), checked against STEM.onnx unless --no-verify.
    """
    setup_logging(verbose)
    output_dir = fold_renamed({"output_dir": output_dir, "output_dir_old_spelling": output_dir_old_spelling})[
        "output_dir"
    ]
    from uda_trt.export.parity import load_parity_images

    images = load_parity_images(parity_images) if parity_images is not None else None
    from uda_trt.export.onnx_export import export_onnx  # torch: only once the cheap checks passed

    result = export_onnx(
        checkpoint,
        output_dir=output_dir,
        working_size=size,
        scale=scale,
        opset=opset,
        parity_images=images,
        fp16=fp16,
    )
    click.echo(f"wrote {result.onnx_path} (parity: {result.parity.summary()})")
    if result.fp16_path is not None:
        click.echo(f"wrote {result.fp16_path} (parity: {result.fp16_parity.summary()})")
    click.echo(f"wrote {result.sidecar_path}")

    reason = engine_unavailable_reason(fp16)
    if reason is not None:
        if require_engine:
            raise UserError(f"--require-engine: no TensorRT engine built: {reason}")
        click.echo(f"engine skipped: {reason}", err=True)
        return
    from uda_trt.export.engine import DEFAULT_TIMING_CACHE, default_profile, export_engine

    profile = default_profile(result.sidecar.task, result.sidecar.working_size, batch, profile_sizes)
    build, report = export_engine(
        result, profile, int(workspace * 2**30), timing_cache or DEFAULT_TIMING_CACHE, verify=verify
    )
    checked = f"parity: {report.summary()}" if report is not None else "not verified: --no-verify"
    click.echo(f"wrote {build.path} (TensorRT {build.tensorrt_version}, {build.gpu_name}; {checked})")
