"""What a bit-identical resume needs: a data order that is a pure function of (seed, epoch), RNG states as plain
data, and training-state files kept in two generations.

Data order. A DataLoader's shuffle draws its permutation from the global torch RNG when an epoch starts and its
workers reseed themselves from it, so a fresh loader after a restart neither knows where the killed epoch was nor
repeats its crops. Here epoch `e` is a permutation drawn from a torch.Generator seeded by (seed, e), cut into fixed
batches, and every item carries the key (epoch, index) from which its own augmentation RNG is seeded. Resuming at
global batch `b` is then `b // batches_per_epoch` and skipping `b % batches_per_epoch` batches of that epoch without
loading them; the worker count and the loader's prefetching change nothing.

State files. `save_train_state` writes the new state to a hidden partial file, then renames the current latest state
to `previous_train_state.pt` and the partial file to `latest_train_state.pt`: each save writes one state and copies
nothing (a state is twice or three times the model's weights: ~320 MB for deeplabv3_resnet50 with SGD), on every
file system. Its bytes depend only on its values: pickle writes a string or tuple that it has seen before as a
back-reference to the same object, and which equal strings are one object differs between a fresh run and a resumed
one (its optimizer keys come from the loaded file), so the state is rebuilt with fresh containers and interned
strings first. `load_train_state` falls back to the previous state, with one warning line naming both files, when
the latest is missing (a kill between the two renames) or unreadable (truncated, garbage, another kind of file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Sampler

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import partial_path
from uda_trt.train.checkpoints import load_checkpoint_file
from uda_trt.train.run_folder import LATEST_STATE, PREVIOUS_STATE

log = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged"

ItemKey = tuple[int, int]  # (epoch, index into the dataset)
T = TypeVar("T")


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends on every part (sha256 of their text): independent streams per (seed, epoch, ...),
    the same in every process and on every machine (unlike `hash`)."""
    text = "/".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def item_key(key: ItemKey | int) -> ItemKey:
    """(epoch, index) from a loader key; a bare index (e.g. `dataset[3]` in a notebook) means epoch 0."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return 0, int(key)


def shard(order: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank `rank`'s share of `order` among `world_size` processes (train.distributed): positions rank,
    rank + world_size, ... of its first len(order) - len(order) % world_size items. The remainder is dropped so that
    every process gets as many; no item goes to two processes. With world_size 1: all of `order`."""
    usable = len(order) - len(order) % world_size
    return list(order[rank:usable:world_size])


class EpochBatches(Sampler[list[ItemKey]]):
    """Endless batches of (epoch, index) keys, starting at global batch `start`.

    Epoch e is `torch.randperm(size)` under a generator seeded by (seed, e); with `world_size` processes
    (train.distributed) this one takes its `shard` of it (size // world_size items); then it is cut into
    `batch_size` slices (the last, shorter one dropped when `drop_last`). Used as a DataLoader's `batch_sampler`;
    training is bounded by iterations, so the stream never ends. With several processes, each logs its share of
    every epoch at DEBUG level (`rank R of W, epoch E: items [...]`).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if size < 1 or batch_size < 1 or start < 0:
            raise ValueError(
                f"EpochBatches: size {size}, batch_size {batch_size}, start {start} (need 1, 1, 0 or more)"
            )
        if not 0 <= rank < world_size or size < world_size:
            raise ValueError(f"EpochBatches: {size} items cannot be shared by rank {rank} of {world_size} processes")
        if drop_last and size // world_size < batch_size:
            raise ValueError(f"drop_last with {size // world_size} items and batch size {batch_size} leaves no batch")
        self.size, self.batch_size, self.seed, self.start, self.drop_last = size, batch_size, seed, start, drop_last
        self.rank, self.world_size = rank, world_size

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch (of this process's share)."""
        full, rest = divmod(self.size // self.world_size, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch_order(self, epoch: int) -> list[int]:
        """The dataset indices of epoch `epoch`, in the order they are served (all processes' together)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "epoch", epoch))
        return torch.randperm(self.size, generator=generator).tolist()

    def rank_order(self, epoch: int) -> list[int]:
        """This process's share of epoch `epoch`, in the order it serves them (`epoch_order` in a plain run)."""
        if self.world_size == 1:
            return self.epoch_order(epoch)
        share = shard(self.epoch_order(epoch), self.rank, self.world_size)
        log.debug("rank %d of %d, epoch %d: items %s", self.rank, self.world_size, epoch, share)
        return share

    def __iter__(self) -> Iterator[list[ItemKey]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            order = self.rank_order(epoch)
            for b in range(skip, self.per_epoch):
                yield [(epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]
            epoch, skip = epoch + 1, 0


def loader_generator(seed: int) -> torch.Generator:
    """A generator for a DataLoader's `generator=`: creating its iterator then draws from this, not the global RNG."""
    return torch.Generator().manual_seed(derived_seed(seed, "loader"))


# --- RNG states --------------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as plain types and tensors (readable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- state files --------------------------------------------------------------------------------------------------


def save_train_state(state: Mapping[str, Any], folder: Path) -> None:
    """Write `state` as the latest state and keep the one it replaces as the previous one (module docstring).

    The new state is complete and fsynced under a hidden partial name before the renames; a kill between the two
    renames leaves no latest state, and a resume falls back to the previous one, the state just before."""
    folder = Path(folder)
    latest, previous = folder / LATEST_STATE, folder / PREVIOUS_STATE
    partial = partial_path(latest)
    try:
        with open(partial, "wb") as handle:
            torch.save(canonical(state), handle)
            handle.flush()
            os.fsync(handle.fileno())
        if latest.exists():
            os.replace(latest, previous)
        os.replace(partial, latest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def canonical(obj: Any) -> Any:
    """`obj` with every dict, list and tuple rebuilt and every string interned (tensors and numbers as they are), so
    that pickling it gives the same bytes whatever history made its objects shared or distinct."""
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, OrderedDict):  # a module's state_dict: keep its type and the version metadata it carries
        out = OrderedDict((canonical(key), canonical(value)) for key, value in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = canonical(obj._metadata)  # type: ignore[attr-defined]
        return out
    if isinstance(obj, Mapping):
        return {canonical(key): canonical(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [canonical(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(canonical(item) for item in obj)
    return obj


def load_train_state(folder: Path, fmt: str, required: tuple[str, ...]) -> dict[str, Any] | None:
    """The latest usable training state in `folder`, or None when there is none at all.

    A state is usable when it loads with weights_only=True, carries `format == fmt` and every key in `required`.
    When the latest is not, the previous one is used, with one warning line naming both; the damaged latest is
    renamed to `latest_train_state.pt.damaged` so the next save does not rotate it over the good previous one.
    When neither is usable: UserError (exit 2) naming both.
    """
    folder = Path(folder)
    latest, previous = folder / LATEST_STATE, folder / PREVIOUS_STATE
    if not latest.exists() and not previous.exists():
        return None
    state, problem = _usable(latest, fmt, required)
    if state is not None:
        return state
    fallback, fallback_problem = _usable(previous, fmt, required)
    if fallback is None:
        raise UserError(f"{latest}: {problem}, and {previous}: {fallback_problem}; no training state to resume from")
    if latest.exists():
        os.replace(latest, latest.with_name(latest.name + DAMAGED_SUFFIX))
        kept = f" (kept as {latest.name}{DAMAGED_SUFFIX})"
    else:
        kept = ""
    log.warning("%s: %s%s; resuming from %s (iteration %s)", latest, problem, kept, previous, fallback["iteration"])
    return fallback


def _usable(path: Path, fmt: str, required: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """(state, "") when `path` is a usable state, else (None, what is wrong with it)."""
    if not path.exists():
        return None, "missing"
    try:
        state = load_checkpoint_file(path)
    except UserError as error:
        return None, str(error.message).removeprefix(f"{path}: ")
    if not isinstance(state, dict) or state.get("format") != fmt:
        return None, f"not a {fmt} file"
    missing = [key for key in required if key not in state]
    if missing:
        return None, f"damaged {fmt} file (no {', '.join(missing)})"
    return state, ""
