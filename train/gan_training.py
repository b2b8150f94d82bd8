"""What the GAN trainers (train.cyclegan, train.pix2pix) share: the reference's GAN loss, learning-rate policy and
seeding; a run's networks, two Adam optimizers and their schedules with its training state; and the driver that
trains a run to its last iteration in its output folder, resumably.

Each trainer brings a `GanTrainer`: its networks, its training step, its loss names and file formats. The rest is
the same for both and follows the reference code: Adam(lr, betas (beta1, 0.999)) over the generators and over the
discriminators; the learning rate constant, then decaying linearly towards zero over the last `decay_iterations`
(the reference's n_epochs + n_epochs_decay, counted in iterations); networks saved as bare state_dicts with the
reference names (`latest_net_{name}.pth`, `{iteration}_net_{name}.pth`).

Output folder: those network files, `config.json`, `train.log` (train.trainlog), `samples/iter_NNNNNN.png` and,
while the run goes on, `latest_train_state.pt` / `previous_train_state.pt` (train.resume); a finished run replaces
them by `finished.json` (train.run_folder) unless asked to keep them. Resume is bit-identical on CPU: the state holds
networks, optimizers, schedulers, image pools, iteration and RNG states, and the data order is a pure function of
(seed, epoch), so a run killed anywhere and resumed from its last save ends with the same bytes as an uninterrupted
one, given the same command and thread count.

Under torchrun the same driver trains data-parallel (train.distributed): each process its share of every epoch, the
networks wrapped in DistributedDataParallel, rank 0 alone writing files and logs, every process waiting at each save.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import write_image
from uda_trt.runtime.jobs.files import remove_partials, write_json
from uda_trt.runtime.jobs.workers import default_compute_threads
from uda_trt.train.checkpoints import cpu_state_dict, save_generator
from uda_trt.train.distributed import Distributed, current, unwrap
from uda_trt.train.networks import count_parameters
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
    finished_iteration,
    refuse_settings_changed,
    remove_train_states,
    write_finished,
)
from uda_trt.train.stopping import StopRequest, TrainingStopped, ignore_stop_signals
from uda_trt.train.trainlog import progress_bar, train_log

Settings = TypeVar("Settings", bound="GanSettings")
STATE_KEYS = ("iteration", "config", "models", "optimizers", "schedulers", "pools", "rng")


class TrainingFailed(RuntimeError):
    """The run itself went wrong (e.g. losses became NaN): the job failed, exit 1."""


# --- reference pieces ----------------------------------------------------------------------------------------------


def gan_loss(prediction: torch.Tensor, target_is_real: bool, gan_mode: str) -> torch.Tensor:
    """LSGAN: MSE to 1 (real) or 0 (fake) on raw scores; vanilla: BCE with logits."""
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if gan_mode == "lsgan":
        return nn.functional.mse_loss(prediction, target)
    if gan_mode == "vanilla":
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan_mode {gan_mode!r}")


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `nets`, as the reference does around each update."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def lr_factor(iteration: int, iterations: int, decay_iterations: int) -> float:
    """The reference's `linear` policy in iterations: 1 for the first iterations - decay_iterations, then
    1 - k / (decay_iterations + 1) at the k-th decaying iteration."""
    constant = iterations - decay_iterations
    return 1.0 - max(0, iteration + 1 - constant) / float(decay_iterations + 1)


def patch_map_side(side: int, n_layers: int) -> int:
    """Side of the PatchGAN output map for an input side (k4 p1 convs: n_layers with stride 2, then two stride 1)."""
    for _ in range(n_layers):
        side = (side - 2) // 2 + 1
    return side - 2


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True, kw_only=True)
class GanSettings:
    """The settings every GAN run has, besides its data and the shape of its generator: what this module reads.
    Defaults are the reference's. Trainer configs (train.cyclegan, train.pix2pix) extend it; `None` fields are
    resolved at start (`resolve_common`). `output` is the run's folder."""

    output: Path
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    crop_size: tuple[int, int] = (256, 256)
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    iterations: int | None = None
    decay_iterations: int | None = None
    seed: int = 0
    num_workers: int = 2
    threads: int | None = None
    device: str = "auto"
    sample_every: int = 400
    save_every: int = 5000
    log_every: int = 100

    def to_plain(self) -> dict[str, Any]:
        """Plain JSON types (paths as strings, sizes as lists), for config.json and the training state."""
        return plain_config(self)


def plain_config(config: GanSettings) -> dict[str, Any]:
    """A config dataclass as plain JSON types (paths as strings, sizes as lists), for config.json and states."""
    plain = dataclasses.asdict(config)
    for key, value in plain.items():
        if isinstance(value, Path):
            plain[key] = str(value)
        elif isinstance(value, tuple):
            plain[key] = list(value)
    return plain


def resolve_common(config: Settings, dataset_size: int) -> Settings:
    """The checks and `None` defaults both trainers share, with errors naming the command-line flag: the crop must
    leave the discriminator a map; counts at least 1; iterations -> 200 epochs' worth (dataset_size / batch_size per
    epoch, the reference's 100 constant + 100 decaying; under torchrun each process's share of the dataset,
    train.distributed), decay_iterations -> half of them, threads -> the cores this process may use, device auto ->
    cuda when available."""
    crop_w, crop_h = config.crop_size
    if min(patch_map_side(crop_w, config.n_layers_d), patch_map_side(crop_h, config.n_layers_d)) < 1:
        raise UserError(f"--crop-size {crop_w}x{crop_h} is too small for a {config.n_layers_d}-layer discriminator")
    positive = {
        "--batch-size": config.batch_size,
        "--ngf": config.ngf,
        "--sample-every": config.sample_every,
        "--save-every": config.save_every,
        "--log-every": config.log_every,
    }
    for flag, value in positive.items():
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    processes = current().world_size
    if dataset_size < processes:
        raise UserError(f"{dataset_size} training images cannot be shared by {processes} processes (torchrun)")
    iterations = config.iterations or 200 * math.ceil(dataset_size // processes / config.batch_size)
    decay = iterations // 2 if config.decay_iterations is None else config.decay_iterations
    if iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {iterations}")
    if not 0 <= decay <= iterations:
        raise UserError(f"--decay-iterations {decay} must be between 0 and --iterations {iterations}")
    threads = config.threads or default_compute_threads()
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return dataclasses.replace(config, iterations=iterations, decay_iterations=decay, threads=threads, device=device)


# --- a run ---------------------------------------------------------------------------------------------------------


class Networks(Protocol):
    """A trainer's networks by reference name, in a fixed order (files, state, optimizer parameter order)."""

    def items(self) -> list[tuple[str, nn.Module]]: ...


Step = Callable[["GanRun", dict, torch.device], tuple[dict[str, float], Callable[[], np.ndarray]]]


@dataclass(frozen=True)
class GanTrainer:
    """What one GAN trainer brings to `train_gan`.

    title: its name in messages ("CycleGAN", lower case on the progress bar); log: its module's logger (train.log lines
    read `uda_trt.train.cyclegan: iteration N: ...`). fixed: the config fields a resumed run must repeat -> their
    flags. build: the networks of a config (called after seeding). pools: the image pools of a config (each with an
    `images` list, kept in the training state). step: one iteration on a loader batch -> (losses, a function that
    draws the sample grid). loss_names: the log line's order; bar_losses: those on the progress bar (default: all).
    Optional, for a trainer with a network outside the G/D pair (train.joint_training's segmenter):
    extra_optimizers: (config, networks) -> {name: (optimizer, scheduler)}, kept in the training state beside G and
    D and stepped with them; file_networks: the networks written as reference-style files (default: all);
    save_extra: (run, output, numbered) writes that network's own files, after the others and before the state.
    """

    title: str
    log: logging.Logger
    state_format: str
    finished_format: str
    fixed: Mapping[str, str]
    build: Callable[[Any], Networks]
    step: Step
    loss_names: tuple[str, ...]
    bar_losses: tuple[str, ...] = ()
    pools: Callable[[Any], dict[str, Any]] = lambda config: {}
    extra_optimizers: Callable[[Any, Networks], dict[str, tuple[Any, Any]]] = lambda config, models: {}
    file_networks: tuple[str, ...] | None = None
    save_extra: Callable[[GanRun, Path, bool], None] | None = None


def fixed_settings(config: GanSettings, fixed: Mapping[str, str]) -> dict[str, Any]:
    """The settings a resumed run must repeat, as config.json and the training state record them."""
    plain = plain_config(config)
    return {field: plain[field] for field in fixed}


class GanRun:
    """The mutable state of one run: networks, optimizers (generators `G*`, discriminators `D*`), schedulers,
    image pools, iteration."""

    def __init__(self, trainer: GanTrainer, config: GanSettings, device: torch.device) -> None:
        self.trainer, self.config = trainer, config
        self.models = trainer.build(config)
        for _, net in self.models.items():
            net.to(device)
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self._parameters("G"), lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self._parameters("D"), lr=config.lr, betas=betas)

        def rule(i: int) -> float:
            return lr_factor(i, config.iterations, config.decay_iterations)

        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, rule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, rule)
        self.pools = trainer.pools(config)
        self.extra = trainer.extra_optimizers(config, self.models)
        self.iteration = 0

    def _parameters(self, group: str) -> list[nn.Parameter]:
        """The parameters of the networks whose names start with `group` (G, D), in network order."""
        return [p for name, net in self.models.items() if name.startswith(group) for p in net.parameters()]

    def state(self) -> dict[str, Any]:
        """Everything a resume needs (rank 0's pools and RNG states under torchrun, with the process count)."""
        processes = current().world_size
        return {
            **({"processes": processes} if processes > 1 else {}),
            "format": self.trainer.state_format,
            "version": 1,
            "iteration": self.iteration,
            "config": plain_config(self.config),
            "models": {name: cpu_state_dict(unwrap(net)) for name, net in self.models.items()},
            "optimizers": {
                "G": self.opt_G.state_dict(),
                "D": self.opt_D.state_dict(),
                **{name: opt.state_dict() for name, (opt, _) in self.extra.items()},
            },
            "schedulers": {
                "G": self.sched_G.state_dict(),
                "D": self.sched_D.state_dict(),
                **{name: sched.state_dict() for name, (_, sched) in self.extra.items()},
            },
            "pools": {name: [t.cpu() for t in pool.images] for name, pool in self.pools.items()},
            "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any], path: Path, device: torch.device) -> None:
        fixed = self.trainer.fixed
        refuse_settings_changed(path, state["config"], fixed_settings(self.config, fixed), fixed)
        for name, net in self.models.items():
            net.load_state_dict(state["models"][name], strict=True)
        self.opt_G.load_state_dict(state["optimizers"]["G"])
        self.opt_D.load_state_dict(state["optimizers"]["D"])
        self.sched_G.load_state_dict(state["schedulers"]["G"])
        self.sched_D.load_state_dict(state["schedulers"]["D"])
        for name, (opt, sched) in self.extra.items():
            opt.load_state_dict(state["optimizers"][name])
            sched.load_state_dict(state["schedulers"][name])
        for name, pool in self.pools.items():
            pool.images = [t.to(device) for t in state["pools"][name]]
        self.iteration = int(state["iteration"])
        set_rng_state(state["rng"])
        current().note_resumed_from(int(state.get("processes", 1)), path)

    def save(self, output: Path, numbered: bool, state: bool = True) -> None:
        """Network files first, the training state last: a kill in between resumes from the older state and
        rewrites the same network files. `state=False` at the end of a run that will not keep it."""
        files = self.trainer.file_networks
        for name, net in self.models.items():
            if files is not None and name not in files:
                continue
            save_generator(output / f"latest_net_{name}.pth", unwrap(net))
            if numbered:
                save_generator(output / f"{self.iteration}_net_{name}.pth", unwrap(net))
        if self.trainer.save_extra is not None:
            self.trainer.save_extra(self, output, numbered)
        if state:
            save_train_state(self.state(), output)


def _start(trainer: GanTrainer, config: GanSettings, resume: bool, device: torch.device, dist: Distributed) -> GanRun:
    """A new run, or the run in the output folder continued from its training state (with `resume`). Under torchrun
    every process loads the state, rank 0 first (it may set a damaged latest state aside), and all must have found
    the same iteration; then each trains its DDP-wrapped networks with its own random streams (train.distributed)."""
    output = Path(config.output)
    run = GanRun(trainer, config, device)
    if resume:
        with dist.main_first():  # rank 0 settles which state file is usable
            state = load_train_state(output, trainer.state_format, STATE_KEYS)
        if state is None:
            trainer.log.info("no training state in %s yet; starting a new run", output)
        else:
            run.restore(state, output / LATEST_STATE, device)
            trainer.log.info("resuming %s at iteration %d of %d", output, run.iteration, config.iterations)
        dist.refuse_unshared_state(output, run.iteration)
    if dist.active:
        run.models = dataclasses.replace(run.models, **{name: dist.wrap(net) for name, net in run.models.items()})
        dist.reseed(config.seed, run.iteration)
    return run


# --- the driver ----------------------------------------------------------------------------------------------------


def train_gan(
    trainer: GanTrainer,
    config: GanSettings,
    dataset: Dataset,
    summary: Mapping[str, Any],
    resume: bool,
    keep_train_state: bool,
    stop: StopRequest | None,
) -> Path:
    """Train `config` (resolved: no `None` left) on `dataset` in config.output and return that folder.

    With `resume`: a folder holding a finished run returns at once (its settings checked against this config); one
    holding a training state continues from it; one holding neither starts the run. The caller has refused a rerun
    without `resume` already (before loading the data). `summary` joins config.json. A finished run removes its
    training states unless `keep_train_state`. When `stop` asks (SIGINT, SIGTERM), the run stops after the
    iteration in progress, saves its state and raises `TrainingStopped`.
    """
    output = Path(config.output)
    if resume:
        settings = fixed_settings(config, trainer.fixed)
        done = finished_iteration(output, trainer.finished_format, settings, trainer.fixed, config.iterations)
        if done is not None:
            trainer.log.info("%s: already trained to iteration %d; nothing to do", output, done)
            return output
    torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    seed_everything(config.seed)
    dist = current()
    run = _start(trainer, config, resume, device, dist)

    if dist.main:  # rank 0 alone writes (train.distributed)
        output.mkdir(parents=True, exist_ok=True)
        remove_partials(output)  # temporaries of a killed run's writes
        (output / "samples").mkdir(exist_ok=True)
        distributed = {"distributed": {"processes": dist.world_size}} if dist.active else {}
        write_json(
            output / "config.json",
            {
                "config": plain_config(config),
                **summary,
                "parameters": {name: count_parameters(unwrap(net)) for name, net in run.models.items()},
                "torch_version": torch.__version__,
                **distributed,
            },
        )
    with train_log(output, append=resume) if dist.main else contextlib.nullcontext():
        _loop(run, dataset, device, keep_train_state, stop, dist)
        if dist.main:
            write_finished(output, trainer.finished_format, run.iteration, plain_config(config))
            if not keep_train_state:
                remove_train_states(output)
        dist.barrier()
        trainer.log.info("%s trained to iteration %d in %s", trainer.title, run.iteration, output)
    return output


def _loop(
    run: GanRun,
    dataset: Dataset,
    device: torch.device,
    keep_train_state: bool,
    stop: StopRequest | None,
    dist: Distributed,
) -> None:
    """Train `run` to config.iterations: log lines, sample grids and saves on their schedules (rank 0's, under
    torchrun; the others wait for each save)."""
    trainer, config, output = run.trainer, run.config, Path(run.config.output)
    # Endless batches from the run's position: epoch iteration // per_epoch, its earlier batches skipped unloaded.
    sampler = EpochBatches(
        len(dataset), config.batch_size, config.seed, start=run.iteration, rank=dist.rank, world_size=dist.world_size
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        generator=loader_generator(config.seed),
        worker_init_fn=ignore_stop_signals,
    )
    batches = iter(loader)
    started = time.perf_counter()
    start_iteration = run.iteration
    trainer.log.info("start at iteration %d of %d (settings in config.json)", run.iteration, config.iterations)
    shown = trainer.bar_losses or trainer.loss_names
    with progress_bar(config.iterations, run.iteration, trainer.title.lower(), show=dist.main) as bar:
        while run.iteration < config.iterations:
            batch = next(batches)
            lr = run.opt_G.param_groups[0]["lr"]
            losses, grid = trainer.step(run, batch, device)
            run.sched_G.step()
            run.sched_D.step()
            for _, sched in run.extra.values():
                sched.step()
            run.iteration += 1
            it, last = run.iteration, run.iteration == config.iterations
            if not all(math.isfinite(v) for v in losses.values()):
                raise TrainingFailed(f"losses became non-finite at iteration {it}: {losses}")
            bar.update(1)
            bar.set_postfix({k: f"{losses[k]:.3f}" for k in shown}, refresh=False)
            if it % config.log_every == 0 or last:
                per_it = (time.perf_counter() - started) / (it - start_iteration)
                text = " ".join(f"{k} {losses[k]:.4f}" for k in trainer.loss_names)
                trainer.log.info("iteration %d: lr %.6g %s, %.3f s/it", it, lr, text, per_it)
            if (it % config.sample_every == 0 or last) and dist.main:
                write_image(output / "samples" / f"iter_{it:06d}.png", grid())
            saved = it % config.save_every == 0 or last
            if saved:
                dist.check_weights(run.models.items(), it)
                if dist.main:
                    run.save(output, numbered=it % config.save_every == 0, state=keep_train_state or not last)
                dist.barrier()  # no process runs ahead of a checkpoint
            # under torchrun a signal may reach some processes only, or at different iterations: all stop together
            if dist.any_of(stop is not None and stop.requested) and not last:
                signum = stop.signum if stop is not None and stop.requested else signal.SIGTERM
                trainer.log.info("%s at iteration %d: saving the training state", signal.Signals(signum).name, it)
                if not saved:
                    if dist.main:
                        run.save(output, numbered=False)
                    dist.barrier()
                raise TrainingStopped(signum, it, output / LATEST_STATE)
