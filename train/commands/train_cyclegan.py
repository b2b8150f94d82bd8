"""`train-cyclegan`: train a CycleGAN translating source images (domain A) into the target style (domain B)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE
from uda_trt.train.commands.options import (
    DISTRIBUTED_EPILOG,
    GAN_RESUME_EPILOG,
    gan_output_options,
    gan_run_options,
    run_gan_command,
)
from uda_trt.train.commands.train_segmenter import ARCHITECTURES
from uda_trt.train.joint_settings import JOINT_FINISHED, JOINT_FIXED, SEGMENTER_OPTIMIZERS, refuse_other_mode
from uda_trt.train.launch_env import refuse_under_torchrun
from uda_trt.train.run_folder import CYCLEGAN_FINISHED, CYCLEGAN_FIXED

# CyCADA's weight: its release adds both semantic terms to the generators' loss unweighted (kept torch-free here;
# train.semantic_consistency.DEFAULT_WEIGHT is the same number, and a test holds them equal)
DEFAULT_SEMANTIC_WEIGHT = 1.0

EPILOG = (
    """\b
Writes into --output: latest_net_G_A.pth (source -> target, the file to export), latest_net_G_B.pth,
latest_net_D_A.pth, latest_net_D_B.pth and ITER_net_*.pth every --save-every iterations (bare state_dicts
with the reference implementation's key names), config.json, train.log (timestamped lines) and
samples/iter_NNNNNN.png (real A, fake B, rec A / real B, fake A, rec B). While the run goes on, also
latest_train_state.pt and previous_train_state.pt (for --resume; each save writes one state, about 3x the
size of the four networks); when it finishes they are removed (--keep-train-state keeps them) and
finished.json records the finished run.
"""
    + GAN_RESUME_EPILOG
    + DISTRIBUTED_EPILOG
    + """\b
With --joint-segmenter ARCH a segmenter F_T trains with the translators (docs/joint-training.md): the
generators also minimise CE(F_T(G_A(x_s)), y_s) and CE(F_T(G_A(G_B(x_t))), y_t), F_T learns from the
stylised source images and the labelled target images (every term weight 1). --target-label-fraction F sets
which images are labelled, dataset size fixed: of N = min(source, target train) images, round(F * N) target
and the rest source, chosen by --seed (config.json lists them). F_T is written as latest_segmenter.pt in
train-segmenter's checkpoint format: export-trt and evaluate-seg take it as they take best.pt. A joint run
trains in one process: under torchrun it is refused.
\b
Example (demo-sized):
  train-cyclegan --source data/gta5 --target data/cityscapes --output runs/cyclegan \\
      --ngf 16 --n-blocks 6 --load-width 128 --crop-size 128x64 --iterations 2000
  train-cyclegan --source data/gta5 --target data/cityscapes --output runs/joint \\
      --joint-segmenter unet --target-label-fraction 0.1 --iterations 2000
"""
)


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
@gan_output_options
@click.option(
    "--n-blocks",
    type=click.IntRange(min=0),
    default=9,
    help="Residual blocks in each generator (9 = resnet_9blocks, 6 = resnet_6blocks).",
)
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
@click.option("--seed", type=int, default=0, help="Seed for weights, crops, pairing and the image pools.")
@click.option(
    "--semantic-loss",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="SEGMENTER_CKPT",
    help="Add CyCADA's semantic-consistency loss with this frozen segmenter (a train-segmenter checkpoint, e.g. "
    "best.pt, trained on source labels): W * [CE(seg(G_A(a)), argmax seg(a)) + CE(seg(G_B(b)), argmax seg(b))], "
    "a from the source (A), b from the target (B). The segmenter is never trained; it sees the crops with its "
    "own normalisation and at its working scale (resized by its scale x the domain's native image width / "
    "--load-width). Logged as `sem` (before weighting); config.json records its sha256.",
)
@click.option(
    "--semantic-weight",
    type=click.FloatRange(min=0),
    default=None,
    show_default=False,
    help=f"W above. Default with --semantic-loss: {DEFAULT_SEMANTIC_WEIGHT} (CyCADA's: both terms added "
    "unweighted); 0 only measures `sem`, training as plain CycleGAN.",
)
@click.option(
    "--joint-segmenter",
    type=click.Choice(ARCHITECTURES),
    default=None,
    metavar="ARCH",
    help="Train a segmenter F_T of this architecture jointly with CycleGAN (see below); one of "
    + ", ".join(ARCHITECTURES)
    + ".",
)
@click.option(
    "--target-label-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    show_default=False,
    help="With --joint-segmenter: share of labelled target images in the labelled set, whose size is fixed "
    "(0 = source labels only, 1 = target labels only). Default 0.",
)
@click.option(
    "--segmenter-optimizer",
    type=click.Choice(SEGMENTER_OPTIMIZERS),
    default=None,
    show_default=False,
    help="With --joint-segmenter: F_T's optimizer, as train-segmenter's --optimizer. Default sgd.",
)
@click.option(
    "--segmenter-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    show_default=False,
    help="With --joint-segmenter: F_T's learning rate (poly decay over --iterations). Default 0.01.",
)
@click.option(
    "--segmenter-precise-bn-batches",
    type=click.IntRange(min=0),
    default=None,
    show_default=False,
    help="With --joint-segmenter: batches of F_T's training inputs that re-estimate its BatchNorm statistics, on a "
    "copy, before each save of F_T (as train-segmenter's --precise-bn-batches; 0 = off). Default 8.",
)
@gan_run_options
def main(**options) -> None:
    """Train a CycleGAN with the reference implementation's networks, losses and defaults.

    Domain A is the source (e.g. GTA5), domain B the target (e.g. Cityscapes); G_A maps A to B, G_B maps B to A.
    Images are scaled to --load-width keeping their aspect ratio, randomly cropped to --crop-size and flipped.
    Optionally with CyCADA's semantic consistency (see --semantic-loss).
    """
    _check_semantic_options(options)
    if _joint_options(options):
        refuse_under_torchrun("--joint-segmenter")
        run_gan_command(options, JOINT_FINISHED, JOINT_FIXED, _train_joint, _written_joint)
        return
    run_gan_command(options, CYCLEGAN_FINISHED, CYCLEGAN_FIXED, _train, _written)


JOINT_DEFAULTS = {
    "target_label_fraction": 0.0,
    "segmenter_optimizer": "sgd",
    "segmenter_lr": 0.01,
    "segmenter_precise_bn_batches": 8,
}


def _joint_options(options: dict) -> bool:
    """Whether this is a joint run; fills its defaults (so --resume of a finished run compares the values it will
    use) or, without --joint-segmenter, refuses the joint options and drops them. Refuses resuming a folder
    started in the other mode, before torch."""
    joint = options["joint_segmenter"] is not None
    if options["resume"]:
        refuse_other_mode(options["output"], joint)
    if not joint:
        for key in JOINT_DEFAULTS:
            if options.pop(key) is not None:
                raise UserError(f"--{key.replace('_', '-')} needs --joint-segmenter ARCH")
        options.pop("joint_segmenter")
        return False
    if options["semantic_loss"] is not None or options["semantic_weight"] is not None:
        raise UserError("--semantic-loss and --joint-segmenter do not go together: choose one")
    for key, default in JOINT_DEFAULTS.items():
        if options[key] is None:
            options[key] = default
    return True


def _check_semantic_options(options: dict) -> None:
    """Before torch: --semantic-loss must name a PyTorch checkpoint (a zip archive: torch.save's format since 1.6,
    the only one train-segmenter writes); with it, --semantic-weight defaults to CyCADA's weight here already, so
    that --resume of a finished run compares the weight it will use. Whether the archive holds a segmenter, and a
    --semantic-weight without it, are checked by the trainer once torch is loaded, before any image is read."""
    path = options["semantic_loss"]
    if path is None:
        return
    if not path.is_file():
        raise UserError(f"--semantic-loss {path}: no such segmenter checkpoint file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"--semantic-loss {path}: not a PyTorch checkpoint (a segmenter checkpoint is a zip archive)")
    if options["semantic_weight"] is None:
        options["semantic_weight"] = DEFAULT_SEMANTIC_WEIGHT


def _train(options: dict, **how) -> Path:
    from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan

    return train_cyclegan(CycleGANConfig(**options), **how)


def _train_joint(options: dict, **how) -> Path:
    from uda_trt.train.joint_training import JointConfig, train_joint

    return train_joint(JointConfig(**options), **how)


def _written_joint(output: Path) -> str:
    return (
        f"CycleGAN and its segmenter written to {output} (export {output / 'latest_net_G_A.pth'} and "
        f"{output / 'latest_segmenter.pt'})"
    )


def _written(output: Path) -> str:
    return f"CycleGAN written to {output} (export {output / 'latest_net_G_A.pth'})"
