"""Unpaired image data for CycleGAN: domain A (source) and domain B (target), sampled independently.

Preprocessing is the reference's `scale_width_and_crop`, its advice for wide images such as Cityscapes: scale so the
width equals `load_width` keeping the aspect ratio (never below the crop height), take a random `crop` (width, height),
flip horizontally with p=0.5, and map to [-1, 1]. Pairs are unaligned as in the reference: A is taken by index (in
the epoch's shuffled order), B at random, so an epoch is max(len(A), len(B)) samples. The B choice, crops and flips
of an item come from an RNG seeded by (seed, epoch, index) (train.resume), not from a global or per-worker RNG, so a
resumed run sees exactly the items an uninterrupted one would.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from uda_trt.runtime.datasets import Sample, samples_for
from uda_trt.runtime.imageio import LogOnce, read_rgb, resize_rgb
from uda_trt.train.image_data import first_readable, item_rng, random_crop_flip, to_tensor
from uda_trt.train.resume import ItemKey, item_key

log = logging.getLogger(__name__)


def scale_width_and_crop(
    image: np.ndarray, load_width: int, crop: tuple[int, int], rng: random.Random | None = None, flip: bool = True
) -> np.ndarray:
    """H x W x 3 uint8 -> crop[1] x crop[0] x 3 uint8: scale to width `load_width` (aspect kept, height at least
    the crop height), random crop, random horizontal flip."""
    rng = rng or random.Random()
    crop_w, crop_h = crop
    if load_width < crop_w:
        raise ValueError(f"load width {load_width} is smaller than the crop width {crop_w}")
    height, width = image.shape[:2]
    if width != load_width or height < crop_h:
        new_h = max(round(load_width * height / width), crop_h)
        image = resize_rgb(image, (load_width, new_h))
    return random_crop_flip([image], crop, rng, flip)[0]


class UnpairedImages(Dataset):
    """Items are {"A": tensor, "B": tensor, "A_path": str, "B_path": str}; A by index, B at random.

    Keys are (epoch, index) (train.resume.EpochBatches serves them; a bare index means epoch 0). An unreadable image
    is a per-sample fault: logged once and replaced by the next readable one in its domain.
    """

    def __init__(
        self, samples_a: list[Sample], samples_b: list[Sample], load_width: int, crop: tuple[int, int], seed: int = 0
    ) -> None:
        if not samples_a or not samples_b:
            raise ValueError("both domains need at least one image")
        self.samples_a = samples_a
        self.samples_b = samples_b
        self.load_width = load_width
        self.crop = crop
        self.seed = seed
        self.log_once = LogOnce(log)

    def __len__(self) -> int:
        return max(len(self.samples_a), len(self.samples_b))

    def __getitem__(self, key: ItemKey | int) -> dict:
        epoch, index = item_key(key)
        rng = item_rng(self.seed, epoch, index)
        path_a, image_a = self._read(self.samples_a, index % len(self.samples_a))
        path_b, image_b = self._read(self.samples_b, rng.randint(0, len(self.samples_b) - 1))
        return {
            "A": to_tensor(scale_width_and_crop(image_a, self.load_width, self.crop, rng)),
            "B": to_tensor(scale_width_and_crop(image_b, self.load_width, self.crop, rng)),
            "A_path": str(path_a),
            "B_path": str(path_b),
        }

    def _read(self, samples: list[Sample], index: int) -> tuple[Path, np.ndarray]:
        none = f"{samples[0].image.parent}: no readable images in this domain"
        sample, image = first_readable(samples, index, lambda s: read_rgb(s.image, self.log_once), self.log_once, none)
        return sample.image, image


def unpaired_dataset(
    source: Path, target: Path, load_width: int, crop: tuple[int, int], target_split: str = "train", seed: int = 0
) -> UnpairedImages:
    """Domain A from `source` (GTA5 layout or an image folder), B from `target` (Cityscapes `target_split` or a
    folder); `seed` seeds every item's B choice, crop and flip. Labels are not needed, so they are not required."""
    layout_a, samples_a = samples_for(Path(source), split="train", require_labels=False)
    layout_b, samples_b = samples_for(Path(target), split=target_split, require_labels=False)
    log.info(
        "domain A: %d images (%s, %s); domain B: %d images (%s, %s)",
        len(samples_a),
        layout_a,
        source,
        len(samples_b),
        layout_b,
        target,
    )
    return UnpairedImages(samples_a, samples_b, load_width, crop, seed)
