"""pix2pix training (Isola et al. 2017), following the reference implementation's networks, losses, update order
and defaults.

Networks: a U-Net generator (`unet_256`: 8 downsamplings, batch norm, dropout 0.5 in the innermost 512-channel
blocks; 54,413,955 parameters at ngf 64) and the basic PatchGAN discriminator (3 layers, batch norm) judging
concat(input, output), 6 channels. One iteration: G translates the input; D is updated on (input, target) as real
and (input, G(input)) as fake, 0.5 * (BCE-with-logits real + fake); then G with D frozen on BCE(D(input, G(input)),
real) + 100 * L1(G(input), target). Adam(2e-4, betas (0.5, 0.999)), constant then linear decay; the networks train
in train mode throughout (batch statistics, dropout on), as the reference does.

Outputs (train.gan_training): `latest_net_G.pth`, `latest_net_D.pth` and `{iteration}_net_{G,D}.pth`, bare
state_dicts with the reference keys, which the reference code loads with `--model pix2pix --netG unet_256
--norm batch`; `config.json`, `train.log`, `samples/iter_NNNNNN.png` (input | output | target); the training states
while the run goes on, `finished.json` once it is done. Resume and kill safety are those of train-cyclegan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import PIX2PIX_TRAIN_STATE_FORMAT
from uda_trt.train.gan_training import (
    GanRun,
    GanSettings,
    GanTrainer,
    gan_loss,
    resolve_common,
    set_requires_grad,
    train_gan,
)
from uda_trt.train.image_data import to_uint8
from uda_trt.train.networks import NLayerDiscriminator, UnetGenerator, init_weights
from uda_trt.train.paired_data import DIRECTIONS, PairedImages
from uda_trt.train.paired_files import PairListing, find_pairs
from uda_trt.train.run_folder import PIX2PIX_FINISHED, PIX2PIX_FIXED, refuse_rerun
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")  # the reference's order
MIN_DOWNS = 5  # the U-Net's outer four levels plus its innermost one


@dataclass(frozen=True)
class Pix2PixConfig(GanSettings):
    """Everything a pix2pix run depends on: its data, its generator's depth, how pairs are prepared and the L1
    weight, plus the settings of every GAN run (train.gan_training.GanSettings: widths, crop, schedule, cadence,
    device). Defaults are the reference's. The data is `data` (an aligned or a Cityscapes root) or the two folders
    `folder_a` and `folder_b`."""

    data: Path | None = None
    folder_a: Path | None = None
    folder_b: Path | None = None
    split: str = "train"
    direction: str = "AtoB"
    num_downs: int = 8
    load_size: tuple[int, int] = (286, 286)
    flip: bool = True
    lambda_l1: float = 100.0


@dataclass
class Pix2PixModels:
    """The generator G (input -> output) and the discriminator D (judges concat(input, output))."""

    G: nn.Module
    D: nn.Module

    def items(self) -> list[tuple[str, nn.Module]]:
        return [("G", self.G), ("D", self.D)]


def generator_spec(config: Pix2PixConfig) -> dict[str, Any]:
    """How to rebuild the generator of this run (what `train.checkpoints` recognises from the file's keys)."""
    args = {"input_nc": 3, "output_nc": 3, "num_downs": config.num_downs, "ngf": config.ngf}
    return {"architecture": "unet_generator", "args": {**args, "norm": "batch", "use_dropout": True}}


def build_models(config: Pix2PixConfig, init: bool = True) -> Pix2PixModels:
    """The reference pix2pix networks (U-Net with dropout, 6-channel PatchGAN, batch norm), init N(0, 0.02) unless
    `init` is False (shapes only, e.g. on the meta device, where the first init op costs seconds of imports)."""
    generator = UnetGenerator(3, 3, num_downs=config.num_downs, ngf=config.ngf, norm="batch", use_dropout=True)
    discriminator = NLayerDiscriminator(6, ndf=config.ndf, n_layers=config.n_layers_d, norm="batch")
    if init:
        generator, discriminator = init_weights(generator), init_weights(discriminator)
    return Pix2PixModels(generator, discriminator)


def train_step(
    models: Pix2PixModels,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    real_A: torch.Tensor,
    real_B: torch.Tensor,
    lambda_l1: float,
) -> tuple[dict[str, float], torch.Tensor]:
    """One reference iteration: the discriminator first, then the generator with the discriminator frozen.

    Returns the losses (reference names) and the generator's output fake_B."""
    G, D = models.G, models.D
    fake_B = G(real_A)

    set_requires_grad([D], True)
    opt_D.zero_grad(set_to_none=True)
    losses = {
        "D_fake": gan_loss(D(torch.cat((real_A, fake_B), 1).detach()), False, "vanilla"),
        "D_real": gan_loss(D(torch.cat((real_A, real_B), 1)), True, "vanilla"),
    }
    (0.5 * (losses["D_fake"] + losses["D_real"])).backward()
    opt_D.step()

    set_requires_grad([D], False)
    opt_G.zero_grad(set_to_none=True)
    losses["G_GAN"] = gan_loss(D(torch.cat((real_A, fake_B), 1)), True, "vanilla")
    losses["G_L1"] = nn.functional.l1_loss(fake_B, real_B) * lambda_l1
    (losses["G_GAN"] + losses["G_L1"]).backward()
    opt_G.step()
    return {k: float(losses[k].detach()) for k in LOSS_NAMES}, fake_B.detach()


def resolve_config(config: Pix2PixConfig, dataset_size: int) -> Pix2PixConfig:
    """Fill the `None` defaults and check the values, with errors naming the command-line flag."""
    if config.num_downs < MIN_DOWNS:
        raise UserError(f"--num-downs must be at least {MIN_DOWNS}, got {config.num_downs}")
    divisor = 2**config.num_downs
    crop_w, crop_h = config.crop_size
    if crop_w % divisor or crop_h % divisor:
        raise UserError(
            f"--crop-size {crop_w}x{crop_h}: width and height must be multiples of {divisor} (the U-Net halves them "
            f"--num-downs {config.num_downs} times)"
        )
    load_w, load_h = config.load_size
    if load_w < crop_w or load_h < crop_h:
        raise UserError(f"--load-size {load_w}x{load_h} is smaller than --crop-size {crop_w}x{crop_h}")
    if config.direction not in DIRECTIONS:
        raise UserError(f"--direction {config.direction}: expected AtoB or BtoA")
    return resolve_common(config, dataset_size)


def _step(run: GanRun, batch: dict, device: torch.device) -> tuple[dict[str, float], Any]:
    real_A = batch["input"].to(device, non_blocking=True)
    real_B = batch["target"].to(device, non_blocking=True)
    losses, fake_B = train_step(run.models, run.opt_G, run.opt_D, real_A, real_B, run.config.lambda_l1)
    return losses, lambda: _sample_grid(real_A, fake_B, real_B)


def _sample_grid(real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor) -> np.ndarray:
    """The batch's first pair in one row: input, output, target."""
    return np.concatenate([to_uint8(t[0]) for t in (real_A, fake_B, real_B)], axis=1)


PIX2PIX = GanTrainer(
    title="pix2pix",
    log=log,
    state_format=PIX2PIX_TRAIN_STATE_FORMAT,
    finished_format=PIX2PIX_FINISHED,
    fixed=PIX2PIX_FIXED,
    build=build_models,
    step=_step,
    loss_names=LOSS_NAMES,
)


def train_pix2pix(
    config: Pix2PixConfig,
    resume: bool = False,
    *,
    keep_train_state: bool = False,
    stop: StopRequest | None = None,
    pairs: PairListing | None = None,
) -> Path:
    """Train pix2pix on the pairs of config.data (or config.folder_a + config.folder_b) and return the output folder.

    `pairs`: the checked listing of that data when the caller has made it already (train-pix2pix does, before it
    imports torch). Resume, finished runs, kept training states and stop requests work as in train-cyclegan
    (`train.gan_training.train_gan`). Without `resume`, a folder that already holds a run is refused naming --resume.
    """
    if not resume:
        refuse_rerun(Path(config.output))
    if pairs is None:
        pairs = find_pairs(config.data, config.folder_a, config.folder_b, config.split)
    dataset = PairedImages(
        pairs.pairs, pairs.aligned, config.load_size, config.crop_size, config.direction, config.flip, config.seed
    )
    config = resolve_config(config, len(dataset))
    summary = {
        "generator": generator_spec(config),
        "images": {"layout": pairs.layout, "pairs": len(pairs.pairs), "skipped_unreadable": pairs.skipped},
    }
    return train_gan(PIX2PIX, config, dataset, summary, resume, keep_train_state, stop)
