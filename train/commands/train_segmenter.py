"""`train-segmenter`: train a semantic segmenter on GTA5- or Cityscapes-layout data (see train.segmenter).

Every option's value is checked by click (types and ranges) and the dataset by `check_dataset` before torch is
imported, so --help and a mistyped value answer at once, in click's one-line style (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.datasets import detect_layout, samples_for
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE, setup_logging
from uda_trt.train.commands.options import (
    DISTRIBUTED_EPILOG,
    distributed_session,
    exit_stopped,
    finished_already,
    keep_train_state_option,
    resolve_workers,
    threads_option,
    workers_options,
)
from uda_trt.train.launch_env import launch_env, quiet_other_ranks
from uda_trt.train.run_folder import SEGMENTER_FINISHED, SEGMENTER_FIXED
from uda_trt.train.stopping import StopRequest, TrainingStopped

# train.segmenters.SEGMENTER_ARCHITECTURES, repeated so that --help answers before torch is imported (a test checks).
ARCHITECTURES = (
    "lraspp_mobilenet_v3_large",
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "unet",
    "deeplabv3plus_resnet50",
    "deeplabv3plus_mobilenet",
)
POSITIVE = click.FloatRange(min=0, min_open=True)

EPILOG = """\b
Examples:
  train-segmenter --data data/gta5 --output runs/seg-source            (real data, torchvision-style defaults)
  train-segmenter --data data/gta5 --arch deeplabv3_resnet50 --pretrained-backbone --output runs/seg
  train-segmenter --data data/gta5 --arch deeplabv3plus_resnet50 --pretrained-backbone --output runs/seg-dlv3p
  train-segmenter --data data/cityscapes --arch unet --output runs/seg-unet
  train-segmenter --data demo/gta5 --scale 1 --crop-size full --batch-size 16 --iterations 400 \\
                  --optimizer adamw --lr 1e-2 --workers 0 --output runs/demo-seg   (from scratch, CPU budget)

\b
Writes in --output: best.pt (best on the held-out part), last.pt, config.json, history.json, train.log (timestamped
lines), samples/. best.pt and last.pt feed `export-trt`. While the run goes on, also latest_train_state.pt and
previous_train_state.pt (for --resume), saved every --save-every iterations and after every held-out score (so a
kill never loses a score): each save writes one state, about 2x the model's weights with sgd and 3x with adamw
(~320 MB for deeplabv3_resnet50 with sgd), and each held-out score that improves also writes best.pt. When the run
finishes the states are removed (--keep-train-state keeps them) and finished.json records the finished run.
\b
Ctrl-C or SIGTERM (what schedulers send before preempting a job) finishes the iteration in progress, saves the
training state, prints the command that continues the run and exits 130 / 143; a second signal stops at once
without saving. A killed or interrupted run is continued by the same command plus --resume: it restarts from the
last saved state, redoes the iterations since, and on the CPU writes the same best.pt and last.pt bytes as an
uninterrupted run. A damaged latest state falls back to the previous one (one warning line). --resume of a
finished run returns at once. Without --resume an --output that holds a run is refused.
"""
EPILOG += DISTRIBUTED_EPILOG


class CropSize(click.ParamType):
    """WIDTHxHEIGHT, or "full" for whole images (no crop)."""

    name = "WIDTHxHEIGHT|full"

    def convert(self, value, param, ctx) -> tuple[int, int] | None:
        if value is None or (isinstance(value, str) and value.lower() == "full"):
            return None
        return SIZE.convert(value, param, ctx)


def check_dataset(root: Path, layout: str, split: str) -> None:
    """Refuse a missing folder or a dataset without labels before paying for the torch import (UserError)."""
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (expected a GTA5 or Cityscapes layout dataset)")
    detected = detect_layout(root) if layout == "auto" else layout
    if detected not in ("gta5", "cityscapes"):
        raise UserError(f"{root}: not a GTA5 (images/, labels/) or Cityscapes (leftImg8bit/, gtFine/) dataset")
    samples_for(root, detected, split, require_labels=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EPILOG)
@click.option(
    "--data",
    "data_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset root: GTA5 layout (images/, labels/) or Cityscapes layout (leftImg8bit/, gtFine/).",
)
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for checkpoints, logs and the training state.",
)
@click.option(
    "--layout",
    type=click.Choice(["auto", "gta5", "cityscapes"]),
    default="auto",
    show_default=True,
    help="Dataset layout; auto detects it from the folders present.",
)
@click.option("--split", default="train", show_default=True, help="Cityscapes split to train on.")
@click.option(
    "--arch",
    "architecture",
    type=click.Choice(ARCHITECTURES),
    default=ARCHITECTURES[0],
    show_default=True,
    help="Segmentation model (19 Cityscapes classes): torchvision's LR-ASPP and DeepLabV3; unet, the studies' "
    "U-Net (64-1024 channels, transposed-conv decoder, from scratch only); deeplabv3plus_*, DeepLabV3+ (ASPP at "
    "output stride 16, decoder over stride-4 features) on a ResNet-50 or MobileNetV3-Large backbone. All take any "
    "image size.",
)
@click.option(
    "--scale",
    type=POSITIVE,
    default=0.5,
    show_default=True,
    help="Working scale: images are resized by it for training; export uses it at inference.",
)
@click.option(
    "--crop-size",
    type=CropSize(),
    default="512x512",
    show_default=True,
    help="Random crop at the working scale (padded with ignore where the image is smaller); 'full' = no crop.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Training images per iteration."
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=20000,
    show_default=True,
    help="Training budget in iterations (batches).",
)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adamw"]),
    default="sgd",
    show_default=True,
    help="sgd: momentum 0.9, as the torchvision references; adamw learns faster from scratch on a small budget.",
)
@click.option("--lr", type=POSITIVE, default=0.01, show_default=True, help="Peak learning rate (poly decay to 0).")
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Weight decay: an L2 penalty with sgd, decoupled decay with adamw (0 = none).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of the TRAINING data held out to pick best.pt (never the evaluation set; 0 = none, best = last).",
)
@click.option(
    "--val-every",
    type=click.IntRange(min=1),
    default=None,
    help="Iterations between held-out scores [default: iterations/10].",
)
@click.option(
    "--precise-bn-batches",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Training batches that re-estimate BatchNorm statistics before each held-out score and save (0 = off).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds the held-out split, crops, flips and weights."
)
@workers_options
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Write the training state every N iterations (it is also written after every held-out score).",
)
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Log one batch's loss (train.log, stderr) every N iterations.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output from its training state (start it if there is none yet).",
)
@keep_train_state_option
@click.option(
    "--pretrained-backbone",
    is_flag=True,
    help="Start from torchvision's ImageNet backbone (downloads it once; needs a network). Not for unet.",
)
@threads_option
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: CUDA when PyTorch sees a GPU.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool, **options) -> None:
    """Train a semantic segmenter (LR-ASPP, DeepLabV3, U-Net or DeepLabV3+; from scratch by default) on labelled data.

    Cross-entropy over the 19 Cityscapes classes (other labels ignored), poly learning rate, and the checkpoint
    that scores best (mIoU) on a held-out part of the training data is kept as best.pt.
    """
    setup_logging(verbose)
    quiet_other_ranks(verbose)
    resolve_workers(options)
    resume, keep_train_state = options.pop("resume"), options.pop("keep_train_state")
    check_dataset(options["data_root"], options["layout"], options["split"])
    output = options["output_dir"]
    if finished_already(output, resume, SEGMENTER_FINISHED, options, SEGMENTER_FIXED):
        if launch_env().main:
            click.echo(str(output / "best.pt"))
        return
    # torch is imported here, after the cheap checks, so --help, user errors and finished runs answer at once.
    from uda_trt.train.segmenter import SegmenterConfig, TrainingDiverged, train_segmenter

    config = SegmenterConfig(**options)
    try:
        with StopRequest() as stop, distributed_session(config.device):
            best = train_segmenter(config, resume=resume, keep_train_state=keep_train_state, stop=stop)
    except TrainingDiverged as error:
        raise click.ClickException(str(error)) from error
    except TrainingStopped as stopped:
        exit_stopped(stopped)
    if launch_env().main:
        click.echo(str(best))
