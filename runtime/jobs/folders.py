"""Claiming an output folder, and refusing a rerun that asks for something else than the run already there.

Every job that writes a folder records what defines its run in a marker file (`manifest.json`, `study.json`,
`synthetic.json`, a training state). A rerun into the same folder continues that run; a rerun with a different
setting is refused in one line that names the flag, so work is never mixed or silently lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uda_trt.runtime.errors import UserError


def holds_user_files(folder: Path) -> bool:
    """Whether `folder` exists and holds anything but hidden files (locks, journals, partial writes)."""
    return folder.is_dir() and any(not name.startswith(".") for name in os.listdir(folder))


def claim_output_folder(
    folder: Path,
    *,
    marker: str,
    command: str,
    flag: str = "--output",
    overwrite: bool | None = None,
) -> bool:
    """Create `folder`, or accept it when it is empty or holds `marker` (a previous `command` run); returns whether
    the marker is there.

    A path that is not a folder, or a non-empty folder without the marker, is refused in one line naming `flag`.
    `overwrite` says whether the command has `--overwrite` (None: it has not); when True, any folder is accepted.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag}: {folder} exists and is not a folder")
    has_marker = (folder / marker).exists()
    if not has_marker and not overwrite and holds_user_files(folder):
        remedy = "choose an empty folder" + (", or pass --overwrite to write into it" if overwrite is False else "")
        raise UserError(f"{flag}: {folder} is not empty and holds no {marker} of a {command} run; {remedy}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{flag}: cannot create {folder} ({error.strerror})") from None
    return has_marker


def short_value(value: Any) -> str:
    """A setting's value for a one-line message: JSON text; paths and hashes whole, only very long values cut."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:60] + "..." if len(text) > 120 else text


def refuse_changed(
    record: Path,
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    flags: Mapping[str, str],
    remedy: str,
) -> None:
    """Raise a one-line UserError naming the flag of the first setting in `current` whose value differs in
    `previous` (what `record` holds from the earlier run); `remedy` says what the user can do instead."""
    for key, value in current.items():
        before = previous.get(key)
        if before != value:
            raise UserError(
                f"{record}: the previous run used {flags.get(key, key)} {short_value(before)}, "
                f"this one {short_value(value)}; {remedy}"
            )
