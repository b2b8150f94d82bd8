"""Crash-safe files: every output is written to a hidden `.NAME.partial` beside its target, fsynced, then renamed.

A killed job therefore leaves either the old file, the new file, or a `.partial` that the next run removes; never
half a file under the real name. JSON goes through one writer with one policy for values JSON cannot hold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path) -> Path:
    """The hidden temporary name `path` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(handle)` on a hidden partial file beside `path`, fsync it, then rename it to `path`.

    Any failure (including KeyboardInterrupt) removes the partial file and re-raises, so the target is either
    untouched or complete. `write` may be `torch.save`-like: it receives an open binary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_plain(value: Any) -> Any:
    """`value` as plain JSON types: NaN and infinities become None (JSON has no such numbers, and a reader's
    `null` is unambiguous), numpy scalars and arrays become numbers and lists, paths and other objects strings,
    dataclasses dicts. Dict keys become strings."""
    if value is None:
        return None
    if isinstance(value, float):  # subclasses (numpy.float64 among them) become plain floats
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):  # subclasses (e.g. torch's TorchVersion) become plain strings, safe to unpickle
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_plain(dataclasses.asdict(value))
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, without importing numpy here
    if callable(tolist):
        return json_plain(tolist())
    return str(value)


def json_text(payload: Any) -> str:
    """Indented JSON text of `payload` after `json_plain`, ending in a newline."""
    return json.dumps(json_plain(payload), indent=2, allow_nan=False) + "\n"


def write_json(path: Path | str, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically, with `json_plain`'s policy for values JSON cannot hold."""
    atomic_write_text(path, json_text(payload))


def remove_partials(root: Path | str) -> int:
    """Delete the hidden `.NAME.partial` files a killed job left under `root` (symlinks not followed).

    Only names `atomic_write` makes are touched; returns how many were removed (and logs it when any were).
    """
    removed = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run under %s", removed, root)
    return removed
