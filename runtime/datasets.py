"""Readers for the dataset layouts of docs/contracts.md ("Dataset layouts"): GTA5, Cityscapes and image folders.

A reader only lists files (image path, label path, an output key); decoding happens in `runtime.imageio`, one sample
at a time, so a bad file is a per-sample fault and not a failure of the listing. Layout mistakes (missing folder,
wrong layout, an image without its label) are user errors: one line naming the path.
Readers ignore what they do not recognise, hidden files, `.partial` files and our own manifest.json/report.json.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import IMAGE_SUFFIXES
from uda_trt.runtime.jobs.files import PARTIAL_SUFFIX

LAYOUTS = ("gta5", "cityscapes", "folder")
GTA5_IMAGE_SUFFIXES = (".png", ".jpg")
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelIds.png"
_IGNORED_NAMES = frozenset({"manifest.json", "report.json"})


@dataclass(frozen=True)
class Sample:
    """One input: `key` is the POSIX relative output path without suffix (GTA5 "00001", Cityscapes
    "frankfurt/frankfurt_000000_000294", folder "sub/name")."""

    key: str
    image: Path
    label: Path | None


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(PARTIAL_SUFFIX) or name in _IGNORED_NAMES


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such folder ({what})")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder ({what})")


def _missing_labels_error(missing: list[Path]) -> UserError:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return UserError(f"{missing[0]}: label file missing for its image{more}; {len(missing)} label(s) missing in all")


def _labels_by_stem(labels_dir: Path) -> dict[str, Path]:
    """The PNG label files of a GTA5 labels/ folder by stem; the suffix is matched in any case, as images' are."""
    if not labels_dir.is_dir():
        return {}
    labels: dict[str, Path] = {}
    for path in sorted(labels_dir.iterdir()):
        if path.suffix.lower() == ".png" and path.is_file() and not _ignored(path.name):
            if path.stem in labels:
                raise UserError(f"{path}: same name as {labels[path.stem]} apart from the suffix's case; keep one")
            labels[path.stem] = path
    return labels


def gta5_samples(root: Path, require_labels: bool = True) -> list[Sample]:
    """GTA5 layout: ROOT/images/NNNNN.png (or .jpg) with ROOT/labels/NNNNN.png, sorted by name."""
    root = Path(root)
    _require_dir(root, "GTA5 dataset root")
    images_dir, labels_dir = root / "images", root / "labels"
    _require_dir(images_dir, "a GTA5-layout root holds images/ and labels/")
    images = sorted(
        p
        for p in images_dir.iterdir()
        if p.is_file() and not _ignored(p.name) and p.suffix.lower() in GTA5_IMAGE_SUFFIXES
    )
    if not images:
        raise UserError(f"{images_dir}: no .png or .jpg images found")
    if require_labels:
        _require_dir(labels_dir, "a GTA5-layout root holds images/ and labels/")
    labels = _labels_by_stem(labels_dir)
    samples, missing = [], []
    for image in images:
        label = labels.get(image.stem)
        if label is None and require_labels:
            missing.append(labels_dir / f"{image.stem}.png")
        samples.append(Sample(key=image.stem, image=image, label=label))
    if missing:
        raise _missing_labels_error(missing)
    duplicates = [key for key, count in Counter(s.key for s in samples).items() if count > 1]
    if duplicates:
        raise UserError(f"{images_dir}: two images share the name {duplicates[0]!r} (.png and .jpg); keep one")
    return samples


def _cityscapes_split_dir(root: Path, kind: str, split: str) -> Path:
    root = Path(root)
    _require_dir(root, "Cityscapes dataset root")
    split_dir = root / kind / split
    if not split_dir.is_dir():
        available = sorted(p.name for p in (root / kind).iterdir() if p.is_dir()) if (root / kind).is_dir() else []
        hint = (
            f"; splits present: {', '.join(available)}" if available else f"; expected ROOT/{kind}/{{split}}/{{city}}/"
        )
        raise UserError(f"{split_dir}: no such folder (not a Cityscapes-layout root for split {split!r}{hint})")
    return split_dir


def cityscapes_samples(root: Path, split: str, require_labels: bool = True) -> list[Sample]:
    """Cityscapes layout: leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png + gtFine/.../{stem}_gtFine_labelIds.png."""
    root = Path(root)
    image_dir = _cityscapes_split_dir(root, "leftImg8bit", split)
    samples, missing = [], []
    for image in sorted(image_dir.glob(f"*/*{CITYSCAPES_IMAGE_SUFFIX}")):
        if _ignored(image.name):
            continue
        city, stem = image.parent.name, image.name[: -len(CITYSCAPES_IMAGE_SUFFIX)]
        label = root / "gtFine" / split / city / f"{stem}{CITYSCAPES_LABEL_SUFFIX}"
        if not label.is_file():
            if require_labels:
                missing.append(label)
            label = None
        samples.append(Sample(key=f"{city}/{stem}", image=image, label=label))
    if not samples:
        raise UserError(f"{image_dir}: no {{city}}/*{CITYSCAPES_IMAGE_SUFFIX} images found")
    if missing:
        raise _missing_labels_error(missing)
    return samples


def cityscapes_ground_truth(root: Path, split: str) -> list[tuple[str, Path]]:
    """All (stem, labelIds path) pairs of gtFine/{split}, sorted: what the official evaluator scores against.

    Needs no images, so predictions can be scored on a ground-truth-only copy of the dataset.
    """
    label_dir = _cityscapes_split_dir(Path(root), "gtFine", split)
    found = [
        (p.name[: -len(CITYSCAPES_LABEL_SUFFIX)], p)
        for p in sorted(label_dir.glob(f"*/*{CITYSCAPES_LABEL_SUFFIX}"))
        if not _ignored(p.name)
    ]
    if not found:
        raise UserError(f"{label_dir}: no {{city}}/*{CITYSCAPES_LABEL_SUFFIX} ground-truth files found")
    return found


def folder_samples(root: Path) -> list[Sample]:
    """Every image under ROOT (recursive, sorted), keyed by its relative path without suffix; no labels."""
    root = Path(root)
    _require_dir(root, "image folder")
    samples: dict[str, Sample] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(_ignored(part) for part in relative.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.is_file():
            continue
        key = relative.with_suffix("").as_posix()
        if key in samples:
            raise UserError(f"{path}: same name as {samples[key].image} apart from the suffix; keep one")
        samples[key] = Sample(key=key, image=path, label=None)
    if not samples:
        raise UserError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return list(samples.values())


def detect_layout(root: Path) -> str:
    """ "gta5" if ROOT/images exists (ROOT/labels beside it, or missing: a reader says so), "cityscapes" if
    ROOT/leftImg8bit exists, else "folder"."""
    root = Path(root)
    if (root / "images").is_dir():
        return "gta5"
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    return "folder"


def has_labels(root: Path, layout: str, split: str = "train") -> bool:
    """Whether a GTA5 or Cityscapes root has its label folder (labels/, gtFine/{split}); False for a folder."""
    root = Path(root)
    if layout == "gta5":
        return (root / "labels").is_dir()
    if layout == "cityscapes":
        return (root / "gtFine" / split).is_dir()
    return False


def folder_hint(root: Path) -> str | None:
    """A better --input when an image folder is part of a labelled layout (labels would otherwise be dropped)."""
    root = Path(root)
    if root.name == "images" and (root.parent / "labels").is_dir():
        return f"this is the images/ folder of a GTA5-layout root: pass --input {root.parent} to carry its labels"
    if root.name == "leftImg8bit":
        return f"this is the leftImg8bit/ folder of a Cityscapes root: pass --input {root.parent} --split SPLIT"
    if root.parent.name == "leftImg8bit":
        return (
            f"this is a split of a Cityscapes root: pass --input {root.parent.parent} --split {root.name} "
            "to carry its labels"
        )
    return None


def samples_for(
    root: Path, layout: str = "auto", split: str = "train", require_labels: bool = True
) -> tuple[str, list[Sample]]:
    """List a dataset's samples in the given (or detected) layout; returns (layout, samples)."""
    root = Path(root)
    _require_dir(root, "dataset root")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "gta5":
        return layout, gta5_samples(root, require_labels)
    if layout == "cityscapes":
        return layout, cityscapes_samples(root, split, require_labels)
    if layout == "folder":
        return layout, folder_samples(root)
    raise UserError(f"unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")
