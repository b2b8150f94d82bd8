"""`train-pix2pix`: train a pix2pix translator (conditional GAN) on paired images, as the reference code does."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.jobs.cli import SIZE
from uda_trt.train.commands.options import (
    DISTRIBUTED_EPILOG,
    GAN_RESUME_EPILOG,
    gan_output_options,
    gan_run_options,
    run_gan_command,
)
from uda_trt.train.paired_files import find_pairs
from uda_trt.train.run_folder import PIX2PIX_FINISHED, PIX2PIX_FIXED

EPILOG = (
    """\b
Paired data, in one of three layouts:
  --data ROOT            the reference's aligned format: ROOT/train/ (and val/, test/) images, each with A on
                         the left half and B on the right half (--split picks the folder)
  --data ROOT            a Cityscapes root: leftImg8bit/SPLIT/CITY/*_leftImg8bit.png photos (A) with their
                         gtFine/SPLIT/CITY/*_gtFine_color.png colour label maps (B)
  --folder-a DIR --folder-b DIR
                         two folders of images paired by relative path without suffix (A/x.jpg with B/x.png)
An image without its partner, a pair of two sizes or an aligned image of odd width is refused in one line (exit 2);
an unreadable file is skipped (logged, counted in config.json).
\b
Writes into --output: latest_net_G.pth (the generator, the file to export), latest_net_D.pth and
ITER_net_G.pth / ITER_net_D.pth every --save-every iterations: bare state_dicts with the reference
implementation's keys (unet_256: 54,413,955 generator parameters), which the reference code loads with
--model pix2pix --netG unet_256 --norm batch. Also config.json, train.log and samples/iter_NNNNNN.png
(input | output | target). While the run goes on, latest_train_state.pt and previous_train_state.pt (for
--resume); when it finishes they are removed (--keep-train-state keeps them) and finished.json records the run.
"""
    + GAN_RESUME_EPILOG
    + DISTRIBUTED_EPILOG
    + """\b
Examples:
  train-pix2pix --data datasets/facades --direction BtoA --output runs/facades
  train-pix2pix --data data/cityscapes --direction AtoB --output runs/photo2label \\
      --load-size 572x286 --crop-size 512x256
"""
)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 110},
    epilog=EPILOG,
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="An aligned root (SPLIT/ of A|B images) or a Cityscapes root (photo <-> gtFine colour); see below.",
)
@click.option("--folder-a", type=click.Path(path_type=Path), default=None, help="Folder of A images (with --folder-b).")
@click.option(
    "--folder-b", type=click.Path(path_type=Path), default=None, help="Folder of B images, named as their A images."
)
@click.option("--split", default="train", help="Split of --data to train on (aligned: ROOT/SPLIT; Cityscapes: SPLIT).")
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    help="AtoB translates A into B; BtoA translates B into A (e.g. Cityscapes: AtoB photo -> label colours).",
)
@gan_output_options
@click.option(
    "--num-downs",
    type=click.IntRange(min=5),
    default=8,
    help="U-Net downsamplings: 8 = unet_256, 7 = unet_128; crop sides must be multiples of 2**N.",
)
@click.option(
    "--load-size",
    type=SIZE,
    default="286x286",
    help="Both images of a pair are resized to this WIDTHxHEIGHT (aspect not kept) before cropping.",
)
@click.option(
    "--crop-size",
    type=SIZE,
    default="256x256",
    help="One random crop WIDTHxHEIGHT taken from both images of a pair (multiples of 2**--num-downs).",
)
@click.option(
    "--flip/--no-flip",
    default=True,
    help="Flip each pair horizontally with p=0.5 (the reference's --no_flip turns it off).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, help="Pairs per iteration.")
@click.option(
    "--lambda-l1", type=click.FloatRange(min=0), default=100.0, help="Weight of the L1 loss to the target image."
)
@click.option("--seed", type=int, default=0, help="Seed for weights, crops, flips and the data order.")
@gan_run_options
def main(**options) -> None:
    """Train pix2pix with the reference implementation's networks, losses and defaults.

    A U-Net generator (batch norm, dropout) learns to translate each input image into its paired target; a
    70x70 PatchGAN judges (input, output) pairs. Loss: GAN (BCE with logits) + --lambda-l1 x L1. Both images of
    a pair are resized to --load-size, cropped to --crop-size at one random position and flipped together.
    """
    run_gan_command(options, PIX2PIX_FINISHED, PIX2PIX_FIXED, _train, _written)


def _train(options: dict, **how) -> Path:
    # the data is listed and checked before torch is imported: bad pairs are answered in a second
    pairs = find_pairs(options["data"], options["folder_a"], options["folder_b"], options["split"])
    from uda_trt.train.pix2pix import Pix2PixConfig, train_pix2pix

    return train_pix2pix(Pix2PixConfig(**options), pairs=pairs, **how)


def _written(output: Path) -> str:
    return f"pix2pix written to {output} (export {output / 'latest_net_G.pth'})"
