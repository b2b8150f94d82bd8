"""CycleGAN training, following the reference implementation's losses, update order and defaults.

One iteration (docs/reference/cyclegan.md): forward both cycles; update both generators with the discriminators frozen
(LSGAN + lambda * cycle L1 + lambda * lambda_identity * identity L1); then update both discriminators on real
images and on fakes drawn from a 50-image pool. Adam(2e-4, betas (0.5, 0.999)); the learning rate stays constant,
then decays linearly towards zero over the last `decay_iterations` (the reference's 100 + 100 epochs, in iterations).

Outputs in the output folder: `latest_net_{G_A,G_B,D_A,D_B}.pth` and `{iteration}_net_*.pth` (bare state_dicts,
reference names; G_A maps source A to target B), `config.json`, `train.log` (timestamped, train.trainlog), and
`samples/iter_NNNNNN.png` grids (real A, fake B, rec A / real B, fake A, rec B). While the run goes on, also
`latest_train_state.pt` (everything needed to resume) and `previous_train_state.pt` (the one before it); a finished
run replaces them by `finished.json` (train.run_folder), unless asked to keep them.

With `semantic_loss` (a segmenter checkpoint), the generators also minimise CyCADA's semantic-consistency loss
(train.semantic_consistency), logged as `sem` after the reference losses (unweighted, so --semantic-weight 0 measures
how far plain CycleGAN changes what things are without acting on it); config.json records the segmenter's path and
sha256.

Resume is bit-identical on CPU: the state holds networks, optimizers, schedulers, pools, iteration and RNG states,
and the data order is a pure function of (seed, epoch) (train.resume), so a run killed at any point and resumed
from its last save (redoing the iterations since) ends with the same bytes as an uninterrupted one, given the same
command and thread count.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT
from uda_trt.train.gan_training import (
    GanRun,
    GanSettings,
    GanTrainer,
    gan_loss,
    resolve_common,
    set_requires_grad,
    train_gan,
)

# re-exported: the schedule and seeding CycleGAN trains with, where its callers and tests look for them
from uda_trt.train.gan_training import lr_factor as lr_factor
from uda_trt.train.gan_training import seed_everything as seed_everything
from uda_trt.train.image_data import to_uint8
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator, init_weights
from uda_trt.train.run_folder import CYCLEGAN_FINISHED, CYCLEGAN_FIXED, refuse_rerun
from uda_trt.train.semantic_consistency import (
    DEFAULT_WEIGHT,
    SemanticConsistency,
    native_width,
    open_semantic_source,
    resize_factors,
)
from uda_trt.train.stopping import StopRequest
from uda_trt.train.unpaired_data import unpaired_dataset

log = logging.getLogger(__name__)

NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")  # the reference's order
SEMANTIC_LOSS = "sem"  # logged after the reference's losses, which keep their order
# More generator terms from a caller: this step's images by name -> named loss terms (train.joint_training)
ExtraTerms = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class CycleGANConfig(GanSettings):
    """Everything a CycleGAN run depends on: its data, its networks' shape and losses, plus the settings of every GAN
    run (train.gan_training.GanSettings: widths, crop, schedule, cadence, device). Defaults are the reference's; the
    `None` ones are resolved at start: iterations -> 200 epochs' worth (max(|A|, |B|) / batch_size per epoch),
    decay_iterations -> half of them, threads -> all cores available to this process, semantic_weight -> CyCADA's
    1.0 when there is a semantic_loss segmenter checkpoint (it stays None without one)."""

    source: Path
    target: Path
    n_blocks: int = 9
    load_width: int = 286
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    gan_mode: str = "lsgan"
    target_split: str = "train"
    semantic_loss: Path | None = None
    semantic_weight: float | None = None


@dataclass
class CycleGANModels:
    """The four networks: G_A: A -> B, G_B: B -> A, D_A judges domain B, D_B judges domain A (reference naming)."""

    G_A: nn.Module
    G_B: nn.Module
    D_A: nn.Module
    D_B: nn.Module

    def items(self) -> list[tuple[str, nn.Module]]:
        return [(name, getattr(self, name)) for name in NET_NAMES]


def generator_spec(config: CycleGANConfig) -> dict[str, Any]:
    """How to rebuild a generator of this run (what `train.checkpoints` recognises from the file's keys)."""
    args = {"input_nc": 3, "output_nc": 3, "ngf": config.ngf, "n_blocks": config.n_blocks}
    return {"architecture": "resnet_generator", "args": {**args, "norm": "instance", "use_dropout": False}}


def build_models(config: CycleGANConfig) -> CycleGANModels:
    """Reference networks (ResNet generators, PatchGAN discriminators, instance norm), init N(0, 0.02)."""

    def generator() -> nn.Module:
        return init_weights(ResnetGenerator(3, 3, ngf=config.ngf, n_blocks=config.n_blocks))

    def discriminator() -> nn.Module:
        return init_weights(NLayerDiscriminator(3, ndf=config.ndf, n_layers=config.n_layers_d))

    return CycleGANModels(generator(), generator(), discriminator(), discriminator())


class ImagePool:
    """The reference's history of generated images: until full, pass fakes through and keep them; then, per image,
    with p=0.5 return a stored fake and keep the new one in its place, else return the new one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                slot = random.randint(0, self.size - 1)
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def train_step(
    models: CycleGANModels,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    pools: dict[str, ImagePool],
    real_A: torch.Tensor,
    real_B: torch.Tensor,
    config: CycleGANConfig,
    semantic: SemanticConsistency | None = None,
    extra_terms: ExtraTerms | None = None,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One reference iteration: generators first (discriminators frozen), then discriminators.

    With `semantic`, the generators' loss also has semantic.weight * sem (CyCADA), and `sem` (unweighted) joins the
    losses; at weight 0 it is only measured, without a graph, so the run is the one without it. `extra_terms` gets
    this step's images (real_A, real_B, fake_B, rec_A, fake_A, rec_B) and returns more named terms that the
    generators' loss adds as they are and the losses report after the others (train.joint_training's segmenter terms).
    Returns the losses (reference names, then `sem`) and the images of this step (fake_B, rec_A, fake_A, rec_B).
    """
    m, mode = models, config.gan_mode
    fake_B = m.G_A(real_A)
    rec_A = m.G_B(fake_B)
    fake_A = m.G_B(real_B)
    rec_B = m.G_A(fake_A)

    set_requires_grad([m.D_A, m.D_B], False)
    opt_G.zero_grad(set_to_none=True)
    losses: dict[str, torch.Tensor] = {}
    if config.lambda_identity > 0:
        losses["idt_A"] = nn.functional.l1_loss(m.G_A(real_B), real_B) * config.lambda_B * config.lambda_identity
        losses["idt_B"] = nn.functional.l1_loss(m.G_B(real_A), real_A) * config.lambda_A * config.lambda_identity
    else:
        losses["idt_A"] = losses["idt_B"] = torch.zeros((), device=real_A.device)
    losses["G_A"] = gan_loss(m.D_A(fake_B), True, mode)
    losses["G_B"] = gan_loss(m.D_B(fake_A), True, mode)
    losses["cycle_A"] = nn.functional.l1_loss(rec_A, real_A) * config.lambda_A
    losses["cycle_B"] = nn.functional.l1_loss(rec_B, real_B) * config.lambda_B
    loss_G = sum(losses[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"))
    if semantic is not None:
        with torch.set_grad_enabled(semantic.weight > 0):
            losses[SEMANTIC_LOSS] = semantic(real_A, fake_B, real_B, fake_A)
        if semantic.weight > 0:
            loss_G = loss_G + semantic.weight * losses[SEMANTIC_LOSS]
    extra: dict[str, torch.Tensor] = {}
    if extra_terms is not None:
        images = {"real_A": real_A, "real_B": real_B, "fake_B": fake_B, "rec_A": rec_A, "fake_A": fake_A}
        extra = extra_terms({**images, "rec_B": rec_B})
        for term in extra.values():
            loss_G = loss_G + term
    loss_G.backward()
    opt_G.step()

    set_requires_grad([m.D_A, m.D_B], True)
    opt_D.zero_grad(set_to_none=True)
    for name, net, real, fake in (("D_A", m.D_A, real_B, fake_B), ("D_B", m.D_B, real_A, fake_A)):
        pooled = pools["fake_B" if name == "D_A" else "fake_A"].query(fake)
        loss = 0.5 * (gan_loss(net(real), True, mode) + gan_loss(net(pooled.detach()), False, mode))
        loss.backward()
        losses[name] = loss
    opt_D.step()

    values = {k: float(losses[k].detach()) for k in (*LOSS_NAMES, SEMANTIC_LOSS) if k in losses}
    values.update((k, float(v.detach())) for k, v in extra.items())
    visuals = {"fake_B": fake_B.detach(), "rec_A": rec_A.detach(), "fake_A": fake_A.detach(), "rec_B": rec_B.detach()}
    return values, visuals


def resolve_config(config: CycleGANConfig, dataset_size: int) -> CycleGANConfig:
    """Fill the `None` defaults and check the values, with errors naming the command-line flag."""
    crop_w, crop_h = config.crop_size
    if crop_w % 4 or crop_h % 4:
        raise UserError(f"--crop-size {crop_w}x{crop_h}: width and height must be multiples of 4 (ResNet generator)")
    if config.load_width < crop_w:
        raise UserError(f"--load-width {config.load_width} is smaller than the crop width {crop_w} (--crop-size)")
    if config.n_blocks < 0:
        raise UserError(f"--n-blocks must be >= 0, got {config.n_blocks}")
    if config.gan_mode not in ("lsgan", "vanilla"):
        raise UserError(f"gan_mode {config.gan_mode!r}: expected lsgan or vanilla")
    config = resolve_semantic_weight(config)
    return resolve_common(config, dataset_size)


def resolve_semantic_weight(config: CycleGANConfig) -> CycleGANConfig:
    """semantic_weight: CyCADA's default with a semantic_loss checkpoint; refused without one, or when negative."""
    weight = config.semantic_weight
    if config.semantic_loss is None:
        if weight is not None:
            raise UserError(f"--semantic-weight {weight} needs --semantic-loss SEGMENTER_CKPT")
        return config
    if weight is None:
        return dataclasses.replace(config, semantic_weight=DEFAULT_WEIGHT)
    if not weight >= 0:
        raise UserError(f"--semantic-weight must be at least 0, got {weight}")
    return config


def _sample_grid(real_A: torch.Tensor, real_B: torch.Tensor, visuals: dict[str, torch.Tensor]) -> np.ndarray:
    """Two rows of the batch's first image: real A, fake B, rec A / real B, fake A, rec B."""
    rows = [
        [real_A[0], visuals["fake_B"][0], visuals["rec_A"][0]],
        [real_B[0], visuals["fake_A"][0], visuals["rec_B"][0]],
    ]
    return np.concatenate([np.concatenate([to_uint8(t) for t in row], axis=1) for row in rows], axis=0)


def _step(
    run: GanRun, batch: dict, device: torch.device, semantic: SemanticConsistency | None = None
) -> tuple[dict[str, float], Any]:
    real_A = batch["A"].to(device, non_blocking=True)
    real_B = batch["B"].to(device, non_blocking=True)
    losses, visuals = train_step(run.models, run.opt_G, run.opt_D, run.pools, real_A, real_B, run.config, semantic)
    return losses, lambda: _sample_grid(real_A, real_B, visuals)


CYCLEGAN = GanTrainer(
    title="CycleGAN",
    log=log,
    state_format=TRAIN_STATE_FORMAT,
    finished_format=CYCLEGAN_FINISHED,
    fixed=CYCLEGAN_FIXED,
    build=build_models,
    step=_step,
    loss_names=LOSS_NAMES,
    bar_losses=("G_A", "G_B", "D_A", "D_B"),
    pools=lambda config: {"fake_A": ImagePool(config.pool_size), "fake_B": ImagePool(config.pool_size)},
)


def with_semantic_loss(semantic: SemanticConsistency) -> GanTrainer:
    """The CycleGAN trainer whose step adds the semantic loss and whose log lines end with `sem`."""
    step = functools.partial(_step, semantic=semantic)
    return dataclasses.replace(CYCLEGAN, step=step, loss_names=(*LOSS_NAMES, SEMANTIC_LOSS))


def train_cyclegan(
    config: CycleGANConfig,
    resume: bool = False,
    *,
    keep_train_state: bool = False,
    stop: StopRequest | None = None,
) -> Path:
    """Train a CycleGAN (A = config.source, B = config.target) and return the output folder.

    `resume=True` continues from `latest_train_state.pt` in the output folder (networks, optimizers, schedulers,
    pools, iteration, RNG states; `previous_train_state.pt` when the latest is damaged), returns at once when the
    folder holds a finished run (`finished.json`), or starts the run when the folder holds neither (a job killed
    before its first save). Without it, a folder that already holds a run is refused in one line that names
    --resume: continuing must be asked for, as in the reference code.

    A finished run removes its training states unless `keep_train_state`. When `stop` asks (SIGINT, SIGTERM), the
    run stops after the iteration in progress, saves its state and raises `TrainingStopped`.
    """
    if not resume:
        refuse_rerun(Path(config.output))
    config = resolve_semantic_weight(config)
    source = None if config.semantic_loss is None else open_semantic_source(config.semantic_loss)
    if source is not None and resume:
        source.refuse_changed_file(Path(config.output))
    dataset = unpaired_dataset(
        config.source, config.target, config.load_width, config.crop_size, config.target_split, config.seed
    )
    config = resolve_config(config, len(dataset))
    summary: dict[str, Any] = {
        "generator": generator_spec(config),
        "images": {"A": len(dataset.samples_a), "B": len(dataset.samples_b)},
    }
    trainer = CYCLEGAN
    if source is not None:
        widths = {"A": native_width(dataset.samples_a, "A"), "B": native_width(dataset.samples_b, "B")}
        factors = resize_factors(source.checkpoint["config"]["scale"], widths, config.load_width)
        # built before train_gan seeds the run, so the segmenter's construction draws from no RNG the run uses
        semantic = source.loss(factors, config.semantic_weight, torch.device(config.device))
        summary["semantic_loss"] = source.summary(factors)
        trainer = with_semantic_loss(semantic)
    return train_gan(trainer, config, dataset, summary, resume, keep_train_state, stop)
