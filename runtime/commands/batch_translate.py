"""`batch-translate`: translate a whole GTA5-layout dataset (or any image folder) with an exported translator or FDA."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE, setup_logging
from uda_trt.runtime.jobs.shards import SHARD, SHARD_HELP
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.runners import BACKENDS


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--engine",
    "artifact",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Translator artifact: STEM.onnx, STEM.fp16.onnx, STEM.int8.onnx, STEM.engine or STEM.int8.engine (its "
    "STEM.json sidecar beside it). "
    "Give this or --fda.",
)
@click.option(
    "--fda",
    "fda_target",
    default=None,
    type=click.Path(path_type=Path, file_okay=False),
    help="Translate by Fourier Domain Adaptation instead of an artifact (no model, CPU only): each image keeps its "
    "phase and takes the low-frequency amplitudes of a target image, chosen per image from a hash of its relative "
    "path and --seed. TARGET_ROOT is a Cityscapes root (its leftImg8bit/train images) or an image folder.",
)
@click.option(
    "--beta",
    type=float,
    default=None,
    help="FDA only: the low-frequency window's half-size as a fraction of the shorter side, in (0, 0.5] "
    "[default: 0.01, the paper's].",
)
@click.option(
    "--seed", type=int, default=None, help="FDA only: changes which target image each source image takes [default: 0]."
)
@click.option(
    "--input",
    "input_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset root: GTA5 layout (images/, labels/), Cityscapes layout, or any image folder.",
)
@click.option(
    "--output",
    "output_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Output root; written in the input's layout, with manifest.json and report.json beside.",
)
@click.option(
    "--layout",
    type=click.Choice(["auto", "gta5", "cityscapes", "folder"]),
    default="auto",
    help="Input layout; auto detects it from the folder names.",
)
@click.option(
    "--split", default="train", help="Cityscapes split to translate (Cityscapes layout only; one split per run)."
)
@click.option(
    "--size",
    type=SIZE,
    default=None,
    help="Working size WIDTHxHEIGHT the translator runs at (a multiple of its divisor). "
    "Default: the size recorded at export; with --fda, each image's own size (the target image is resized to it).",
)
@click.option(
    "--output-size",
    type=click.Choice(["original", "working"]),
    default="original",
    help="original: each image resized back to its input's size and labels copied byte for byte, so the "
    "translated dataset has the source's geometry (train both study arms with the same --scale); working: "
    "images at the working size, labels resized with nearest neighbour.",
)
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", help="Output image format.")
@click.option(
    "--png-compression",
    type=click.IntRange(0, 9),
    default=1,
    help="PNG compression level (1 writes ~3.5x faster than 6, files up to ~10% larger).",
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, help="JPEG quality for --format jpg.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per inference call. On the CPU each batch is split between two single-threaded runs (a batch of "
    "one image runs over all threads), so even a job of one batch keeps the cores busy. [default: chosen per "
    "backend: on the CPU one image per run in flight, 2 with two cores or more (measured: as fast as 4 on long "
    "jobs, faster on short ones); a TensorRT engine's optimisation batch; 4 on ONNX Runtime's GPU providers and "
    "for --fda]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads decoding, resizing and encoding around the engine (--fda computes its FFTs in "
    "min(workers, 4) threads of its own) [default: every CPU this process may use].",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    help="Inference backend; auto picks from the file suffix and what this machine has, and runs on the "
    "ONNX Runtime providers that start (the outputs record which). An explicit onnxruntime-cuda or "
    "onnxruntime-tensorrt is refused when ONNX Runtime cannot run that provider here.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Stop at the first unreadable or inconsistent sample instead of skipping it.",
)
@click.option(
    "--shard",
    type=SHARD,
    default=None,
    help=SHARD_HELP + " Shards write one --output together, each with its own manifest.shard-I-of-N.json, journal, "
    "lock and report, and each resumes on its own.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Redo every image, even when --output holds a run made with other options or another artifact "
    "(without it such a run is refused; the same command resumes).",
)
@click.option(
    "--ray",
    "ray_target",
    default=None,
    metavar="auto|local|ADDRESS",
    help="Run on a Ray cluster (pip install 'uda-trt[ray]'): local starts one on this machine, auto joins the "
    "one this machine belongs to (ray start, RAY_ADDRESS), or give its address (host:port, ray://host:port). Same "
    "files, byte for byte; a run killed with or without --ray resumes with or without it. Every node must see "
    "--input, --output and --engine at the same paths.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    artifact: Path | None,
    fda_target: Path | None,
    beta: float | None,
    seed: int | None,
    input_root: Path,
    output_root: Path,
    layout: str,
    split: str,
    size,
    output_size: str,
    image_format: str,
    png_compression: int,
    jpeg_quality: int,
    batch_size: int | None,
    workers: int,
    backend: str,
    strict: bool,
    shard,
    overwrite: bool,
    ray_target: str | None,
    verbose: bool,
) -> None:
    """Translate every image under --input with a translator artifact (--engine) or by FDA (--fda TARGET_ROOT)
    and write a dataset in the same layout.

    GTA5 in -> OUT/images/NNNNN.png and OUT/labels/NNNNN.png, at each input's size. The summary line and
    OUT/report.json say the layout found, the split and whether labels were carried; a guess that drops labels is
    warned about. Unreadable or inconsistent samples are logged, skipped and counted in OUT/report.json.

    A killed or interrupted run (Ctrl-C, SIGTERM: exit 130, 143) is finished by rerunning the same command: images
    already written from unchanged inputs are checked and kept, and the result is byte-identical to an
    uninterrupted run. Outputs of inputs that are gone are removed, and --overwrite removes everything earlier runs
    wrote (only files their journal lists).

    FDA (Yang and Soatto, CVPR 2020) needs no training: `--fda CITYSCAPES_ROOT --beta 0.01` is the baseline a
    trained translator should beat. Its manifest records the target list's hash, --beta and --seed instead of an
    artifact's sha256; reruns and resumed runs are byte-identical.
    """
    from uda_trt.runtime.fda_translator import check_beta
    from uda_trt.runtime.jobs.interrupts import stop_on_signals
    from uda_trt.runtime.translate import TranslateJob, batch_translate

    setup_logging(verbose)
    if fda_target is None and (beta is not None or seed is not None):
        raise UserError(f"{'--beta' if beta is not None else '--seed'}: applies to --fda only")
    if fda_target is not None and artifact is not None:
        raise UserError("--fda: give either --engine or --fda, not both")
    if fda_target is not None and beta is not None:
        check_beta(beta)  # before any listing: a bad --beta is the first thing said
    if fda_target is None and artifact is None:
        raise UserError("--engine: give a translator artifact (--engine ART) or --fda TARGET_ROOT")
    if shard is not None and ray_target is not None:
        raise UserError("--shard: give it without --ray (separate runs share the job; Ray shares it by itself)")
    job = TranslateJob(
        artifact=artifact,
        input_root=input_root,
        output_root=output_root,
        layout=layout,
        split=split,
        size=size,
        output_size=output_size,
        image_format=image_format,
        png_compression=png_compression,
        jpeg_quality=jpeg_quality,
        batch_size=batch_size,
        workers=workers or default_workers(),
        backend=backend,
        strict=strict,
        overwrite=overwrite,
        fda_target=fda_target,
        fda_beta=0.01 if beta is None else beta,
        fda_seed=0 if seed is None else seed,
        shard=shard,
    )
    if ray_target is not None:
        from uda_trt.runtime.ray_translate import batch_translate_on_ray

        batch_translate_on_ray(job, ray_target)  # logs its summary line last
        return
    with stop_on_signals():
        batch_translate(job)  # logs its summary line last
