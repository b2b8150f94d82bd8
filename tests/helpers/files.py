"""What a reader of an output folder sees: visible files, whether any is partial, and whether a run touched
anything outside its output folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def visible_paths(root: Path) -> list[Path]:
    """Files a reader would pick up under `root`, sorted: no hidden file or folder on the way."""
    return [
        path
        for path in sorted(Path(root).rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]


def visible_files(root: Path) -> dict[str, bytes]:
    """Every file a reader would pick up (no hidden file or folder, no job's `.log`, whose lines carry times),
    relative path -> bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() for path in visible_paths(root) if path.suffix != ".log"
    }


def count_visible(folder: Path) -> int:
    """Visible files under `folder` (recursive, hidden names skipped); 0 when it does not exist yet."""
    if not folder.is_dir():
        return 0
    return sum(1 for _, _, names in os.walk(folder) for name in names if not name.startswith("."))


def assert_nothing_partial(root: Path) -> None:
    """Every visible image under `root` decodes and every visible JSON file parses."""
    from uda_trt.runtime.imageio import read_rgb

    for relative, data in visible_files(root).items():
        if relative.endswith(".png") or relative.endswith(".jpg"):
            read_rgb(Path(root) / relative)  # raises SampleError when truncated
        elif relative.endswith(".json"):
            json.loads(data)


def assert_readable(root: Path) -> None:
    """`assert_nothing_partial`, and every visible checkpoint loads with weights_only=True and every ONNX parses."""
    import onnx
    import torch

    assert_nothing_partial(root)
    for path in visible_paths(root):
        if path.suffix in (".pt", ".pth"):
            torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".onnx":
            onnx.load(path)


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` except those under `skip`: relative path -> (size, mtime), symlinks not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip or skip in path.parents:
                continue
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


def watch_untouched(root: Path, output: Path) -> Callable[[], None]:
    """Call before a run; call the result after it: fails when anything under `root` outside `output` was created,
    changed or removed."""
    before = snapshot(root, output)

    def check() -> None:
        after = snapshot(root, output)
        created = sorted(set(after) - set(before))
        changed = sorted(k for k in before if after.get(k) != before[k])
        assert not created and not changed, (created, changed)

    return check


def pth_bytes(folder: Path) -> dict[str, bytes]:
    """The .pt/.pth files directly in `folder`, name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".pt", ".pth")}


def copy_files(files: list[Path], folder: Path) -> Path:
    """Copy `files` into the new folder `folder` (flat); return it."""
    folder.mkdir(parents=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    return folder


def png_digests(root: Path) -> dict[str, str]:
    """sha256 of every PNG under `root`, relative path -> hex digest (manifests hold timings, so they are left out)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*.png"))
    }
