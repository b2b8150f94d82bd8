"""`--shard I/N`: one of N jobs that together do what one job does, for schedulers without Ray (Slurm job arrays).

A shard takes a fixed part of the job's sorted sample list: the list is cut into consecutive units (a batch of the
engine, so every image meets the engine with the same neighbours as in an unsharded run, which keeps the union of the
shards' outputs byte-identical to it), and unit k goes to shard k mod N. It is a pure function of the sample list,
the unit and N: never of timing, of which shard starts first, or of what other shards did.

batch-translate shards share one output folder; each keeps its own bookkeeping under names that carry the shard
(`manifest.shard-0-of-4.json`, `.progress.shard-0-of-4.jsonl`, `.lock.shard-0-of-4`, ...), so N shards run at the
same time and each resumes like an unsharded job. `check_siblings` keeps the shards of one folder one job: same
options, same N. evaluate-seg shards each write their own metrics (with the raw confusion matrix); `merge-metrics`
sums them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from uda_trt.runtime.jobs.folders import refuse_changed

T = TypeVar("T")

# identity keys a shard adds to its job's identity, and the option behind them (for the one-line refusal)
SHARD_FLAGS = {"shard_index": "--shard (the index I of I/N)", "shard_count": "--shard (the number of shards N)"}
UNSHARDED = "none"  # the number of shards an unsharded run records, for the one-line refusal
_BOOKKEEPING = re.compile(r"manifest(\.shard-\d+-of-\d+)?\.json")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """What names this shard's files: `shard-0-of-4`."""
        return f"shard-{self.index}-of-{self.count}"

    def file_name(self, name: str) -> str:
        """This shard's own version of a bookkeeping file name: `manifest.json` -> `manifest.shard-0-of-4.json`,
        `.progress.jsonl` -> `.progress.shard-0-of-4.jsonl`, `.lock` -> `.lock.shard-0-of-4`."""
        stem, _, suffix = name.rpartition(".")
        return f"{name}.{self.tag}" if not stem else f"{stem}.{self.tag}.{suffix}"

    def select(self, items: Sequence[T], unit: int = 1) -> list[T]:
        """This shard's part of `items` (already sorted): unit k (items k*unit .. k*unit + unit - 1) goes to shard
        k mod count."""
        if unit < 1:
            raise ValueError(f"unit {unit}: must be at least 1")
        return [item for position, item in enumerate(items) if (position // unit) % self.count == self.index]

    def identity(self) -> dict[str, int]:
        """The keys a shard adds to its job's identity (`SHARD_FLAGS` names their option)."""
        return {"shard_index": self.index, "shard_count": self.count}

    def record(self, images: int) -> dict[str, int]:
        """What an output file says about the shard it came from."""
        return {"index": self.index, "count": self.count, "images": images}


def parse_shard(text: str) -> Shard:
    """`I/N` (e.g. `0/4`, or `$SLURM_ARRAY_TASK_ID/4`) with 0 <= I < N; raises ValueError saying what is wrong."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not of the form I/N (shard I of N, I from 0), e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"{text!r}: the number of shards N must be at least 1")
    if index >= count:
        raise ValueError(f"{text!r}: the shard index I must be below N (0 to {count - 1})")
    return Shard(index, count)


class ShardType(click.ParamType):
    """The `--shard I/N` option's type: a bad value is click's one-line usage error (exit 2)."""

    name = "I/N"

    def convert(self, value: Any, param, ctx) -> Shard:
        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


SHARD = ShardType()

SHARD_HELP = (
    "Do only shard I of N of the job (I from 0; e.g. --shard $SLURM_ARRAY_TASK_ID/4 in a Slurm job array): the "
    "sorted samples are cut into units (engine batches) and unit k goes to shard k mod N, so the N shards together "
    "do exactly what one run does."
)


def check_siblings(
    root: Path,
    command: str,
    own_manifest: str,
    identity: Mapping[str, Any],
    flags: Mapping[str, str],
) -> None:
    """Refuse a run whose options or number of shards differ from another run's bookkeeping in the same output
    folder (the other shards' manifests, or an unsharded run's manifest.json): one folder holds one job."""
    current = {key: value for key, value in identity.items() if key != "shard_index"}
    current["shard_count"] = identity.get("shard_count", UNSHARDED)
    for path in sorted(Path(root).glob("manifest*.json")):
        if path.name == own_manifest or not _BOOKKEEPING.fullmatch(path.name):
            continue
        try:
            other = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # its own run reports an unreadable manifest; nothing here to compare with
        before = other.get("identity") if isinstance(other, dict) and other.get("command") == command else None
        if not isinstance(before, dict):
            continue
        refuse_changed(
            path,
            {**before, "shard_count": before.get("shard_count", UNSHARDED)},
            current,
            {**flags, **SHARD_FLAGS},
            "one --output holds one job: give every shard the same options and the same N, or choose another "
            "--output (--overwrite redoes this run's samples with these options)",
        )


def sibling_marker(root: Path, own_manifest: str) -> str:
    """The manifest that shows `root` holds this command's job: our own, else another shard's (or the unsharded
    run's) manifest, else our own name (the folder must then be empty)."""
    if (Path(root) / own_manifest).exists():
        return own_manifest
    others = sorted(p.name for p in Path(root).glob("manifest*.json") if _BOOKKEEPING.fullmatch(p.name))
    return others[0] if others else own_manifest
