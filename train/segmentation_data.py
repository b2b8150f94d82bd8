"""Segmentation training data: (image, train-ID label) pairs from GTA5- or Cityscapes-layout samples.

Images are read by runtime.imageio (RGB uint8 with the docs/contracts.md conversions), labels hold Cityscapes label IDs
and become train IDs (others -> 255, ignored by the loss). Training samples are resized by the working scale, randomly
cropped (padded with ignore where smaller) and flipped; held-out samples are whole images at the working scale with
their labels at full size, so the held-out score follows the evaluation protocol (logits upsampled to the label).
A broken sample (unreadable, or label and image sizes differ) is logged and dropped from its batch, never a crash.
A training item's crop and flip come from a generator seeded by (seed, epoch, index) (train.resume), so they do not
depend on the worker that loads it or on what was loaded before: a resumed run sees the items an uninterrupted one
would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from uda_trt.runtime.datasets import Sample
from uda_trt.runtime.errors import SampleError
from uda_trt.runtime.imageio import LogOnce, read_label, read_rgb, resize_label, resize_rgb
from uda_trt.runtime.labels import IGNORE, label_ids_to_train_ids
from uda_trt.train.resume import ItemKey, derived_seed, item_key
from uda_trt.train.segmenters import NORMALIZATION

log = logging.getLogger(__name__)

_MEAN = torch.tensor(NORMALIZATION["mean"]).view(3, 1, 1)
_STD = torch.tensor(NORMALIZATION["std"]).view(3, 1, 1)


def split_holdout(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split training samples into (train, held_out) by a seeded permutation of their sorted keys.

    The held-out part chooses the best checkpoint; it comes from the training data, never from the target
    evaluation set. At least one sample stays on each side when the fraction is positive and there are two or more.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(samples, key=lambda sample: sample.key)
    n_held = round(val_fraction * len(ordered))
    if val_fraction > 0 and len(ordered) >= 2:
        n_held = min(max(n_held, 1), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    held = {int(i) for i in order[:n_held]}
    train = [sample for i, sample in enumerate(ordered) if i not in held]
    held_out = [sample for i, sample in enumerate(ordered) if i in held]
    return train, held_out


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) after multiplying by the working scale, at least 1 x 1."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_pair(sample: Sample, log_once: LogOnce | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one sample as (H x W x 3 RGB uint8, H x W train IDs uint8); sizes must agree."""
    image = read_rgb(sample.image, log_once)
    if sample.label is None:
        raise SampleError(sample.image, "has no label file")
    label = label_ids_to_train_ids(read_label(sample.label))
    if label.shape != image.shape[:2]:
        raise SampleError(
            sample.label,
            f"label is {label.shape[1]}x{label.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}",
        )
    return image, label


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float32, x / 255 normalised with NORMALIZATION."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return (tensor - _MEAN) / _STD


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one training item of one epoch: the same in every process."""
    return torch.Generator().manual_seed(derived_seed(seed, "item", epoch, index))


def random_crop(
    image: np.ndarray, label: np.ndarray, size: tuple[int, int], generator: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A random size = (w, h) window; sides shorter than the crop are padded (image 0, label IGNORE) first."""
    width, height = size
    pad_h, pad_w = max(height - image.shape[0], 0), max(width - image.shape[1], 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    top = int(torch.randint(0, image.shape[0] - height + 1, (), generator=generator).item())
    left = int(torch.randint(0, image.shape[1] - width + 1, (), generator=generator).item())
    return image[top : top + height, left : left + width], label[top : top + height, left : left + width]


class TrainSegmentationDataset(Dataset):
    """Training pairs: scaled, randomly cropped and flipped; (3 x h x w float, h x w int64) or None if broken.

    Keys are (epoch, index) (train.resume.EpochBatches serves them; a bare index means epoch 0); the crop and flip
    of a key are the same in every process.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        scale: float,
        crop_size: tuple[int, int] | None,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.seed = seed
        self.scale = scale
        self.crop_size = crop_size
        self.flip = flip
        self.log_once = LogOnce(log)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: ItemKey | int) -> tuple[torch.Tensor, torch.Tensor] | None:
        epoch, index = item_key(key)
        generator = item_generator(self.seed, epoch, index)
        try:
            image, label = load_pair(self.samples[index], self.log_once)
        except SampleError as error:
            log.warning("skipped training sample %s", error)
            return None
        size = scaled_size(image.shape[1], image.shape[0], self.scale)
        image, label = resize_rgb(image, size), resize_label(label, size)
        if self.crop_size is not None:
            image, label = random_crop(image, label, self.crop_size, generator)
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image, label = image[:, ::-1], label[:, ::-1]
        return to_tensor(image), torch.from_numpy(np.ascontiguousarray(label)).long()


class HeldOutSegmentationDataset(Dataset):
    """Held-out pairs: the whole image at the working scale and its label at full size, or None if broken."""

    def __init__(self, samples: Sequence[Sample], scale: float) -> None:
        self.samples = list(samples)
        self.scale = scale
        self.log_once = LogOnce(log)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray] | None:
        """(normalised scaled image tensor, scaled RGB uint8 for sample pictures, full-size train IDs)."""
        try:
            image, label = load_pair(self.samples[index], self.log_once)
        except SampleError as error:
            log.warning("skipped held-out sample %s", error)
            return None
        scaled = resize_rgb(image, scaled_size(image.shape[1], image.shape[0], self.scale))
        return to_tensor(scaled), scaled, label


def collate_skipping_broken(batch: list) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Stack the readable training pairs; returns (images, labels, number skipped), or None if none were readable."""
    good = [item for item in batch if item is not None]
    if not good:
        return None
    # Without a crop, an odd-sized image (GTA5 has a few) cannot share a batch: keep the first item's size.
    good = [item for item in good if item[0].shape == good[0][0].shape]
    images, labels = zip(*good, strict=True)
    return torch.stack(images), torch.stack(labels), len(batch) - len(good)


def collate_single(batch: list) -> tuple | None:
    """Held-out loader (batch size 1, images may differ in size): the one item, or None if it was broken."""
    return batch[0]
