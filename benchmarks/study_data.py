"""What a run-uda study's images were: how many of each kind, and at which sizes, for its report.

Sizes are read from the files themselves (image headers only, the first SIZE_PROBE files of each set), not taken
from a config, so the report says what the translator and the segmenters actually saw: real datasets mix sizes
(GTA5 does), and batch-translate may write at the working size or at each input's own size.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from uda_trt.runtime.datasets import cityscapes_samples, gta5_samples
from uda_trt.runtime.errors import UserError

SIZE_PROBE = 20


def image_sizes(paths: list[Path], limit: int = SIZE_PROBE) -> dict:
    """{"probed": n, "sizes": {"WxH": count}} over the first `limit` of `paths` that open (header only)."""
    sizes: Counter[str] = Counter()
    for path in paths[:limit]:
        try:
            with Image.open(path) as image:
                sizes[f"{image.width}x{image.height}"] += 1
        except (OSError, UnidentifiedImageError):
            continue  # a broken file is the jobs' business (skipped and counted there), not the report's
    return {"probed": sum(sizes.values()), "sizes": dict(sizes.most_common())}


def study_images(source_root: Path, translated_root: Path, target_root: Path, val_split: str) -> dict:
    """Count and sizes of the source, translated, target-train and target-val images of a study."""

    def entry(paths: list[Path]) -> dict:
        return {"count": len(paths), **image_sizes(paths)}

    translated = sorted(
        p
        for p in (Path(translated_root) / "images").glob("*")
        if p.suffix.lower() in (".png", ".jpg") and not p.name.startswith(".")
    )
    try:
        target_train = [s.image for s in cityscapes_samples(target_root, "train", require_labels=False)]
    except UserError:  # checked before the study; gone since
        target_train = []
    return {
        "source": entry([s.image for s in gta5_samples(source_root, require_labels=False)]),
        "translated": entry(translated),
        "target_train": entry(target_train),
        "target_val": entry([s.image for s in cityscapes_samples(target_root, val_split, require_labels=False)]),
    }


def sizes_text(entry: dict) -> str:
    """`1914x1052` or `1914x1052 (18 of 20 probed), 1280x720 (2)`; what was not probed is said as such."""
    if not entry["sizes"]:
        return "n/a (no images found)" if not entry["count"] else "n/a (none of the first images could be opened)"
    if len(entry["sizes"]) == 1:
        size = next(iter(entry["sizes"]))
        return size if entry["probed"] == entry["count"] else f"{size} (the first {entry['probed']} images)"
    parts = [f"{size} ({count})" for size, count in entry["sizes"].items()]
    return ", ".join(parts) + f" among the first {entry['probed']} images"
