"""Data-parallel training across processes (torchrun), for the three trainers: the process group, how an epoch is
split between the processes, the wrapped networks and the few points where the processes must agree.

Under torchrun (train.launch_env) the command opens a process group (`process_group`: gloo on the CPU, nccl on
CUDA, each process on the GPU of its LOCAL_RANK) and the trainers ask `current()` where they stand; without torchrun
`current()` is a single process and every code path is the one a plain run always took, byte for byte.

- Data: each process trains on its own share of every epoch. The epoch's permutation is still the pure function of
  (seed, epoch) of train.resume; `train.resume.shard` gives rank r the positions r, r + W, r + 2W, ... of it, after
  dropping the last (size mod W) positions, so every process gets size // W items, no item goes to two processes,
  and which items are dropped changes with every epoch. `--batch-size` is per process: the global batch is W times
  it (DDP averages the gradients; the learning rate is not scaled).
- Networks: every trained network is wrapped in DistributedDataParallel, which averages gradients over the
  processes in backward; on CUDA, BatchNorm layers become SyncBatchNorm first (statistics over the global batch).
  SyncBatchNorm runs on GPUs only, so on the CPU each process keeps plain BatchNorm and DDP copies rank 0's running
  statistics to the others at every forward. A SyncBatchNorm layer has BatchNorm's parameter and buffer names, so
  `unwrap(net).state_dict()` has exactly the keys a single-process run saves.
- Random streams: every process builds the networks from the run's seed (DDP also copies rank 0's weights at
  start), then reseeds its global RNGs (dropout, CycleGAN's image pools) with its own seed derived from (seed,
  rank, iteration), at the start and at every resume. Crops and flips need nothing: each item's RNG is seeded by
  (seed, epoch, index) and the processes see different indices.
- GANs: G and D are separate DDP modules with their own optimizers and backward passes. While G updates, D's
  parameters are frozen (requires_grad False), so D's forward on the fakes passes gradients to G only and D's
  reducer neither gets nor expects any; a generator called several times in one step (cycle, identity) still gets
  one accumulated gradient per parameter in the one backward. Every parameter of a network thus gets its gradient in
  each backward of that network, and find_unused_parameters stays off. At each save the processes compare their
  weights (`check_weights`): a difference is a warning line.
- Agreement: every process must make the same collective calls in the same order, so whether to stop (a signal
  reached some of them) or to skip a batch is decided by all of them together (`any_of`, `all_of`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from uda_trt.runtime.errors import UserError
from uda_trt.train.launch_env import launch_env
from uda_trt.train.resume import derived_seed

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank `rank` of `world_size` (1: a plain run, every method a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, draws the progress bar and writes every file."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (e.g. rank 0 has finished writing a checkpoint)."""
        if self.active:
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the body first, the others once it is done (e.g. reading training states, where rank 0 may
        set a damaged file aside)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def any_of(self, flag: bool) -> bool:
        """True when `flag` is true in any process (a collective: every process calls it)."""
        return self._reduce(flag, dist.ReduceOp.MAX)

    def all_of(self, flag: bool) -> bool:
        """True when `flag` is true in every process (a collective: every process calls it)."""
        return self._reduce(flag, dist.ReduceOp.MIN)

    def _reduce(self, flag: bool, op: Any) -> bool:
        if not self.active:
            return flag
        device = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=op)
        return bool(value.item())

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value` (picklable), in rank order."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def refuse_unshared_state(self, output: Path, iteration: int) -> None:
        """After a resume: UserError unless every process resumed at the same `iteration` (those of another machine
        read a different, or no, --output folder). A collective: every process calls it."""
        iterations = self.gather(iteration)
        if len(set(iterations)) > 1:
            found = ", ".join(f"rank {rank}: {it}" for rank, it in enumerate(iterations))
            raise UserError(
                f"{output}: the processes found different training states (iteration {found}); to resume, --output "
                "must be one folder that every machine sees (a shared file system)"
            )

    def note_resumed_from(self, processes: int, path: Path) -> None:
        """One warning line (rank 0) when the state at `path` was saved by another number of processes: the run
        goes on, but each process's share of the data, so the data order, differs from an uninterrupted run's."""
        if processes != self.world_size and self.main:
            log.warning(
                "%s was saved by %d process(es) and resumes with %d: from here the data order differs from an "
                "uninterrupted run's",
                path,
                processes,
                self.world_size,
            )

    def check_weights(self, nets: Iterable[tuple[str, nn.Module]], iteration: int) -> bool:
        """Whether every process holds the same parameters in each of `nets` (name, network), as DDP's averaged
        gradients keep them: sha256 of each network's parameters, gathered (a collective: every process calls it).
        Rank 0 logs a DEBUG line when they agree, a WARNING naming the networks when they do not."""
        if not self.active:
            return True
        digests = {}
        for name, net in nets:
            digest = hashlib.sha256()
            for parameter in unwrap(net).parameters():
                digest.update(parameter.detach().cpu().numpy().tobytes())
            digests[name] = digest.hexdigest()
        everyone = self.gather(digests)
        differ = [name for name in digests if len({d[name] for d in everyone}) > 1]
        if self.main and differ:
            log.warning("iteration %d: the processes hold different weights in %s", iteration, ", ".join(differ))
        elif self.main:
            log.debug("iteration %d: weights identical in all %d processes", iteration, self.world_size)
        return not differ

    def wrap(self, net: nn.Module) -> nn.Module:
        """`net` for training in this process: itself in a plain run; else (on CUDA with its BatchNorm layers made
        SyncBatchNorm) wrapped in DistributedDataParallel, which starts it from rank 0's weights and buffers. The
        parameters stay the same objects, so optimizers built over `net` keep working."""
        if not self.active:
            return net
        parameter = next(net.parameters())
        if parameter.device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            return DistributedDataParallel(net, device_ids=[parameter.device.index])
        return DistributedDataParallel(net)

    def reseed(self, seed: int, iteration: int) -> None:
        """Give this process its own global random streams, from (seed, rank, iteration); no-op in a plain run."""
        if self.active:
            own = derived_seed(seed, "rank", self.rank, "iteration", iteration)
            random.seed(own)
            np.random.seed(own % 2**32)
            torch.manual_seed(own)


def current() -> Distributed:
    """This process's place in the initialised process group, or a plain run when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(dist.get_rank(), dist.get_world_size(), launch_env().local_rank)


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (what checkpoints are saved from), or `net` itself."""
    return net.module if isinstance(net, DistributedDataParallel) else net


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Distributed]:
    """Under torchrun: the process group of this run while inside (gloo for `device` cpu, nccl for cuda; auto means
    cuda when this machine has a GPU), with this process on the GPU of its LOCAL_RANK. Without torchrun: a plain run,
    nothing initialised."""
    env = launch_env()
    if not env.distributed:
        yield Distributed()
        return
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        here = current()
        here.barrier()  # every process is past its command's checks before rank 0 writes anything
        yield here
    finally:
        dist.destroy_process_group()
