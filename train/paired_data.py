"""Paired image data for pix2pix: each item is an input image and the target image it should translate into.

The pairs come from train.paired_files (three layouts, checked before training). Preprocessing is the reference's
pix2pix `resize_and_crop`: both images resized to `load_size` (width, height; the aspect ratio is not kept), one
random `crop` and one horizontal flip (p=0.5) applied to both, so the pair stays aligned, then [-1, 1]. `direction`
BtoA makes B the input, as the reference's --direction does. Crops and flips come from an RNG seeded by
(seed, epoch, index), as in train.unpaired_data, so a resumed run sees the items an uninterrupted one would. A file
that fails to decode here is a per-sample fault: logged once, the next readable pair is used instead.
"""

from __future__ import annotations

import logging

import numpy as np
from torch.utils.data import Dataset

from uda_trt.runtime.errors import SampleError
from uda_trt.runtime.imageio import LogOnce, read_rgb, resize_rgb
from uda_trt.train.image_data import first_readable, item_rng, random_crop_flip, to_tensor
from uda_trt.train.paired_files import Pair
from uda_trt.train.resume import ItemKey, item_key

log = logging.getLogger(__name__)

DIRECTIONS = ("AtoB", "BtoA")


class PairedImages(Dataset):
    """Items {"input", "target": 3 x crop_h x crop_w tensors in [-1, 1], "input_path", "target_path": str}.

    Keys are (epoch, index) (train.resume.EpochBatches serves them; a bare index means epoch 0).
    """

    def __init__(
        self,
        pairs: list[Pair],
        aligned: bool,
        load_size: tuple[int, int],
        crop: tuple[int, int],
        direction: str = "AtoB",
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if not pairs:
            raise ValueError("no pairs")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: expected one of {DIRECTIONS}")
        self.pairs, self.aligned, self.load_size, self.crop = pairs, aligned, load_size, crop
        self.direction, self.flip, self.seed = direction, flip, seed
        self.log_once = LogOnce(log)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: ItemKey | int) -> dict:
        epoch, index = item_key(key)
        rng = item_rng(self.seed, epoch, index)
        none = f"{self.pairs[0].a.parent}: no readable image pairs"
        pair, (a, b) = first_readable(self.pairs, index, self._read, self.log_once, none)
        resized = [resize_rgb(image, self.load_size) for image in (a, b)]
        a, b = random_crop_flip(resized, self.crop, rng, self.flip)
        (source, image), (target, truth) = (pair.a, a), (pair.b, b)
        if self.direction == "BtoA":
            (source, image), (target, truth) = (target, truth), (source, image)
        return {
            "input": to_tensor(image),
            "target": to_tensor(truth),
            "input_path": str(source),
            "target_path": str(target),
        }

    def _read(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) as H x W x 3 uint8; a file changed since listing (odd width, sizes apart) is a sample fault."""
        if self.aligned:
            both = read_rgb(pair.a, self.log_once)
            if both.shape[1] % 2:
                raise SampleError(pair.a, f"width {both.shape[1]} is odd; not an A|B image")
            half = both.shape[1] // 2
            return both[:, :half], both[:, half:]
        a, b = read_rgb(pair.a, self.log_once), read_rgb(pair.b, self.log_once)
        if a.shape != b.shape:
            raise SampleError(pair.b, f"size {b.shape[1]}x{b.shape[0]} differs from {pair.a}'s")
        return a, b
