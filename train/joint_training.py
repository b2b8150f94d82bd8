"""CycleGAN trained jointly with a target-domain segmenter F_T (train-cyclegan --joint-segmenter ARCH
--target-label-fraction F), as in the study this follows (A = source S, B = target T, G_A = G_S->T, G_B = G_T->S):

    generators, besides the reference CycleGAN losses:
        segG_src = CE(F_T(G_A(x_s)), y_s)            labelled source images of the batch
        segG_tgt = CE(F_T(G_A(G_B(x_t))), y_t)       labelled target images of the batch
    F_T, with its own optimizer:
        segF_src = CE(F_T(G_A(x_s)), y_s)            the same stylised images, detached: F_T learns, G does not
        segF_tgt = CE(F_T(x_t), y_t)

Every term has weight 1, as the study's total loss sums them unweighted; each CE is the mean over the labelled
pixels of its images (train ID 255 ignored). Which images are labelled is train.joint_data's mix: at fraction 0 no
target image is, so the target terms are never computed (not computed as zero: F_T never sees those images, and no
BatchNorm statistic moves); at fraction 1 the source terms are absent the same way. A term with no labelled image in
the batch logs 0.

One iteration: the reference generator update with the two segG terms added (F_T frozen: its weights get no
gradient, and its BatchNorm running statistics do not move), the reference discriminator update, then one F_T update
on both segF terms from a single forward pass over the batch's labelled images (stylised source and real target
together, so its BatchNorm sees the mix). F_T sees CycleGAN's crops as train-segmenter feeds a segmenter: RGB / 255
normalised with NORMALIZATION; its checkpoint records scale = --load-width / the target's native width, so
export-trt and evaluate-seg run it on full-size target images at the size it learnt.

Outputs: CycleGAN's (latest_net_{G_A,G_B,D_A,D_B}.pth, numbered copies, config.json with the labelled mix, train.log,
samples/), plus `latest_segmenter.pt` (and `{iteration}_segmenter.pt` with the numbered networks) in train-segmenter's
checkpoint format. The training state (its own format) adds F_T, its optimizer and its poly schedule, so resume is
bit-identical on the CPU as for plain CycleGAN.

Precise BN (--segmenter-precise-bn-batches N, default 8 as train-segmenter's --precise-bn-batches; 0: off): F_T's
default architecture keeps BatchNorm momentum 0.01, so after a short run its running statistics still mostly hold
their initial values and eval-mode predictions (what export-trt and evaluate-seg run) collapse. Before every save,
a deep copy of F_T gets its statistics re-estimated as plain averages over N batches (train.segmenter's
recalibrate_batchnorm) and that copy is written; the live F_T, every optimizer and every RNG stream are untouched, so
training goes on as without it. A batch holds what F_T learns from, 2 x --batch-size images (the most one step feeds
it, and at least the 2 that ASPP image pooling needs): crops of labelled images drawn uniformly from the labelled mix
(train.joint_data.labelled_crops), the source ones stylised by the current G_A as segF_src sees them, then
normalised as segmenter_input does. G_A runs under no_grad in its training mode; its instance norm keeps no
statistics and it has no dropout, so nothing of it changes. The draws come from their own RNG, seeded by (seed,
iteration), so a resumed run writes the bytes of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.labels import CLASS_NAMES, IGNORE, NUM_CLASSES
from uda_trt.train import cyclegan
from uda_trt.train.checkpoints import save_segmenter_checkpoint
from uda_trt.train.cyclegan import NET_NAMES, CycleGANConfig, generator_spec, resolve_config
from uda_trt.train.gan_training import GanRun, GanTrainer, set_requires_grad, train_gan
from uda_trt.train.joint_data import JointImages, joint_dataset, labelled_crops
from uda_trt.train.joint_settings import JOINT_FINISHED, JOINT_FIXED, JOINT_TRAIN_STATE_FORMAT, SEGMENTER_OPTIMIZERS
from uda_trt.train.launch_env import refuse_under_torchrun
from uda_trt.train.resume import derived_seed
from uda_trt.train.run_folder import refuse_rerun
from uda_trt.train.segmenter import poly_schedule, recalibrate_batchnorm
from uda_trt.train.segmenters import IMAGE_POOLING_ARCHITECTURES, NORMALIZATION, SEGMENTER_ARCHITECTURES
from uda_trt.train.segmenters import build_segmenter as build_segmenter_model
from uda_trt.train.semantic_consistency import native_width
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

GENERATOR_TERMS = ("segG_src", "segG_tgt")
SEGMENTER_TERMS = ("segF_src", "segF_tgt")
JOINT_LOSS_NAMES = (*cyclegan.LOSS_NAMES, *GENERATOR_TERMS, *SEGMENTER_TERMS)
SEGMENTER_FILE = "latest_segmenter.pt"


@dataclass(frozen=True)
class JointConfig(CycleGANConfig):
    """A CycleGAN run (CycleGANConfig, without --semantic-loss) plus its segmenter F_T: architecture, the share of
    labelled target images, and F_T's optimizer (its learning rate follows train-segmenter's poly schedule over the
    run's iterations), and how many batches re-estimate its BatchNorm statistics before each save (module
    docstring; 0: off). Defaults are train-segmenter's."""

    joint_segmenter: str = "lraspp_mobilenet_v3_large"
    target_label_fraction: float = 0.0
    segmenter_optimizer: str = "sgd"
    segmenter_lr: float = 0.01
    segmenter_weight_decay: float = 1e-4
    segmenter_poly_power: float = 0.9
    segmenter_precise_bn_batches: int = 8

    def check(self) -> None:
        """Refuse an impossible joint setting in one line naming its flag."""
        if self.semantic_loss is not None or self.semantic_weight is not None:
            raise UserError("--semantic-loss and --joint-segmenter do not go together: choose one")
        if self.joint_segmenter not in SEGMENTER_ARCHITECTURES:
            raise UserError(
                f"--joint-segmenter {self.joint_segmenter!r}: must be one of {', '.join(SEGMENTER_ARCHITECTURES)}"
            )
        if not 0.0 <= self.target_label_fraction <= 1.0:
            raise UserError(f"--target-label-fraction {self.target_label_fraction}: must be between 0 and 1")
        if self.segmenter_optimizer not in SEGMENTER_OPTIMIZERS:
            raise UserError(f"--segmenter-optimizer {self.segmenter_optimizer!r}: must be sgd or adamw")
        if not self.segmenter_lr > 0:
            raise UserError(f"--segmenter-lr {self.segmenter_lr}: must be positive")
        if self.segmenter_precise_bn_batches < 0:
            raise UserError(
                f"--segmenter-precise-bn-batches {self.segmenter_precise_bn_batches}: must be zero or positive"
            )


@dataclass
class JointModels:
    """CycleGAN's four networks and the segmenter F_T (state, parameter counts and files in this order)."""

    G_A: nn.Module
    G_B: nn.Module
    D_A: nn.Module
    D_B: nn.Module
    F_T: nn.Module

    def items(self) -> list[tuple[str, nn.Module]]:
        return [(name, getattr(self, name)) for name in (*NET_NAMES, "F_T")]


def build_models(config: JointConfig) -> JointModels:
    """CycleGAN's networks (initialised as the reference does), then F_T as train-segmenter builds it."""
    gan = cyclegan.build_models(config)
    segmenter = build_segmenter_model(config.joint_segmenter, NUM_CLASSES).train()
    return JointModels(gan.G_A, gan.G_B, gan.D_A, gan.D_B, segmenter)


def segmenter_optimizer(config: JointConfig, models: JointModels) -> dict[str, tuple[Any, Any]]:
    """F_T's optimizer (SGD with momentum 0.9, or AdamW, as train-segmenter's) and its poly schedule."""
    params = list(models.F_T.parameters())
    if config.segmenter_optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.segmenter_lr, momentum=0.9, weight_decay=config.segmenter_weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=config.segmenter_lr, weight_decay=config.segmenter_weight_decay)
    return {"F": (opt, poly_schedule(opt, config.iterations, config.segmenter_poly_power))}


_MEAN = torch.tensor(NORMALIZATION["mean"]).view(1, 3, 1, 1)
_STD = torch.tensor(NORMALIZATION["std"]).view(1, 3, 1, 1)


def segmenter_input(images: torch.Tensor) -> torch.Tensor:
    """CycleGAN tensors in [-1, 1] -> what train-segmenter feeds a segmenter: RGB / 255 with NORMALIZATION."""
    return ((images + 1.0) * 0.5 - _MEAN.to(images.device)) / _STD.to(images.device)


@contextlib.contextmanager
def statistics_frozen(model: nn.Module) -> Iterator[None]:
    """BatchNorm in train mode (batch statistics) whose running statistics do not move: momentum 0 meanwhile."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum


def _labelled_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled pixels (0 when there are none, rather than NaN)."""
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    return total / (labels != IGNORE).sum().clamp(min=1)


def segmentation_terms(
    segmenter: nn.Module,
    source: torch.Tensor,
    source_labels: torch.Tensor,
    source_labelled: torch.Tensor,
    target: torch.Tensor,
    target_labels: torch.Tensor,
    target_labelled: torch.Tensor,
    names: tuple[str, str],
    pooling: bool = False,
) -> dict[str, torch.Tensor]:
    """{names[0]: CE(F_T(source), y) over the labelled source images, names[1]: the same for target}, from one
    forward pass over just those images; a domain without a labelled image has no term. Empty when no image is
    labelled, or (`pooling`: ASPP image pooling, whose BatchNorm needs two) only one is."""
    parts = [
        (name, images[labelled], labels[labelled])
        for name, images, labels, labelled in (
            (names[0], source, source_labels, source_labelled),
            (names[1], target, target_labels, target_labelled),
        )
        if bool(labelled.any())
    ]
    count = sum(images.shape[0] for _, images, _ in parts)
    if count == 0 or (pooling and count < 2):
        return {}
    logits = segmenter(segmenter_input(torch.cat([images for _, images, _ in parts])))["out"]
    terms, start = {}, 0
    for name, images, labels in parts:
        terms[name] = _labelled_ce(logits[start : start + images.shape[0]], labels)
        start += images.shape[0]
    return terms


def joint_step(run: GanRun, batch: dict, device: torch.device) -> tuple[dict[str, float], Any]:
    """One iteration (module docstring): CycleGAN's with the segG terms, then F_T's update on the segF terms."""
    real_A, real_B = batch["A"].to(device), batch["B"].to(device)
    y_A, y_B = batch["A_label"].to(device), batch["B_label"].to(device)
    la, lb = batch["A_labelled"].to(device), batch["B_labelled"].to(device)
    segmenter, config = run.models.F_T, run.config
    pooling = config.joint_segmenter in IMAGE_POOLING_ARCHITECTURES

    def generator_terms(images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        set_requires_grad([segmenter], False)
        with statistics_frozen(segmenter):
            return segmentation_terms(
                segmenter, images["fake_B"], y_A, la, images["rec_B"], y_B, lb, GENERATOR_TERMS, pooling
            )

    losses, visuals = cyclegan.train_step(
        run.models, run.opt_G, run.opt_D, run.pools, real_A, real_B, config, None, generator_terms
    )
    set_requires_grad([segmenter], True)
    opt_F = run.extra["F"][0]
    opt_F.zero_grad(set_to_none=True)
    terms = segmentation_terms(segmenter, visuals["fake_B"], y_A, la, real_B, y_B, lb, SEGMENTER_TERMS, pooling)
    if terms:
        sum(terms.values()).backward()
        opt_F.step()
    values = {name: losses.get(name, 0.0) for name in (*cyclegan.LOSS_NAMES, *GENERATOR_TERMS)}
    values.update({name: float(terms[name].detach()) if name in terms else 0.0 for name in SEGMENTER_TERMS})
    return values, lambda: cyclegan._sample_grid(real_A, real_B, visuals)


def segmenter_checkpoint_config(config: JointConfig, scale: float, iteration: int) -> dict[str, Any]:
    """What F_T's checkpoint records: train-segmenter's keys (architecture, scale, normalisation, classes), and the
    joint run it came from."""
    return {
        "architecture": config.joint_segmenter,
        "num_classes": NUM_CLASSES,
        "scale": scale,
        "normalization": NORMALIZATION,
        "class_names": list(CLASS_NAMES),
        "iteration": iteration,
        "training": {"joint_cyclegan": config.to_plain()},
    }


def precise_bn_batches(run: GanRun, dataset: JointImages, device: torch.device) -> Iterator[tuple[torch.Tensor]]:
    """Endless batches of F_T's inputs for precise BN (module docstring), drawn from an RNG of (seed, iteration)."""
    rng = random.Random(derived_seed(run.config.seed, "precise-bn", run.iteration))
    while True:
        crops = labelled_crops(dataset, 2 * run.config.batch_size, rng)
        parts = []
        if crops["A"]:
            parts.append(run.models.G_A(torch.stack(crops["A"]).to(device)))
        if crops["B"]:
            parts.append(torch.stack(crops["B"]).to(device))
        yield (segmenter_input(torch.cat(parts)),)


@torch.no_grad()
def recalibrated_segmenter(run: GanRun, dataset: JointImages) -> nn.Module:
    """A deep copy of F_T with BatchNorm statistics re-estimated over --segmenter-precise-bn-batches batches."""
    device = next(run.models.F_T.parameters()).device
    model = copy.deepcopy(run.models.F_T)
    batches = precise_bn_batches(run, dataset, device)
    recalibrate_batchnorm(model, batches, run.config.segmenter_precise_bn_batches, device)
    return model


def save_segmenter(scale: float, dataset: JointImages | None, run: GanRun, output: Path, numbered: bool) -> None:
    """latest_segmenter.pt (and ITER_segmenter.pt with the numbered networks) in the segmenter checkpoint format:
    F_T after precise BN on `dataset`'s labelled mix (module docstring), or as trained when that is off or there is
    no dataset."""
    config = segmenter_checkpoint_config(run.config, scale, run.iteration)
    model = run.models.F_T
    if dataset is not None and run.config.segmenter_precise_bn_batches > 0:
        model = recalibrated_segmenter(run, dataset)
    state = model.state_dict()
    save_segmenter_checkpoint(output / SEGMENTER_FILE, config, state)
    if numbered:
        save_segmenter_checkpoint(output / f"{run.iteration}_segmenter.pt", config, state)


def joint_trainer(scale: float, dataset: JointImages | None = None) -> GanTrainer:
    """CycleGAN's trainer with F_T: its step, losses, state format, optimizer and checkpoint files (F_T's after
    precise BN on `dataset`'s labelled mix, save_segmenter)."""
    return dataclasses.replace(
        cyclegan.CYCLEGAN,
        title="Joint CycleGAN",
        log=log,
        state_format=JOINT_TRAIN_STATE_FORMAT,
        finished_format=JOINT_FINISHED,
        fixed=JOINT_FIXED,
        build=build_models,
        step=joint_step,
        loss_names=JOINT_LOSS_NAMES,
        extra_optimizers=segmenter_optimizer,
        file_networks=NET_NAMES,
        save_extra=functools.partial(save_segmenter, scale, dataset),
    )


def train_joint(
    config: JointConfig,
    resume: bool = False,
    *,
    keep_train_state: bool = False,
    stop: StopRequest | None = None,
) -> Path:
    """Train CycleGAN and F_T together (module docstring) and return the output folder; `resume`,
    `keep_train_state` and `stop` as train.cyclegan.train_cyclegan. One process only: under torchrun it is refused
    (F_T's batches, precise BN and saves are not shared between processes)."""
    refuse_under_torchrun("--joint-segmenter")
    if not resume:
        refuse_rerun(Path(config.output))
    config.check()
    dataset: JointImages = joint_dataset(
        config.source, config.target, config.target_label_fraction, config.load_width, config.crop_size, config.seed
    )
    config = resolve_config(config, len(dataset))
    scale = config.load_width / native_width(dataset.samples_b, "B")
    summary: dict[str, Any] = {
        "generator": generator_spec(config),
        "images": {"A": len(dataset.samples_a), "B": len(dataset.samples_b)},
        "joint": {
            "segmenter": {
                "architecture": config.joint_segmenter,
                "scale": scale,
                "file": SEGMENTER_FILE,
                "precise_bn_batches": config.segmenter_precise_bn_batches,
            },
            "weights": dict.fromkeys((*GENERATOR_TERMS, *SEGMENTER_TERMS), 1.0),
            "labelled": dataset.mix.record(),
        },
    }
    return train_gan(joint_trainer(scale, dataset), config, dataset, summary, resume, keep_train_state, stop)
