"""`train-cyclegan`: train a CycleGAN translating source images (domain A) into the target style (domain B)."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.jobs.cli import SIZE, setup_logging
from uda_trt.train.commands.options import (
    exit_stopped,
    finished_already,
    keep_train_state_option,
    resolve_workers,
    workers_options,
)
from uda_trt.train.run_folder import CYCLEGAN_FINISHED, CYCLEGAN_FIXED
from uda_trt.train.stopping import StopRequest, TrainingStopped

EPILOG = """\b
Writes into --output: latest_net_G_A.pth (source -> target, the file to export), latest_net_G_B.pth,
latest_net_D_A.pth, latest_net_D_B.pth and ITER_net_*.pth every --save-every iterations (bare state_dicts
with the reference implementation's key names), config.json, train.log (timestamped lines) and
samples/iter_NNNNNN.png (real A, fake B, rec A / real B, fake A, rec B). While the run goes on, also
latest_train_state.pt and previous_train_state.pt (for --resume; each save writes one state, about 3x the
size of the four networks); when it finishes they are removed (--keep-train-state keeps them) and
finished.json records the finished run.
\b
Ctrl-C or SIGTERM (what schedulers send before preempting a job) finishes the iteration in progress, saves the
training state, prints the command that continues the run and exits 130 / 143; a second signal stops at once
without saving. A killed or interrupted run is continued by the same command plus --resume: it restarts from the
last saved state (every --save-every iterations, or the one saved on the signal), redoes the iterations since,
and on the CPU ends with the same bytes as an uninterrupted run. A damaged latest state falls back to the previous
one (one warning line). --resume of a finished run returns at once. Without --resume an --output that holds a run
is refused, so a run is never overwritten by accident.
\b
Example (demo-sized):
  train-cyclegan --source data/gta5 --target data/cityscapes --output runs/cyclegan \\
      --ngf 16 --n-blocks 6 --load-width 128 --crop-size 128x64 --iterations 2000
"""


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 110},
    epilog=EPILOG,
)
@click.option(
    "--source",
    required=True,
    type=click.Path(path_type=Path),
    help="Domain A: a GTA5-layout root (images/, labels/) or any image folder.",
)
@click.option(
    "--target",
    required=True,
    type=click.Path(path_type=Path),
    help="Domain B: a Cityscapes-layout root (its train split) or any image folder.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for checkpoints, samples, config.json and train.log.",
)
@click.option("--ngf", type=click.IntRange(min=1), default=64, help="Generator width (filters of the first conv).")
@click.option(
    "--n-blocks",
    type=click.IntRange(min=0),
    default=9,
    help="Residual blocks in each generator (9 = resnet_9blocks, 6 = resnet_6blocks).",
)
@click.option("--ndf", type=click.IntRange(min=1), default=64, help="Discriminator width.")
@click.option(
    "--load-width",
    type=click.IntRange(min=1),
    default=286,
    help="Images are scaled to this width, keeping their aspect ratio, before cropping.",
)
@click.option(
    "--crop-size", type=SIZE, default="256x256", help="Random crop WIDTHxHEIGHT taken after scaling (multiples of 4)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, help="Images per domain per iteration.")
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Total iterations. Default: 200 epochs' worth, as the reference (100 constant + 100 decay).",
)
@click.option(
    "--decay-iterations",
    type=click.IntRange(min=0),
    default=None,
    help="Decay the learning rate linearly to zero over the last N iterations. Default: half of them.",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, help="Adam learning rate.")
@click.option("--seed", type=int, default=0, help="Seed for weights, crops, pairing and the image pools.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output from its training state (start it if there is none yet).",
)
@click.option("--sample-every", type=click.IntRange(min=1), default=400, help="Write a sample grid every N iterations.")
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    default=5000,
    help="Write ITER_net_*.pth, latest_net_*.pth and the training state every N iterations (and at the end).",
)
@click.option(
    "--log-every", type=click.IntRange(min=1), default=100, help="Log the losses (train.log, stderr) every N."
)
@workers_options
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch intra-op threads (CPU math in the training process). Default: the cores this process may use.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    help="Where to train; auto uses a CUDA GPU when there is one.",
)
@keep_train_state_option
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(**options) -> None:
    """Train a CycleGAN with the reference implementation's networks, losses and defaults.

    Domain A is the source (e.g. GTA5), domain B the target (e.g. Cityscapes); G_A maps A to B. Images are
    scaled to --load-width keeping their aspect ratio, randomly cropped to --crop-size and flipped.
    """
    setup_logging(options.pop("verbose"))
    resume, keep_train_state = options.pop("resume"), options.pop("keep_train_state")
    resolve_workers(options)
    output = options["output"]
    if finished_already(output, resume, CYCLEGAN_FINISHED, options, CYCLEGAN_FIXED):
        click.echo(f"CycleGAN written to {output} (export {output / 'latest_net_G_A.pth'})")
        return
    if options["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            from uda_trt.runtime.errors import UserError

            raise UserError("--device cuda: no CUDA GPU is available to PyTorch on this machine")
    from uda_trt.train.cyclegan import CycleGANConfig, TrainingFailed, train_cyclegan

    config = CycleGANConfig(**options)
    try:
        with StopRequest() as stop:
            output = train_cyclegan(config, resume=resume, keep_train_state=keep_train_state, stop=stop)
    except TrainingFailed as exc:
        raise click.ClickException(str(exc)) from None
    except TrainingStopped as stopped:
        exit_stopped(stopped)
    click.echo(f"CycleGAN written to {output} (export {output / 'latest_net_G_A.pth'})")
