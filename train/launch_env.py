"""Whether this process was started by torchrun, read from the environment torchrun gives each of its processes.

torchrun (torch.distributed.run) starts one process per GPU, on one machine or several, and tells each its place in
WORLD_SIZE, RANK and LOCAL_RANK; a plain run has none of them (or WORLD_SIZE 1) and trains exactly as before. The
commands ask here before importing torch, so a combination that distributed training does not support is refused
in one line, and the processes other than the first (rank 0) keep their console quiet: rank 0 alone logs, draws the
progress bar and writes files (train.distributed).

Torch-free, so the commands read it before paying for the torch import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from uda_trt.runtime.errors import UserError


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place among the processes of one training run: `rank` of `world_size`, `local_rank` on its
    machine (the GPU it uses). world_size 1 is a plain single-process run."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The process that logs and writes: rank 0, or the only one."""
        return self.rank == 0


def launch_env() -> LaunchEnv:
    """This process's LaunchEnv from torchrun's variables; a single-process run without them. Malformed values are
    a UserError naming the variable."""
    values = {}
    for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
        text = os.environ.get(name, "").strip()
        try:
            values[name] = int(text) if text else default
        except ValueError:
            raise UserError(f"environment variable {name}={text!r}: expected an integer (torchrun sets it)") from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UserError(f"WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}: not a valid place in a torchrun job")
    if world == 1:
        return LaunchEnv()
    return LaunchEnv(world, rank, local)


def refuse_under_torchrun(what: str) -> None:
    """UserError when this process is one of several started by torchrun: `what` (e.g. an option) trains in one
    process only."""
    env = launch_env()
    if env.distributed:
        raise UserError(
            f"{what} is not supported with distributed training (torchrun, WORLD_SIZE={env.world_size}); "
            "run it as one process"
        )


def quiet_other_ranks(verbose: bool) -> None:
    """Under torchrun, the processes other than rank 0 log errors only, or, with --verbose, everything (each line
    prefixed with its rank, as every process writes to the same console). A single-process run is left as it is."""
    env = launch_env()
    if not env.distributed:
        return
    root = logging.getLogger()
    prefix = f"%(levelname)s: rank {env.rank}: %(message)s"
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(prefix))
    if not env.main and not verbose:
        root.setLevel(logging.ERROR)
