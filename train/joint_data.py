"""The data of joint CycleGAN + segmenter training: which images are labelled, and items that carry their labels.

"Dataset size fixed" (the study this follows): the segmenter learns from a budget of N labelled images, N =
min(|source|, |target train|), of which fraction * N (rounded half up) are target images and the rest source
images; fraction 0 is source only, 1 target only. Which ones is a pure function of (seed, fraction, dataset): each
domain's sorted sample keys in a permutation seeded by (seed, domain), cut at its count, so a larger fraction's
labelled target set holds every smaller fraction's. CycleGAN itself still sees every image of both domains (it
needs no labels); only the segmenter terms use labels, and only those of the chosen images.

Items are UnpairedImages' ({"A", "B"} in [-1, 1], A by index, B at random, crops and flips from the item's own RNG)
plus `A_label`/`B_label` (train IDs of the same crop, 255 = ignore; all 255 for an image outside the labelled set)
and `A_labelled`/`B_labelled`. Label maps are scaled with nearest neighbour and cropped and flipped with their image.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from uda_trt.runtime.datasets import Sample, samples_for
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import LogOnce, read_rgb, resize_label, resize_rgb
from uda_trt.runtime.jobs.files import write_json
from uda_trt.runtime.labels import IGNORE
from uda_trt.train.image_data import first_readable, item_rng, random_crop_flip, to_tensor
from uda_trt.train.resume import ItemKey, derived_seed, item_key
from uda_trt.train.segmentation_data import load_pair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledMix:
    """The labelled images of one run: N, and the sorted keys of the chosen source and target samples."""

    fraction: float
    seed: int
    budget: int
    source_keys: tuple[str, ...]
    target_keys: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        """What config.json records: counts, the keys, and a sha256 of each key list (one key a line)."""

        def digest(keys: tuple[str, ...]) -> str:
            return hashlib.sha256("".join(f"{key}\n" for key in keys).encode()).hexdigest()

        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "budget": self.budget,
            "source_labelled": len(self.source_keys),
            "target_labelled": len(self.target_keys),
            "source_keys_sha256": digest(self.source_keys),
            "target_keys_sha256": digest(self.target_keys),
            "source_keys": list(self.source_keys),
            "target_keys": list(self.target_keys),
        }


def _chosen(samples: Sequence[Sample], count: int, seed: int, domain: str) -> tuple[str, ...]:
    keys = sorted(sample.key for sample in samples)
    order = np.random.default_rng(derived_seed(seed, "labelled", domain)).permutation(len(keys))
    return tuple(sorted(keys[int(i)] for i in order[:count]))


def labelled_mix(source: Sequence[Sample], target: Sequence[Sample], fraction: float, seed: int) -> LabelledMix:
    """Choose round(fraction * N) labelled target and N minus that many labelled source samples (module docstring)."""
    if not 0.0 <= fraction <= 1.0:
        raise UserError(f"--target-label-fraction {fraction}: must be between 0 and 1")
    budget = min(len(source), len(target))
    n_target = math.floor(fraction * budget + 0.5)  # half up, not Python's half-to-even
    return LabelledMix(
        fraction=fraction,
        seed=seed,
        budget=budget,
        source_keys=_chosen(source, budget - n_target, seed, "source"),
        target_keys=_chosen(target, n_target, seed, "target"),
    )


def scale_and_crop(
    image: np.ndarray, label: np.ndarray | None, load_width: int, crop: tuple[int, int], rng: random.Random
) -> tuple[np.ndarray, np.ndarray | None]:
    """As unpaired_data.scale_width_and_crop (width to `load_width`, height at least the crop's, one random crop and
    flip), applied alike to the image and, when there is one, its label map (nearest neighbour)."""
    height, width = image.shape[:2]
    if width != load_width or height < crop[1]:
        size = (load_width, max(round(load_width * height / width), crop[1]))
        image = resize_rgb(image, size)
        label = None if label is None else resize_label(label, size)
    windows = random_crop_flip([image] if label is None else [image, label], crop, rng)
    return windows[0], (windows[1] if label is not None else None)


class JointImages(Dataset):
    """Unpaired A/B items with the labels of the labelled mix (module docstring); an unreadable image or label is a
    per-sample fault, logged once and replaced by the next readable sample of its domain."""

    def __init__(
        self,
        samples_a: list[Sample],
        samples_b: list[Sample],
        mix: LabelledMix,
        load_width: int,
        crop: tuple[int, int],
        seed: int = 0,
    ) -> None:
        if not samples_a or not samples_b:
            raise ValueError("both domains need at least one image")
        self.samples_a, self.samples_b, self.mix = samples_a, samples_b, mix
        self.labelled = {"A": frozenset(mix.source_keys), "B": frozenset(mix.target_keys)}
        self.load_width, self.crop, self.seed = load_width, crop, seed
        self.log_once = LogOnce(log)

    def __len__(self) -> int:
        return max(len(self.samples_a), len(self.samples_b))

    def __getitem__(self, key: ItemKey | int) -> dict:
        epoch, index = item_key(key)
        rng = item_rng(self.seed, epoch, index)
        b_index = rng.randint(0, len(self.samples_b) - 1)  # drawn first, as UnpairedImages does
        item = {}
        for domain, samples, at in (("A", self.samples_a, index % len(self.samples_a)), ("B", self.samples_b, b_index)):
            sample, (image, label) = first_readable(
                samples, at, lambda s, d=domain: self._read(s, d), self.log_once, f"domain {domain}: no readable images"
            )
            image, label = scale_and_crop(image, label, self.load_width, self.crop, rng)
            crop_w, crop_h = self.crop
            item[domain] = to_tensor(image)
            item[f"{domain}_label"] = (
                torch.full((crop_h, crop_w), IGNORE, dtype=torch.long)
                if label is None
                else torch.from_numpy(np.ascontiguousarray(label)).long()
            )
            item[f"{domain}_labelled"] = label is not None
            item[f"{domain}_path"] = str(sample.image)
        return item

    def _read(self, sample: Sample, domain: str) -> tuple[np.ndarray, np.ndarray | None]:
        if sample.key in self.labelled[domain]:
            return load_pair(sample, self.log_once)
        return read_rgb(sample.image, self.log_once), None


def labelled_crops(dataset: JointImages, count: int, rng: random.Random) -> dict[str, list[torch.Tensor]]:
    """`count` crops of the labelled mix's images for F_T's precise BN (train.joint_training): samples drawn
    uniformly with replacement from the labelled source and target images together, each scaled, cropped and flipped
    as a training item is, every draw from `rng` (never a global RNG or the training items' own). {"A": source crops,
    "B": target crops} in [-1, 1]; an unreadable image is replaced by the next readable labelled one of its domain."""
    pools = {domain: sorted((s for s in samples if s.key in dataset.labelled[domain]), key=lambda s: s.key)
             for domain, samples in (("A", dataset.samples_a), ("B", dataset.samples_b))}  # fmt: skip
    drawn = [(domain, index) for domain in ("A", "B") for index in range(len(pools[domain]))]
    crops: dict[str, list[torch.Tensor]] = {"A": [], "B": []}

    def read(sample: Sample) -> np.ndarray:
        return read_rgb(sample.image, dataset.log_once)

    for _ in range(count):
        domain, index = drawn[rng.randrange(len(drawn))]
        _, image = first_readable(
            pools[domain], index, read, dataset.log_once, f"domain {domain}: no readable labelled images"
        )
        crops[domain].append(to_tensor(scale_and_crop(image, None, dataset.load_width, dataset.crop, rng)[0]))
    return crops


def joint_dataset(
    source: Path, target: Path, fraction: float, load_width: int, crop: tuple[int, int], seed: int
) -> JointImages:
    """Domain A from `source` (GTA5 layout, labelled unless fraction is 1), B from `target`'s Cityscapes train split
    (labelled when fraction > 0), and the labelled mix of (seed, fraction)."""
    layout_a, samples_a = samples_for(Path(source), split="train", require_labels=fraction < 1)
    layout_b, samples_b = samples_for(Path(target), split="train", require_labels=fraction > 0)
    if layout_a != "gta5" or layout_b != "cityscapes":
        raise UserError(
            f"joint training needs a GTA5-layout --source and a Cityscapes-layout --target (got {layout_a} at "
            f"{source} and {layout_b} at {target})"
        )
    mix = labelled_mix(samples_a, samples_b, fraction, seed)
    log.info(
        "labelled mix at fraction %g: %d of %d source and %d of %d target images (budget %d)",
        fraction,
        len(mix.source_keys),
        len(samples_a),
        len(mix.target_keys),
        len(samples_b),
        mix.budget,
    )
    return JointImages(samples_a, samples_b, mix, load_width, crop, seed)


def write_mix_dataset(dataset: JointImages, out: Path) -> Path:
    """The labelled mix as one GTA5-layout dataset, OUT/images/NNNNN.png + OUT/labels/NNNNN.png (source first, then
    target, each in key order; hard links where the file system allows, else copies), for train-segmenter: the
    baseline that learns from the same labelled images without style transfer. OUT/mix.json maps each number to its
    origin. Cityscapes labelIds PNGs hold label IDs as 8-bit grey levels, which the GTA5 reader accepts."""
    out = Path(out)
    chosen = [
        *(s for s in dataset.samples_a if s.key in dataset.labelled["A"]),
        *(s for s in dataset.samples_b if s.key in dataset.labelled["B"]),
    ]
    for folder in ("images", "labels"):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    origins = {}
    for number, sample in enumerate(chosen, start=1):
        stem = f"{number:05d}"
        for source, folder in ((sample.image, "images"), (sample.label, "labels")):
            destination = out / folder / f"{stem}{Path(source).suffix.lower()}"
            try:
                os.link(source, destination)
            except OSError:
                shutil.copyfile(source, destination)
        origins[stem] = {"image": str(sample.image), "label": str(sample.label)}
    write_json(out / "mix.json", {"mix": dataset.mix.record(), "images": origins})
    return out
