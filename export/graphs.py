"""The graphs that are exported: a trained model wrapped with its pre- and post-processing, uint8 in, uint8 out.

Putting normalisation, resizing, argmax and the casts inside the graph means the engine on the device does them,
and the host only decodes, batches and encodes (docs/architecture.md). The wrappers hold the trained model as a
submodule and never modify it. Tensor layouts follow docs/contracts.md ("Artifacts"): input `images` uint8 NHWC RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class TranslatorGraph(nn.Module):
    """uint8 NHWC RGB -> x/127.5 - 1 -> generator -> (y + 1) * 127.5, rounded, clipped -> uint8 NHWC RGB.

    The same normalisation as the reference CycleGAN code (Normalize(0.5, 0.5) on [0, 1] tensors); rounding
    rather than truncation so the ONNX and PyTorch outputs agree to within one grey level.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        y = self.generator(x)
        y = ((y + 1.0) * 127.5).round().clamp(0.0, 255.0)
        return y.to(torch.uint8).permute(0, 2, 3, 1)


class SegmenterGraph(nn.Module):
    """uint8 NHWC RGB at full resolution -> train-ID map uint8 N x H x W (the standard evaluation protocol).

    Resize by `scale` (bilinear, align_corners=False), normalise with the training mean/std on x/255, run the
    torchvision-style model (dict output "out"), upsample the logits bilinearly to the input H x W, argmax.
    """

    def __init__(self, model: nn.Module, scale: float, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.model = model
        self.scale = float(scale)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores N x C x H x W at the input's size: everything the graph does before the argmax."""
        size = images.shape[1:3]
        x = images.permute(0, 3, 1, 2).float()
        if self.scale != 1.0:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        x = (x / 255.0 - self.mean) / self.std
        logits = self.model(x)["out"]
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(dim=1).to(torch.uint8)
