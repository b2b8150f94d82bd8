"""Train a semantic segmenter on GTA5- or Cityscapes-layout data; keep the checkpoint best on held-out training data.

One short loop in the torchvision-references style: cross-entropy with ignore 255, SGD or AdamW, poly learning rate,
a held-out score every `val_every` iterations. The held-out part is a seeded fraction of the TRAINING data (never the
target evaluation set); it is scored with runtime.metrics.ConfusionMatrix at the evaluation protocol (image at the
working scale, logits upsampled to the label), so training and `evaluate-seg` measure the same thing. Before each
score (and so before each save) BatchNorm statistics are re-estimated on a few training batches ("precise BN"):
short from-scratch runs otherwise leave eval mode, the mode that gets exported, far behind the weights.

Outputs in `output_dir`: best.pt, last.pt (train.segmenters checkpoint format), config.json (resolved config),
history.json (held-out scores per validation), train.log (timestamped, train.trainlog), samples/ (image | ground
truth | prediction per validation), and while the run goes on latest_train_state.pt / previous_train_state.pt: model,
optimizer, scheduler, iteration, batches drawn, RNG states, history and counters, written every `save_every`
iterations and after every held-out score (so a kill never costs a score). A finished run replaces them by
`finished.json` (train.run_folder), unless asked to keep them.

Resume is bit-identical on CPU: batches (training and precise-BN ones, one stream) come in a fixed order that is a
pure function of (seed, epoch) (train.resume), the state records how many were drawn, and best.pt, last.pt and
history.json are rewritten from the restored history, so a run killed anywhere and resumed (redoing the iterations
since its last save) writes the same best.pt and last.pt bytes as an uninterrupted one.

Under torchrun it trains data-parallel (train.distributed): each process its share of every epoch, the model wrapped in
DistributedDataParallel (SyncBatchNorm on GPUs), rank 0 alone scoring the held-out part and writing files and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import platform
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from uda_trt.runtime.datasets import detect_layout, samples_for
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import resize_label, write_image
from uda_trt.runtime.jobs.files import atomic_write_bytes, json_plain, remove_partials, write_json
from uda_trt.runtime.jobs.workers import default_compute_threads
from uda_trt.runtime.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, colorize
from uda_trt.runtime.metrics import ConfusionMatrix
from uda_trt.train.checkpoints import SEGMENTER_TRAIN_STATE_FORMAT, save_segmenter_checkpoint
from uda_trt.train.distributed import Distributed, current
from uda_trt.train.resume import (
    EpochBatches,
    load_train_state,
    loader_generator,
    rng_state,
    save_train_state,
    set_rng_state,
)
from uda_trt.train.run_folder import (
    LATEST_STATE,
    SEGMENTER_FINISHED,
    SEGMENTER_FIXED,
    finished_iteration,
    refuse_rerun,
    refuse_settings_changed,
    remove_train_states,
    write_finished,
)
from uda_trt.train.segmentation_data import (
    HeldOutSegmentationDataset,
    TrainSegmentationDataset,
    collate_single,
    collate_skipping_broken,
    split_holdout,
)
from uda_trt.train.segmenters import (
    IMAGE_POOLING_ARCHITECTURES,
    NO_PRETRAINED_BACKBONE,
    NORMALIZATION,
    SEGMENTER_ARCHITECTURES,
    build_segmenter,
)
from uda_trt.train.stopping import StopRequest, TrainingStopped, ignore_stop_signals
from uda_trt.train.trainlog import progress_bar, train_log

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adamw")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the job failed (exit 1); a lower learning rate usually helps."""


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything one segmenter training run depends on; written resolved to config.json and into checkpoints.

    Defaults follow the torchvision segmentation references for real data (SGD, momentum 0.9, lr 0.01, poly,
    weight decay 1e-4). From scratch on a small CPU budget (the demo) AdamW with lr 1e-2 learns much faster
    (chosen on held-out synthetic SOURCE data, never on the target; the comparison is in the README).
    """

    data_root: Path
    output_dir: Path
    layout: str = "auto"  # auto | gta5 | cityscapes
    split: str = "train"  # Cityscapes split to train on
    architecture: str = "lraspp_mobilenet_v3_large"
    scale: float = 0.5  # working scale: images are resized by it for training and at inference
    crop_size: tuple[int, int] | None = (512, 512)  # (w, h) random crop at the working scale; None: whole image
    batch_size: int = 8
    iterations: int = 20000
    optimizer: str = "sgd"  # sgd (momentum 0.9) | adamw
    lr: float = 0.01
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    val_fraction: float = 0.1  # of the training data, held out to choose the best checkpoint
    val_every: int | None = None  # iterations between held-out scores; None: ten times per run
    seed: int = 0
    num_workers: int = 2
    pretrained_backbone: bool = False  # ImageNet backbone from torchvision (needs a network once)
    precise_bn_batches: int = 8  # training batches that re-estimate BatchNorm statistics before scoring; 0: off
    save_every: int = 500  # iterations between training-state saves (also saved at every held-out score)
    log_every: int = 100  # iterations between loss lines in train.log
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    threads: int | None = None  # torch intra-op threads; None: the cores this process may use

    def check(self) -> None:
        """Refuse an impossible setting in one line naming its flag and value (UserError, exit 2)."""
        rules = (
            ("layout", self.layout in ("auto", "gta5", "cityscapes"), "auto, gta5 or cityscapes"),
            (
                "architecture",
                self.architecture in SEGMENTER_ARCHITECTURES,
                "one of " + ", ".join(SEGMENTER_ARCHITECTURES),
            ),
            ("optimizer", self.optimizer in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
            ("scale", self.scale > 0, "positive"),
            ("crop_size", self.crop_size is None or min(self.crop_size) > 0, "positive"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("iterations", self.iterations >= 1, "at least 1"),
            ("lr", self.lr > 0, "positive"),
            ("weight_decay", self.weight_decay >= 0, "zero or positive"),
            ("val_fraction", 0 <= self.val_fraction < 1, "in [0, 1)"),
            ("val_every", self.val_every is None or self.val_every >= 1, "at least 1"),
            ("num_workers", self.num_workers >= 0, "zero or positive"),
            ("precise_bn_batches", self.precise_bn_batches >= 0, "zero or positive"),
            ("save_every", self.save_every >= 1, "at least 1"),
            ("log_every", self.log_every >= 1, "at least 1"),
        )
        for name, ok, expected in rules:
            if not ok:
                flag = "--arch" if name == "architecture" else "--" + name.replace("_", "-")
                raise UserError(f"{flag} {getattr(self, name)!r}: must be {expected}")
        if self.pretrained_backbone and self.architecture in NO_PRETRAINED_BACKBONE:
            raise UserError(f"--pretrained-backbone: {self.architecture} has no backbone to pretrain; leave it out")

    def resolved_val_every(self) -> int:
        return self.val_every or max(1, self.iterations // 10)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (paths as strings, sizes as lists)."""
        return json_plain(dataclasses.asdict(self))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU")
    return torch.device(name)


def make_optimizer(model: nn.Module, config: SegmenterConfig) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (torchvision references) or AdamW, over the parameters that train."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def poly_schedule(optimizer: torch.optim.Optimizer, iterations: int, power: float) -> torch.optim.lr_scheduler.LambdaLR:
    """lr * (1 - it / iterations) ** power, stepped once per iteration (as the torchvision references do)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: (1 - min(it, iterations) / iterations) ** power)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimisation step of pixel-wise cross-entropy (train ID 255 ignored); returns the loss."""
    loss = F.cross_entropy(model(images)["out"], labels, ignore_index=IGNORE)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterator, count: int, device: torch.device, dist: Distributed | None = None
) -> None:
    """Re-estimate BatchNorm running statistics as plain averages over `count` training batches ("precise BN").

    torchvision's MobileNetV3 keeps BatchNorm momentum 0.01, so after a short from-scratch run the running
    statistics still mostly hold their initial values and eval-mode predictions collapse far below train-mode
    ones (figures in the README). Averaging fresh statistics under the current weights, as pycls and
    Detectron2 do, fixes that; the weights are untouched. Checkpoints are saved right after this. Under torchrun
    (`dist`) every process draws its own batches and uses a batch only when all of them can (SyncBatchNorm forwards
    are collective).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or count <= 0:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    was_training = model.training
    model.train()  # batch statistics feed the running averages
    for _ in range(count):
        batch = next(batches)
        usable = batch is not None and batch[0].shape[0] > 1
        if dist is not None:
            usable = dist.all_of(usable)
        if usable:
            model(batch[0].to(device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def evaluate_heldout(
    model: nn.Module, loader: DataLoader, device: torch.device, picture: Path | None = None
) -> dict[str, Any]:
    """Score the model on held-out pairs: logits at the working scale, bilinearly upsampled to the label, argmax.

    Writes `picture` (image | ground truth | prediction, at the working scale) for the first readable sample.
    """
    was_training = model.training
    model.eval()
    matrix, scored, skipped = ConfusionMatrix(), 0, 0
    for item in loader:
        if item is None:
            skipped += 1
            continue
        image, scaled_rgb, label = item
        logits = model(image.unsqueeze(0).to(device))["out"]
        logits = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False)
        prediction = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        matrix.update(label, prediction)
        if picture is not None and scored == 0:
            size = (scaled_rgb.shape[1], scaled_rgb.shape[0])
            row = [scaled_rgb, colorize(resize_label(label, size)), colorize(resize_label(prediction, size))]
            write_image(picture, np.concatenate(row, axis=1))
        scored += 1
    model.train(was_training)
    scores = matrix.scores() if scored else {"mean_iou": float("nan"), "pixel_accuracy": float("nan")}
    return {
        "mean_iou": scores["mean_iou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "images_scored": scored,
        "images_skipped": skipped,
    }


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class _Batches:
    """The endless training batch stream, counting the batches it served (where a resumed run starts from)."""

    def __init__(self, loader: DataLoader, drawn: int) -> None:
        self.iterator = iter(loader)
        self.drawn = drawn

    def __iter__(self) -> _Batches:
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.drawn += 1
        return batch


def _split(config: SegmenterConfig, layout_samples: list) -> tuple[list, list]:
    """(train samples, held-out samples), refusing too few training samples for the architecture."""
    train_samples, held_out = split_holdout(layout_samples, config.val_fraction, config.seed)
    min_train = 2 if config.architecture in IMAGE_POOLING_ARCHITECTURES else 1  # ASPP pooling has BatchNorm on 1x1
    if len(train_samples) < min_train:
        raise UserError(
            f"{config.data_root}: {len(train_samples)} training sample(s) after holding out {len(held_out)}; "
            f"{config.architecture} needs at least {min_train}"
        )
    return train_samples, held_out


def _train_batches(config: SegmenterConfig, train_samples: list, drawn: int, dist: Distributed) -> _Batches:
    """Shuffled batches (the last short one of an epoch dropped when there is more than one batch), starting at
    batch `drawn` of the run's fixed order (train.resume.EpochBatches); under torchrun, of this process's share."""
    drop_last = len(train_samples) // dist.world_size > config.batch_size
    sampler = EpochBatches(
        len(train_samples),
        config.batch_size,
        config.seed,
        start=drawn,
        drop_last=drop_last,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    loader = DataLoader(
        TrainSegmentationDataset(train_samples, config.scale, config.crop_size, seed=config.seed),
        batch_sampler=sampler,
        collate_fn=collate_skipping_broken,
        num_workers=config.num_workers,
        generator=loader_generator(config.seed),
        worker_init_fn=ignore_stop_signals,
    )
    return _Batches(loader, drawn)


def _heldout_loader(config: SegmenterConfig, held_out: list) -> DataLoader | None:
    if not held_out:
        return None
    return DataLoader(
        HeldOutSegmentationDataset(held_out, config.scale),
        batch_size=1,
        collate_fn=collate_single,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        generator=loader_generator(config.seed),  # iterating it never draws from the global torch RNG
        worker_init_fn=ignore_stop_signals,
    )


def train_segmenter(
    config: SegmenterConfig,
    resume: bool = False,
    *,
    keep_train_state: bool = False,
    stop: StopRequest | None = None,
) -> Path:
    """Train per `config`; returns the path of the best checkpoint (output_dir/best.pt).

    `resume=True` continues the run in output_dir from its training state (`previous_train_state.pt` when the
    latest is damaged), or starts it when there is none yet; a finished run (`finished.json`) returns at once.
    Without it, a folder that holds a run is refused in one line naming --resume.

    A finished run removes its training states unless `keep_train_state`. When `stop` asks (SIGINT, SIGTERM), the
    run stops after the iteration in progress, saves its state and raises `TrainingStopped`.
    """
    config.check()
    out = Path(config.output_dir)
    if not resume:
        refuse_rerun(out)
    else:
        settings = _fixed_settings(config)
        done = finished_iteration(out, SEGMENTER_FINISHED, settings, SEGMENTER_FIXED, config.iterations)
        if done is not None:
            log.info("%s: already trained to iteration %d; nothing to do", out, done)
            return out / "best.pt"
    dist = current()
    if dist.main:  # under torchrun rank 0 alone writes (train.distributed)
        out.mkdir(parents=True, exist_ok=True)
    with train_log(out, append=resume) if dist.main else contextlib.nullcontext():
        return _train(config, out, resume, keep_train_state, stop, dist)


@dataclass
class _Run:
    """The mutable state of one segmenter run: what the training state file holds, besides the config."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    history: dict[str, Any]
    iteration: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)  # training losses since the last validation
    images_seen: int = 0
    skipped: int = 0
    seconds_before: float = 0.0  # wall time of the earlier processes of this run
    validation_seconds: float = 0.0
    started: float = dataclasses.field(default_factory=time.perf_counter)
    net: nn.Module | None = None  # `model` as it trains under torchrun (DDP-wrapped); None: `model` itself

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def state(self, resolved: dict[str, Any], batches_drawn: int) -> dict[str, Any]:
        """Plain types and CPU tensors only, so torch.load(weights_only=True) reads it."""
        return {
            "format": SEGMENTER_TRAIN_STATE_FORMAT,
            "version": 1,
            "iteration": self.iteration,
            "batches_drawn": batches_drawn,
            "config": resolved,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "progress": {
                "losses": list(self.losses),
                "images_seen": self.images_seen,
                "skipped": self.skipped,
                "seconds": self.elapsed(),
                "validation_seconds": self.validation_seconds,
            },
        }

    def restore(self, state: dict[str, Any], config: SegmenterConfig, path: Path) -> None:
        """Load `state` (read by train.resume.load_train_state); a changed setting that defines the run is refused."""
        refuse_settings_changed(path, state["config"], _fixed_settings(config), SEGMENTER_FIXED)
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]
        self.iteration = int(state["iteration"])
        progress = state["progress"]
        self.losses = [float(v) for v in progress["losses"]]
        self.images_seen, self.skipped = int(progress["images_seen"]), int(progress["skipped"])
        self.seconds_before = float(progress["seconds"])
        self.validation_seconds = float(progress["validation_seconds"])
        set_rng_state(state["rng"])  # last: building the model drew from the global torch RNG
        current().note_resumed_from(int(state["config"].get("distributed", {}).get("processes", 1)), path)


STATE_KEYS = ("iteration", "batches_drawn", "config", "model", "optimizer", "scheduler", "rng", "history", "progress")


def _fixed_settings(config: SegmenterConfig) -> dict[str, Any]:
    """The settings a resumed run must repeat, as config.json and the training state record them."""
    plain = config.as_dict()
    return {field: plain[field] for field in SEGMENTER_FIXED}


def _dataset(config: SegmenterConfig) -> tuple[str, list]:
    """(layout, labelled samples) of config.data_root; a missing folder or unknown layout is a UserError."""
    root = Path(config.data_root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (expected a GTA5 or Cityscapes layout dataset)")
    layout = detect_layout(root) if config.layout == "auto" else config.layout
    if layout not in ("gta5", "cityscapes"):
        raise UserError(f"{root}: not a GTA5 (images/, labels/) or Cityscapes (leftImg8bit/, gtFine/) dataset")
    return samples_for(root, layout, config.split, require_labels=True)


def _train(
    config: SegmenterConfig,
    out: Path,
    resume: bool,
    keep_train_state: bool,
    stop: StopRequest | None,
    dist: Distributed,
) -> Path:
    layout, samples = _dataset(config)
    device = _device(config.device)
    # Set, not inherited: torch's default follows OMP_NUM_THREADS or whatever an earlier stage of the same process
    # (run-uda's CycleGAN training) set, and the thread count changes CPU results, so a resumed run would differ.
    threads = config.threads or default_compute_threads()
    torch.set_num_threads(threads)
    _seed_everything(config.seed)
    train_samples, held_out = _split(config, samples)
    if len(train_samples) < dist.world_size:
        raise UserError(
            f"{config.data_root}: {len(train_samples)} training samples cannot be shared by {dist.world_size} "
            "processes (torchrun)"
        )
    held_loader = _heldout_loader(config, held_out) if dist.main else None  # rank 0 alone scores
    val_every = config.resolved_val_every()
    resolved = {
        **config.as_dict(),
        "layout_detected": layout,
        "val_every_resolved": val_every,
        "train_samples": len(train_samples),
        "heldout_samples": len(held_out),
        "device_resolved": str(device),
        "threads_resolved": threads,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
    }
    if dist.active:
        resolved["distributed"] = {"processes": dist.world_size}
    if dist.main:
        write_json(out / "config.json", resolved)
    model = build_segmenter(config.architecture, NUM_CLASSES, config.pretrained_backbone).to(device).train()
    optimizer = make_optimizer(model, config)
    history: dict[str, Any] = {"validations": [], "best_iteration": None, "best_heldout_miou": None}
    run = _Run(model, optimizer, poly_schedule(optimizer, config.iterations, config.poly_power), history)
    drawn = 0
    if resume:
        with dist.main_first():  # rank 0 settles which state file is usable
            drawn = _resume(run, config, out)
        dist.refuse_unshared_state(out, run.iteration)
    if dist.active:
        run.net = dist.wrap(model)
        dist.reseed(config.seed, run.iteration)
    if dist.main:
        remove_partials(out)  # temporaries of a killed run's writes
    if run.iteration >= config.iterations:  # a finished run that kept its training state
        log.info("%s: already trained to iteration %d; nothing to do", out, run.iteration)
        if dist.main:
            _record_finished(out, run.iteration, resolved, keep_train_state)
        dist.barrier()
        return out / "best.pt"
    log.info(
        "training %s on %d %s samples (%d held out) on %s, from iteration %d",
        config.architecture,
        len(train_samples),
        layout,
        len(held_out),
        device,
        run.iteration,
    )
    checkpoint_config = {
        "architecture": config.architecture,
        "num_classes": NUM_CLASSES,
        "scale": config.scale,
        "normalization": NORMALIZATION,
        "class_names": list(CLASS_NAMES),
        "training": resolved,
    }
    batches = _train_batches(config, train_samples, drawn, dist)
    with progress_bar(config.iterations, run.iteration, "train-segmenter", show=dist.main) as progress:
        for iteration in range(run.iteration + 1, config.iterations + 1):
            loss = _step(run, config, next(batches), device, iteration, progress, dist)
            run.iteration, last = iteration, iteration == config.iterations
            progress.update(1)
            if iteration % config.log_every == 0:
                shown = "n/a (batch skipped)" if loss is None else f"{loss:.4f}"
                log.info("iteration %d: loss %s (this batch), lr %.3g", iteration, shown, _lr(run))
            validating = iteration % val_every == 0 or last
            if validating:
                miou = _validate(run, config, batches, held_loader, device, out, checkpoint_config, dist)
            if last and dist.main:
                _finish(run, out, checkpoint_config, miou)
            saved = validating or iteration % config.save_every == 0
            if saved:
                dist.check_weights([("model", run.model)], iteration)
            if saved and (keep_train_state or not last):
                if dist.main:
                    save_train_state(run.state(resolved, batches.drawn), out)
                dist.barrier()  # no process runs ahead of a checkpoint
            # under torchrun a signal may reach some processes only, or at different iterations: all stop together
            if dist.any_of(stop is not None and stop.requested) and not last:
                signum = stop.signum if stop is not None and stop.requested else signal.SIGTERM
                log.info("%s at iteration %d: saving the training state", signal.Signals(signum).name, iteration)
                if not saved:
                    if dist.main:
                        save_train_state(run.state(resolved, batches.drawn), out)
                    dist.barrier()
                raise TrainingStopped(signum, iteration, out / LATEST_STATE)
    if dist.main:
        _record_finished(out, run.iteration, resolved, keep_train_state)
    dist.barrier()
    log.info(
        "best held-out mIoU %s at iteration %s -> %s",
        run.history["best_heldout_miou"],
        run.history["best_iteration"],
        out / "best.pt",
    )
    return out / "best.pt"


def _record_finished(out: Path, iteration: int, resolved: dict[str, Any], keep_train_state: bool) -> None:
    """finished.json, then (unless kept) no training state: best.pt, last.pt and history.json hold the results."""
    write_finished(out, SEGMENTER_FINISHED, iteration, resolved)
    if not keep_train_state:
        remove_train_states(out)


def _resume(run: _Run, config: SegmenterConfig, out: Path) -> int:
    """Restore `run` from the folder's training state; returns the batches drawn so far (0 when starting anew)."""
    state = load_train_state(out, SEGMENTER_TRAIN_STATE_FORMAT, STATE_KEYS)
    if state is None:
        log.info("no training state in %s yet; starting a new run", out)
        return 0
    run.restore(state, config, out / LATEST_STATE)
    log.info("resuming %s at iteration %d of %d", out, run.iteration, config.iterations)
    return int(state["batches_drawn"])


def _lr(run: _Run) -> float:
    return run.scheduler.get_last_lr()[0]


def _step(
    run: _Run,
    config: SegmenterConfig,
    batch,
    device: torch.device,
    iteration: int,
    progress: tqdm,
    dist: Distributed,
) -> float | None:
    """One iteration: a training step on the batch (unless nothing in it can be learnt from; under torchrun, unless
    that holds for any process's batch), then the schedule. Returns the loss, or None when the batch was skipped."""
    loss = None
    usable = False
    if batch is not None:
        images, labels, n_skipped = batch
        run.skipped += n_skipped
        # Skip a batch with nothing to learn (all ignore), or one BatchNorm in ASPP pooling cannot take.
        usable = bool((labels != IGNORE).any()) and (
            images.shape[0] > 1 or config.architecture not in IMAGE_POOLING_ARCHITECTURES
        )
    if dist.all_of(usable):  # every process takes the step (DDP's backward is collective) or none
        net = run.model if run.net is None else run.net
        loss = train_step(net, run.optimizer, images.to(device), labels.to(device))
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} at iteration {iteration}; try a lower --lr")
        run.losses.append(loss)
        run.images_seen += images.shape[0]
        progress.set_postfix(loss=f"{loss:.3f}", lr=f"{_lr(run):.2e}")
    run.scheduler.step()
    return loss


def _validate(
    run: _Run,
    config: SegmenterConfig,
    batches: _Batches,
    held_loader: DataLoader | None,
    device: torch.device,
    out: Path,
    checkpoint_config: dict[str, Any],
    dist: Distributed,
) -> float:
    """Precise BN, the held-out score, history.json, and best.pt when the score is the best so far; returns mIoU.
    Under torchrun every process re-estimates BatchNorm statistics; rank 0 alone scores and writes (the others
    return NaN)."""
    started = time.perf_counter()
    iteration, history = run.iteration, run.history
    recalibrate_batchnorm(run.model, batches, config.precise_bn_batches, device, dist if dist.active else None)
    if not dist.main:
        run.losses = []
        return float("nan")
    picture = out / "samples" / f"iter_{iteration:06d}.png"
    held = evaluate_heldout(run.model, held_loader, device, picture) if held_loader else None
    miou = held["mean_iou"] if held else float("nan")
    entry = {
        "iteration": iteration,
        "train_loss": float(np.mean(run.losses)) if run.losses else None,
        "lr": run.scheduler.get_last_lr()[0],
        "heldout_miou": _finite_or_none(miou),
        "heldout_pixel_accuracy": _finite_or_none(held["pixel_accuracy"]) if held else None,
        "heldout_images_scored": held["images_scored"] if held else 0,
        "heldout_images_skipped": held["images_skipped"] if held else 0,
        "seconds": round(run.elapsed(), 3),
    }
    history["validations"].append(entry)
    # Not "loss": the periodic line's loss is one batch's; this is history.json's train_loss, a mean.
    log.info(
        "iteration %d: held-out mIoU %s; mean training loss %s over the %d batches since the last held-out score",
        iteration,
        "n/a" if entry["heldout_miou"] is None else f"{100 * miou:.2f}%",
        "n/a" if entry["train_loss"] is None else f"{entry['train_loss']:.4f}",
        len(run.losses),
    )
    run.losses = []
    best = history["best_heldout_miou"]
    if not math.isnan(miou) and (best is None or miou > best):
        history["best_iteration"], history["best_heldout_miou"] = iteration, float(miou)
        config_now = {**checkpoint_config, "iteration": iteration, "heldout_miou": miou}
        save_segmenter_checkpoint(out / "best.pt", config_now, run.model.state_dict())
    run.validation_seconds += time.perf_counter() - started
    elapsed = run.elapsed()
    train_seconds = elapsed - run.validation_seconds
    training = checkpoint_config["training"]
    history.update(
        train_samples=training["train_samples"],
        heldout_samples=training["heldout_samples"],
        skipped_train_samples=run.skipped,
        train_images_seen=run.images_seen,
        seconds=round(elapsed, 3),
        train_seconds=round(train_seconds, 3),  # data loading + steps, without held-out scoring
        train_images_per_second=round(run.images_seen / train_seconds, 3) if train_seconds > 0 else None,
    )
    write_json(out / "history.json", history)
    return miou


def _finish(run: _Run, out: Path, checkpoint_config: dict[str, Any], miou: float) -> None:
    """last.pt, and best.pt = last.pt when no held-out score ever chose one."""
    last_config = {**checkpoint_config, "iteration": run.iteration, "heldout_miou": _finite_or_none(miou)}
    save_segmenter_checkpoint(out / "last.pt", last_config, run.model.state_dict())
    if run.history["best_iteration"] is None:  # no held-out score (val_fraction 0, or every held-out sample broken)
        log.warning("no held-out score; best.pt is the last checkpoint")
        atomic_write_bytes(out / "best.pt", (out / "last.pt").read_bytes())
