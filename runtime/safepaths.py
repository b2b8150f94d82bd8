"""Path containment for jobs that derive output names from input names (docs/contracts.md, "Job outputs").

A dataset is untrusted input: a file may be a symlink to anything on the machine, and an output folder may hold a
symlinked sub-folder left by someone else. These checks keep reads inside the dataset and writes inside the output
folder; a violation is a per-sample fault (`SampleError`), so one hostile file is skipped and counted, not fatal.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from uda_trt.runtime.errors import SampleError


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` lies inside `root` once every symlink in both is resolved."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def check_input_inside(path: Path, root: Path) -> None:
    """Refuse an input file that is a symlink leading out of the dataset.

    Allowed: files inside `root`, and files inside the folder they are listed in (so a dataset whose `images/` is
    itself a symlink to another disk still works). Refused: e.g. `images/00001.png -> /etc/passwd`.
    """
    path = Path(path)
    if not (is_inside(path, root) or is_inside(path, path.parent)):
        raise SampleError(path, f"symlink to {path.resolve()}, outside the dataset {root}; not read")


def output_path(output_root: Path, relative: str, source: Path) -> Path:
    """`output_root / relative`, refusing a name that would leave `output_root`.

    `relative` is a POSIX path derived from an input name. Refused: absolute paths, empty or `..` parts, and a
    folder on the way that resolves outside `output_root` (a symlink planted in the output). `source` is the input
    the name came from, for the error message.
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or not rel.parts or any(part in ("", ".", "..") for part in rel.parts):
        raise SampleError(source, f"output name {relative!r} would leave the output folder; not written")
    target = Path(output_root).joinpath(*rel.parts)
    if not is_inside(target.parent, output_root):
        raise SampleError(
            source, f"output folder {target.parent} resolves to {target.parent.resolve()}, outside {output_root}"
        )
    return target
