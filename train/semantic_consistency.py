"""CyCADA's semantic-consistency loss (Hoffman et al., ICML 2018) for CycleGAN: a frozen segmenter f, trained on
source labels, should label a translated image as it labels the original:

    sem = CE(f(G_A(a)), argmax f(a)) + CE(f(G_B(b)), argmax f(b))

(A = source, B = target; each CE the mean over pixels). CyCADA's release adds both terms to the generators' loss
unweighted, so `DEFAULT_WEIGHT` is 1.0. The segmenter is a project segmenter checkpoint (train.checkpoints), rebuilt
with train.segmenters, in eval mode (its BatchNorm statistics never move), every parameter frozen and in no
optimizer: gradients flow through it into the generators only.

The segmenter sees what it was trained on: RGB x / 255 normalised with its checkpoint's mean and std, at its working
scale. Its `scale` multiplies full-size images, while CycleGAN crops come from images already scaled to
--load-width, so each domain's crops are resized by scale * native width / load width (the native width: the
domain's first readable image) before the segmenter runs; bilinear, as the exported segmenter graph does, and
differentiable, so the generators' outputs keep their gradient.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from uda_trt.runtime.datasets import Sample
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import LogOnce, read_rgb
from uda_trt.train.checkpoints import load_segmenter_checkpoint
from uda_trt.train.image_data import first_readable
from uda_trt.train.run_folder import holds_run

log = logging.getLogger(__name__)

REQUIRED = frozenset({"architecture", "num_classes", "scale", "normalization"})
DEFAULT_WEIGHT = 1.0  # CyCADA release (cycle_gan_semantic_model.py): loss_G += loss_sem_BA + loss_sem_AB


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_segmenter(path: Path) -> dict[str, Any]:
    """The segmenter checkpoint at `path`, loaded on CPU and checked; anything else is a one-line UserError naming
    --semantic-loss (a missing file, a generator, a training state, a config without what the loss needs). Weights
    that do not fit their architecture are found when the model is built (`frozen_segmenter`)."""
    try:
        checkpoint = load_segmenter_checkpoint(path)
        config = checkpoint.get("config")
        if not isinstance(config, dict) or not set(config) >= REQUIRED:
            raise UserError(f"{path}: damaged segmenter checkpoint (its config lacks {', '.join(sorted(REQUIRED))})")
        scale = config["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise UserError(f"{path}: segmenter checkpoint has a non-positive working scale {config['scale']!r}")
    except UserError as error:
        raise UserError(f"--semantic-loss {error.message}") from None
    return checkpoint


def frozen_segmenter(checkpoint: dict[str, Any], path: Path) -> nn.Module:
    """The checkpoint's model in eval mode with every parameter frozen (requires_grad False)."""
    from uda_trt.train.segmenters import build_segmenter_from_checkpoint  # torchvision: only runs that use it pay

    try:
        model = build_segmenter_from_checkpoint(checkpoint)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:  # load_state_dict: keys or shapes do not fit
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--semantic-loss {path}: damaged segmenter checkpoint ({first})") from None
    except UserError as error:
        raise UserError(f"--semantic-loss {path}: {error.message}") from None
    model.requires_grad_(False)
    return model.eval()


def native_width(samples: Sequence[Sample], domain: str) -> int:
    """Width of the first readable image of a domain: the size the segmenter's working scale refers to."""
    _, width = first_readable(
        samples, 0, lambda s: read_rgb(s.image).shape[1], LogOnce(log), f"domain {domain}: no readable images"
    )
    return int(width)


class SemanticConsistency:
    """The semantic loss of one run: a frozen segmenter, its input normalisation, one resize factor per domain, and
    the loss weight. Calling it gives the unweighted sum of both directions' cross-entropies."""

    def __init__(
        self, model: nn.Module, config: dict[str, Any], factors: dict[str, float], weight: float, device: torch.device
    ) -> None:
        self.model = model.to(device)
        self.factors = factors
        self.weight = weight
        normalization = config["normalization"]
        self.mean = torch.tensor(normalization["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(normalization["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def logits(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """Segmenter logits for CycleGAN tensors in [-1, 1] of `domain` (A or B), at the segmenter's working scale;
        differentiable in `images`."""
        x = (images + 1.0) * 0.5  # = RGB / 255
        factor = self.factors[domain]
        if factor != 1.0:
            x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        return self.model((x - self.mean) / self.std)["out"]

    def term(self, real: torch.Tensor, fake: torch.Tensor, domain: str) -> torch.Tensor:
        """CE(f(fake), argmax f(real)): `fake` translated from `real` (of `domain`), so it has `real`'s scale."""
        with torch.no_grad():
            target = self.logits(real, domain).argmax(1)
        return F.cross_entropy(self.logits(fake, domain), target)

    def __call__(
        self, real_A: torch.Tensor, fake_B: torch.Tensor, real_B: torch.Tensor, fake_A: torch.Tensor
    ) -> torch.Tensor:
        return self.term(real_A, fake_B, "A") + self.term(real_B, fake_A, "B")


@dataclass(frozen=True)
class SemanticSource:
    """A checked segmenter checkpoint and what config.json records of it."""

    path: Path
    checkpoint: dict[str, Any]
    sha256: str

    def summary(self, factors: dict[str, float]) -> dict[str, Any]:
        config = self.checkpoint["config"]
        return {
            "path": str(self.path.resolve()),
            "sha256": self.sha256,
            "architecture": config["architecture"],
            "scale": config["scale"],
            "resize": factors,
        }

    def refuse_changed_file(self, output: Path) -> None:
        """For --resume: the run in `output` recorded another sha256 of its segmenter (the file at the same path was
        replaced), so it would not continue the same run: UserError. --semantic-loss itself is a fixed setting."""
        record = Path(output) / "config.json"
        if not holds_run(Path(output)) or not record.is_file():
            return
        try:
            recorded = json.loads(record.read_text(encoding="utf-8")).get("semantic_loss") or {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return  # config.json is rewritten at each start; the training state checks the settings that matter
        if recorded.get("sha256") not in (None, self.sha256):
            raise UserError(
                f"--semantic-loss {self.path}: its sha256 {self.sha256[:12]}... differs from the "
                f"{recorded['sha256'][:12]}... the run in {output} started with (config.json); the file changed, so "
                "the run cannot continue the same way; restore it or choose another --output"
            )

    def loss(self, factors: dict[str, float], weight: float, device: torch.device) -> SemanticConsistency:
        model = frozen_segmenter(self.checkpoint, self.path)
        return SemanticConsistency(model, self.checkpoint["config"], factors, weight, device)


def open_semantic_source(path: Path) -> SemanticSource:
    """Read and check the --semantic-loss checkpoint (before any data is loaded)."""
    path = Path(path)
    checkpoint = read_segmenter(path)
    return SemanticSource(path, checkpoint, file_sha256(path))


def resize_factors(scale: float, widths: dict[str, int], load_width: int) -> dict[str, float]:
    """Per domain: scale * native width / load width (crops are at load width; the segmenter works at scale)."""
    return {domain: float(scale) * width / load_width for domain, width in widths.items()}
