"""`evaluate-seg`: score a segmenter on a Cityscapes-layout split, from its artifact or from prediction PNGs.

Writes OUT/metrics.json, metrics.md and evaluate-seg.log (docs/contracts.md, "evaluate-seg"). Exit 0 when at least
one image was scored, 1 when none could be, 2 for bad input (one line naming the file or flag).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import setup_logging
from uda_trt.runtime.jobs.logs import log_file
from uda_trt.runtime.jobs.shards import SHARD, SHARD_HELP
from uda_trt.runtime.runners import BACKENDS

log = logging.getLogger(__name__)
LOG_NAME = "evaluate-seg.log"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--engine",
    "artifact",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Segmenter artifact (STEM.onnx, STEM.fp16.onnx, STEM.int8.onnx, STEM.engine or STEM.int8.engine, its "
    "STEM.json beside it), "
    "run at full resolution over leftImg8bit/SPLIT.",
)
@click.option(
    "--predictions",
    "pred_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of prediction PNGs from any tool, searched recursively; matched to ground truth by the "
    "{city}_{seq}_{frame} prefix of the file name, as the official evaluator does.",
)
@click.option(
    "--cityscapes",
    "cityscapes_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Cityscapes-layout root holding gtFine/SPLIT (and leftImg8bit/SPLIT for --engine).",
)
@click.option("--split", default="val", help="Split to score.")
@click.option(
    "--id-type",
    type=click.Choice(["labelid", "trainid", "color", "color-nearest"]),
    default="labelid",
    help="What --predictions PNGs hold: Cityscapes label IDs (official format), train IDs 0..18, palette colours "
    "(exact colours only; any other colour is a prediction outside the classes), or colour label maps drawn by a "
    "model such as pix2pix (color-nearest: each pixel takes the class of the nearest Cityscapes colour in RGB, "
    "void colours included, which count as outside the classes).",
)
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for metrics.json and metrics.md.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, help="Images per inference call (--engine).")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    help="Inference backend (--engine); auto picks from the file suffix and what this machine has, and runs on the "
    "ONNX Runtime providers that start (the outputs record which). An explicit onnxruntime-cuda or "
    "onnxruntime-tensorrt is refused when ONNX Runtime cannot run that provider here.",
)
@click.option(
    "--save-predictions",
    is_flag=True,
    help="With --engine: also write OUT/predictions/{city}/{stem}_pred_labelIds.png (official-evaluator format).",
)
@click.option(
    "--strict", is_flag=True, help="With --predictions: a ground-truth image without a prediction is an error."
)
@click.option(
    "--figures/--no-figures",
    default=True,
    help="Also write OUT/confusion.png (the confusion matrix, row-normalised) and OUT/overlays.png (the first "
    "scored images with prediction and ground truth blended over them; with --predictions, when the Cityscapes "
    "root has the photos).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding threads (default: up to 4).")
@click.option(
    "--shard",
    type=SHARD,
    default=None,
    help=SHARD_HELP + " Give each shard its own --output; its metrics.json carries the confusion matrix, and "
    "merge-metrics sums the shards' into the metrics of the whole split.",
)
@click.option(
    "--ray",
    "ray_target",
    default=None,
    metavar="auto|local|ADDRESS",
    help="With --engine: run on a Ray cluster (pip install 'uda-trt[ray]'): local starts one on this machine, auto "
    "joins the one this machine belongs to (ray start, RAY_ADDRESS), or give its address (host:port, "
    "ray://host:port). Same metrics; every node must see --cityscapes, --engine and --output at the same paths.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    artifact: Path | None,
    pred_dir: Path | None,
    cityscapes_root: Path,
    split: str,
    id_type: str,
    output_dir: Path,
    batch_size: int,
    backend: str,
    save_predictions: bool,
    strict: bool,
    figures: bool,
    workers: int | None,
    shard,
    ray_target: str | None,
    verbose: bool,
) -> None:
    """Score semantic segmentation on Cityscapes-layout data (19 classes, official-evaluator rules).

    Writes OUT/metrics.json, OUT/metrics.md and OUT/evaluate-seg.log (appended on reruns).
    """
    setup_logging(verbose)
    from uda_trt.runtime.allocator import reuse_freed_buffers
    from uda_trt.runtime.evaluate import evaluate_engine, evaluate_predictions

    reuse_freed_buffers()

    if (artifact is None) == (pred_dir is None):
        raise UserError("give exactly one of --engine ARTIFACT or --predictions DIR")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir}: exists and is not a folder (--output)")
    if ray_target is not None and artifact is None:
        raise UserError("--ray: runs --engine artifacts; --predictions are scored in one process, without --ray")
    if shard is not None and ray_target is not None:
        raise UserError("--shard: give it without --ray (separate runs share the job; Ray shares it by itself)")
    if save_predictions and artifact is None:
        log.warning("--save-predictions only applies with --engine; ignored")
    with log_file(output_dir / LOG_NAME) as job_log:
        try:
            if ray_target is not None:
                from uda_trt.runtime.ray_evaluate import evaluate_engine_on_ray

                result = evaluate_engine_on_ray(
                    artifact,
                    cityscapes_root,
                    split,
                    output=output_dir,
                    target=ray_target,
                    batch_size=batch_size,
                    backend=backend,
                    save_predictions=save_predictions,
                    figures=figures,
                )
            elif artifact is not None:
                result = evaluate_engine(
                    artifact,
                    cityscapes_root,
                    split,
                    output=output_dir,
                    batch_size=batch_size,
                    backend=backend,
                    save_predictions=save_predictions,
                    workers=workers,
                    figures=figures,
                    shard=shard,
                )
            else:
                result = evaluate_predictions(
                    pred_dir,
                    cityscapes_root,
                    split,
                    id_type,
                    output=output_dir,
                    strict=strict,
                    workers=workers,
                    figures=figures,
                    shard=shard,
                )
        except OSError as exc:  # writing outputs failed (disk full, permissions): the job failed
            raise click.ClickException(f"{exc.filename or output_dir}: {exc.strerror or exc}") from exc
        scored, skipped = result["images_scored"], result["images_skipped"]
        if scored == 0:
            raise click.ClickException(
                f"no image could be scored ({skipped} skipped); see {output_dir / 'metrics.json'}"
            )
        miou = result["mean_iou"]
        line = (
            f"mIoU {'n/a' if miou is None else f'{100 * miou:.2f}%'} over {scored} image(s), "
            f"{skipped} skipped -> {output_dir / 'metrics.json'}"
        )
        scored_by = f"--engine {artifact}" if artifact is not None else f"--predictions {pred_dir} ({id_type}s)"
        job_log.note(f"evaluate-seg {scored_by} on {cityscapes_root}, split {split}: {line}")
    click.echo(line)


if __name__ == "__main__":
    main()
