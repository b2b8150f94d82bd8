"""What the GAN trainers' datasets share: tensors in [-1, 1] and back, one RNG per (epoch, item), one random crop and
flip applied alike to every image of an item, and the skip past an unreadable file.

The per-item RNG is what makes resume bit-identical (train.resume): an item's crop, flip (and CycleGAN's B choice)
depend on (seed, epoch, index) only, not on which process loaded the items before it. Applying one crop to several
images is what keeps a pix2pix pair aligned; CycleGAN crops its two unaligned images separately.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.imageio import LogOnce
from uda_trt.train.resume import derived_seed

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float in [-1, 1] (x / 127.5 - 1, the reference's normalisation)."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """3 x H x W in [-1, 1] -> H x W x 3 uint8 ((y + 1) * 127.5, rounded, clipped), for sample images."""
    image = ((tensor.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


def item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The RNG of one item of one epoch: the same in every process, whatever loaded the items before it."""
    return random.Random(derived_seed(seed, "item", epoch, index))


def random_crop_flip(
    images: Sequence[np.ndarray], crop: tuple[int, int], rng: random.Random, flip: bool = True
) -> list[np.ndarray]:
    """One random `crop` (width, height) window and, with `flip`, one horizontal flip with p=0.5, applied to every
    image of `images` (all of one size, at least the crop). Draws x, then y, then the flip from `rng`."""
    crop_w, crop_h = crop
    height, width = images[0].shape[:2]
    x = rng.randint(0, width - crop_w)
    y = rng.randint(0, height - crop_h)
    flipped = flip and rng.random() < 0.5
    out = []
    for image in images:
        window = image[y : y + crop_h, x : x + crop_w]
        out.append(np.ascontiguousarray(window[:, ::-1] if flipped else window))
    return out


def first_readable(
    items: Sequence[Item], index: int, read: Callable[[Item], Loaded], log_once: LogOnce, none_readable: str
) -> tuple[Item, Loaded]:
    """(item, read(item)) for items[index] or, when reading it raises SampleError, the next readable item after it
    (wrapping around); each skipped file is logged once. None readable: UserError(none_readable)."""
    for step in range(len(items)):
        item = items[(index + step) % len(items)]
        try:
            return item, read(item)
        except SampleError as exc:
            log_once(f"skip:{exc.path}", f"skipping unreadable image {exc}")
    raise UserError(none_readable)
