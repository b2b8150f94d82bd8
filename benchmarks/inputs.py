"""run-uda's dataset roots, checked before any work starts.

A study trains for minutes (demo) to days (full) before it first reads the target's val split, so a wrong root
must fail at the start, not after the training: every split a stage will read is listed now with the same readers
the stages use, and a layout mistake is one line naming the flag, the root and what is missing (exit 2).
Listing reads folder entries only (no image is decoded), so even the real datasets take about a second.
"""

from __future__ import annotations

from pathlib import Path

from uda_trt.runtime.datasets import cityscapes_ground_truth, cityscapes_samples, gta5_samples
from uda_trt.runtime.errors import UserError

TRANSLATOR_SPLIT = "train"  # the target images CycleGAN learns the style from (train.cyclegan's target_split)


def check_study_inputs(source_root: Path, target_root: Path, val_split: str = "val") -> None:
    """Refuse (UserError) a --source that is not a labelled GTA5-layout root, or a --target that lacks Cityscapes
    train images (for the translator) or val images with their gtFine labels (for the evaluation)."""
    _checked("--source", source_root, "a GTA5-layout root with images/ and labels/", gta5_samples, require_labels=True)
    what = "a Cityscapes-layout root"
    _checked("--target", target_root, f"{what} with leftImg8bit/{TRANSLATOR_SPLIT}", cityscapes_samples,
             TRANSLATOR_SPLIT, require_labels=False)  # fmt: skip
    _checked("--target", target_root, f"{what} with gtFine/{val_split} labels", cityscapes_ground_truth, val_split)
    _checked("--target", target_root, f"{what} with labelled {val_split} images", cityscapes_samples, val_split,
             require_labels=True)  # fmt: skip


def check_paired_inputs(target_root: Path, val_split: str = "val") -> None:
    """Refuse (UserError) a --target for the photo-to-label study that lacks labelled Cityscapes train images with
    their gtFine colour images (pix2pix learns photo -> colour; the segmenters learn from the labelIds of the same
    images) or labelled val images (every model is scored there)."""
    from uda_trt.train.paired_files import cityscapes_pairs  # torch-free: lists files, reads no image

    what = "a Cityscapes-layout root"
    _checked("--target", target_root, f"{what} with labelled {TRANSLATOR_SPLIT} images", cityscapes_samples,
             TRANSLATOR_SPLIT, require_labels=True)  # fmt: skip
    _checked("--target", target_root, f"{what} with gtFine/{TRANSLATOR_SPLIT} *_gtFine_color.png label images",
             cityscapes_pairs, TRANSLATOR_SPLIT)  # fmt: skip
    _checked("--target", target_root, f"{what} with gtFine/{val_split} labels", cityscapes_ground_truth, val_split)
    _checked("--target", target_root, f"{what} with labelled {val_split} images", cityscapes_samples, val_split,
             require_labels=True)  # fmt: skip


def _checked(flag: str, root: Path, expected: str, reader, *args, **kwargs) -> None:
    """Run `reader(root, ...)`; its one-line UserError becomes one that names `flag` and what it must be."""
    if not Path(root).is_dir():
        raise UserError(f"{flag} {root}: no such folder (expected {expected})")
    try:
        reader(root, *args, **kwargs)
    except UserError as error:
        raise UserError(f"{flag} {root}: not {expected}: {error.format_message()}") from None
