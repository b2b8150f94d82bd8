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

Resume is bit-identical on CPU: the state holds networks, optimizers, schedulers, pools, iteration and RNG states,
and the data order is a pure function of (seed, epoch) (train.resume), so a run killed at any point and resumed
from its last save (redoing the iterations since) ends with the same bytes as an uninterrupted one, given the same
command and thread count.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import write_image
from uda_trt.runtime.jobs.files import remove_partials, write_json
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT, cpu_state_dict, save_generator
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator, count_parameters, init_weights
from uda_trt.train.resume import (
    EpochBatches,
    load_train_state,
    loader_generator,
    rng_state,
    save_train_state,
    set_rng_state,
)
from uda_trt.train.run_folder import (
    CYCLEGAN_FINISHED,
    CYCLEGAN_FIXED,
    LATEST_STATE,
    finished_iteration,
    refuse_rerun,
    refuse_settings_changed,
    remove_train_states,
    write_finished,
)
from uda_trt.train.stopping import StopRequest, TrainingStopped, ignore_stop_signals
from uda_trt.train.trainlog import progress_bar, train_log
from uda_trt.train.unpaired_data import to_uint8, unpaired_dataset

log = logging.getLogger(__name__)

STATE_FILE = LATEST_STATE
STATE_KEYS = ("iteration", "config", "models", "optimizers", "schedulers", "pools", "rng")
NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
LOSS_NAMES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")  # the reference's order


class TrainingFailed(RuntimeError):
    """The run itself went wrong (e.g. losses became NaN): the job failed, exit 1."""


@dataclass(frozen=True)
class CycleGANConfig:
    """Everything a CycleGAN run depends on; defaults are the reference's. `None` fields are resolved at start:
    iterations -> 200 epochs' worth (max(|A|, |B|) / batch_size per epoch), decay_iterations -> half of them,
    threads -> all cores available to this process."""

    source: Path
    target: Path
    output: Path
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    n_layers_d: int = 3
    load_width: int = 286
    crop_size: tuple[int, int] = (256, 256)
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    iterations: int | None = None
    decay_iterations: int | None = None
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    gan_mode: str = "lsgan"
    seed: int = 0
    num_workers: int = 2
    threads: int | None = None
    device: str = "auto"
    target_split: str = "train"
    sample_every: int = 400
    save_every: int = 5000
    log_every: int = 100

    def to_plain(self) -> dict[str, Any]:
        """Plain JSON types (paths as strings, sizes as lists), for config.json and the training state."""
        plain = dataclasses.asdict(self)
        for key, value in plain.items():
            if isinstance(value, Path):
                plain[key] = str(value)
            elif isinstance(value, tuple):
                plain[key] = list(value)
        return plain


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


def gan_loss(prediction: torch.Tensor, target_is_real: bool, gan_mode: str) -> torch.Tensor:
    """LSGAN: MSE to 1 (real) or 0 (fake) on raw scores; vanilla: BCE with logits."""
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if gan_mode == "lsgan":
        return nn.functional.mse_loss(prediction, target)
    if gan_mode == "vanilla":
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan_mode {gan_mode!r}")


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def train_step(
    models: CycleGANModels,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    pools: dict[str, ImagePool],
    real_A: torch.Tensor,
    real_B: torch.Tensor,
    config: CycleGANConfig,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One reference iteration: generators first (discriminators frozen), then discriminators.

    Returns the losses (reference names) and the images of this step (fake_B, rec_A, fake_A, rec_B).
    """
    m, mode = models, config.gan_mode
    fake_B = m.G_A(real_A)
    rec_A = m.G_B(fake_B)
    fake_A = m.G_B(real_B)
    rec_B = m.G_A(fake_A)

    _set_requires_grad([m.D_A, m.D_B], False)
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
    loss_G.backward()
    opt_G.step()

    _set_requires_grad([m.D_A, m.D_B], True)
    opt_D.zero_grad(set_to_none=True)
    for name, net, real, fake in (("D_A", m.D_A, real_B, fake_B), ("D_B", m.D_B, real_A, fake_A)):
        pooled = pools["fake_B" if name == "D_A" else "fake_A"].query(fake)
        loss = 0.5 * (gan_loss(net(real), True, mode) + gan_loss(net(pooled.detach()), False, mode))
        loss.backward()
        losses[name] = loss
    opt_D.step()

    values = {k: float(losses[k].detach()) for k in LOSS_NAMES}
    visuals = {"fake_B": fake_B.detach(), "rec_A": rec_A.detach(), "fake_A": fake_A.detach(), "rec_B": rec_B.detach()}
    return values, visuals


def lr_factor(iteration: int, iterations: int, decay_iterations: int) -> float:
    """The reference's `linear` policy in iterations: 1 for the first iterations - decay_iterations, then
    1 - k / (decay_iterations + 1) at the k-th decaying iteration."""
    constant = iterations - decay_iterations
    return 1.0 - max(0, iteration + 1 - constant) / float(decay_iterations + 1)


def _patch_map_side(side: int, n_layers: int) -> int:
    """Side of the PatchGAN output map for an input side (k4 p1 convs: n_layers with stride 2, then two stride 1)."""
    for _ in range(n_layers):
        side = (side - 2) // 2 + 1
    return side - 2


def resolve_config(config: CycleGANConfig, dataset_size: int) -> CycleGANConfig:
    """Fill the `None` defaults and check the values, with errors naming the command-line flag."""
    crop_w, crop_h = config.crop_size
    if crop_w % 4 or crop_h % 4:
        raise UserError(f"--crop-size {crop_w}x{crop_h}: width and height must be multiples of 4 (ResNet generator)")
    if min(_patch_map_side(crop_w, config.n_layers_d), _patch_map_side(crop_h, config.n_layers_d)) < 1:
        raise UserError(f"--crop-size {crop_w}x{crop_h} is too small for a {config.n_layers_d}-layer discriminator")
    if config.load_width < crop_w:
        raise UserError(f"--load-width {config.load_width} is smaller than the crop width {crop_w} (--crop-size)")
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
    if config.n_blocks < 0:
        raise UserError(f"--n-blocks must be >= 0, got {config.n_blocks}")
    if config.gan_mode not in ("lsgan", "vanilla"):
        raise UserError(f"gan_mode {config.gan_mode!r}: expected lsgan or vanilla")
    iterations = config.iterations or 200 * math.ceil(dataset_size / config.batch_size)
    decay = iterations // 2 if config.decay_iterations is None else config.decay_iterations
    if iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {iterations}")
    if not 0 <= decay <= iterations:
        raise UserError(f"--decay-iterations {decay} must be between 0 and --iterations {iterations}")
    threads = config.threads or default_workers()
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return dataclasses.replace(config, iterations=iterations, decay_iterations=decay, threads=threads, device=device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sample_grid(real_A: torch.Tensor, real_B: torch.Tensor, visuals: dict[str, torch.Tensor]) -> np.ndarray:
    """Two rows of the batch's first image: real A, fake B, rec A / real B, fake A, rec B."""
    rows = [
        [real_A[0], visuals["fake_B"][0], visuals["rec_A"][0]],
        [real_B[0], visuals["fake_A"][0], visuals["rec_B"][0]],
    ]
    return np.concatenate([np.concatenate([to_uint8(t) for t in row], axis=1) for row in rows], axis=0)


class _Run:
    """The mutable state of one run: networks, optimizers, schedulers, pools, iteration."""

    def __init__(self, config: CycleGANConfig, device: torch.device) -> None:
        self.config = config
        self.models = build_models(config)
        for _, net in self.models.items():
            net.to(device)
        betas = (config.beta1, 0.999)
        g_params = list(self.models.G_A.parameters()) + list(self.models.G_B.parameters())
        d_params = list(self.models.D_A.parameters()) + list(self.models.D_B.parameters())
        self.opt_G = torch.optim.Adam(g_params, lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(d_params, lr=config.lr, betas=betas)

        def rule(i: int) -> float:
            return lr_factor(i, config.iterations, config.decay_iterations)

        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, rule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, rule)
        self.pools = {"fake_A": ImagePool(config.pool_size), "fake_B": ImagePool(config.pool_size)}
        self.iteration = 0

    def state(self) -> dict[str, Any]:
        return {
            "format": TRAIN_STATE_FORMAT,
            "version": 1,
            "iteration": self.iteration,
            "config": self.config.to_plain(),
            "models": {name: cpu_state_dict(net) for name, net in self.models.items()},
            "optimizers": {"G": self.opt_G.state_dict(), "D": self.opt_D.state_dict()},
            "schedulers": {"G": self.sched_G.state_dict(), "D": self.sched_D.state_dict()},
            "pools": {name: [t.cpu() for t in pool.images] for name, pool in self.pools.items()},
            "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any], path: Path, device: torch.device) -> None:
        refuse_settings_changed(path, state["config"], _fixed_settings(self.config), CYCLEGAN_FIXED)
        for name, net in self.models.items():
            net.load_state_dict(state["models"][name], strict=True)
        self.opt_G.load_state_dict(state["optimizers"]["G"])
        self.opt_D.load_state_dict(state["optimizers"]["D"])
        self.sched_G.load_state_dict(state["schedulers"]["G"])
        self.sched_D.load_state_dict(state["schedulers"]["D"])
        for name, pool in self.pools.items():
            pool.images = [t.to(device) for t in state["pools"][name]]
        self.iteration = int(state["iteration"])
        set_rng_state(state["rng"])

    def save(self, output: Path, numbered: bool, state: bool = True) -> None:
        """Network files first, the training state last: a kill in between resumes from the older state and
        rewrites the same network files. `state=False` at the end of a run that will not keep it."""
        for name, net in self.models.items():
            save_generator(output / f"latest_net_{name}.pth", net)
            if numbered:
                save_generator(output / f"{self.iteration}_net_{name}.pth", net)
        if state:
            save_train_state(self.state(), output)


def _fixed_settings(config: CycleGANConfig) -> dict[str, Any]:
    """The settings a resumed run must repeat, as config.json and the training state record them."""
    plain = config.to_plain()
    return {field: plain[field] for field in CYCLEGAN_FIXED}


def _start(config: CycleGANConfig, resume: bool, device: torch.device) -> _Run:
    """A new run, or the run in the output folder continued from its training state (with `resume`)."""
    output = Path(config.output)
    run = _Run(config, device)
    if not resume:
        return run
    state = load_train_state(output, TRAIN_STATE_FORMAT, STATE_KEYS)
    if state is None:
        log.info("no training state in %s yet; starting a new run", output)
        return run
    run.restore(state, output / STATE_FILE, device)
    log.info("resuming %s at iteration %d of %d", output, run.iteration, config.iterations)
    return run


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
    output = Path(config.output)
    if not resume:
        refuse_rerun(output)
    dataset = unpaired_dataset(
        config.source, config.target, config.load_width, config.crop_size, config.target_split, config.seed
    )
    config = resolve_config(config, len(dataset))
    if resume:
        settings = _fixed_settings(config)
        done = finished_iteration(output, CYCLEGAN_FINISHED, settings, CYCLEGAN_FIXED, config.iterations)
        if done is not None:
            log.info("%s: already trained to iteration %d; nothing to do", output, done)
            return output
    torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    seed_everything(config.seed)
    run = _start(config, resume, device)

    output.mkdir(parents=True, exist_ok=True)
    remove_partials(output)  # temporaries of a killed run's writes
    (output / "samples").mkdir(exist_ok=True)
    summary = {
        "config": config.to_plain(),
        "generator": generator_spec(config),
        "parameters": {name: count_parameters(net) for name, net in run.models.items()},
        "images": {"A": len(dataset.samples_a), "B": len(dataset.samples_b)},
        "torch_version": torch.__version__,
    }
    write_json(output / "config.json", summary)
    with train_log(output, append=resume):
        _loop(run, dataset, device, keep_train_state, stop)
        write_finished(output, CYCLEGAN_FINISHED, run.iteration, config.to_plain())
        if not keep_train_state:
            remove_train_states(output)
        log.info("CycleGAN trained to iteration %d in %s", run.iteration, output)
    return output


def _loop(run: _Run, dataset: Dataset, device: torch.device, keep_train_state: bool, stop: StopRequest | None) -> None:
    """Train `run` to config.iterations: log lines, sample grids and saves on their schedules."""
    config, output = run.config, Path(run.config.output)
    # Endless batches from the run's position: epoch iteration // per_epoch, its earlier batches skipped unloaded.
    loader = DataLoader(
        dataset,
        batch_sampler=EpochBatches(len(dataset), config.batch_size, config.seed, start=run.iteration),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        generator=loader_generator(config.seed),
        worker_init_fn=ignore_stop_signals,
    )
    batches = iter(loader)
    started = time.perf_counter()
    start_iteration = run.iteration
    log.info("start at iteration %d of %d (settings in config.json)", run.iteration, config.iterations)
    with progress_bar(config.iterations, run.iteration, "cyclegan") as bar:
        while run.iteration < config.iterations:
            batch = next(batches)
            real_A = batch["A"].to(device, non_blocking=True)
            real_B = batch["B"].to(device, non_blocking=True)
            lr = run.opt_G.param_groups[0]["lr"]
            losses, visuals = train_step(run.models, run.opt_G, run.opt_D, run.pools, real_A, real_B, config)
            run.sched_G.step()
            run.sched_D.step()
            run.iteration += 1
            it, last = run.iteration, run.iteration == config.iterations
            if not all(math.isfinite(v) for v in losses.values()):
                raise TrainingFailed(f"losses became non-finite at iteration {it}: {losses}")
            bar.update(1)
            bar.set_postfix({k: f"{losses[k]:.3f}" for k in ("G_A", "G_B", "D_A", "D_B")}, refresh=False)
            if it % config.log_every == 0 or last:
                per_it = (time.perf_counter() - started) / (it - start_iteration)
                text = " ".join(f"{k} {losses[k]:.4f}" for k in LOSS_NAMES)
                log.info("iteration %d: lr %.6g %s, %.3f s/it", it, lr, text, per_it)
            if it % config.sample_every == 0 or last:
                write_image(output / "samples" / f"iter_{it:06d}.png", _sample_grid(real_A, real_B, visuals))
            saved = it % config.save_every == 0 or last
            if saved:
                run.save(output, numbered=it % config.save_every == 0, state=keep_train_state or not last)
            if stop is not None and stop.requested and not last:
                log.info("%s at iteration %d: saving the training state", stop.signal_name, it)
                if not saved:
                    run.save(output, numbered=False)
                raise TrainingStopped(stop.signum, it, output / STATE_FILE)
