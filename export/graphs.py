"""The graphs that are exported: a trained model wrapped with its pre- and post-processing, uint8 in, uint8 out.

Putting normalisation, resizing, argmax and the casts inside the graph means the engine on the device does them,
and the host only decodes, batches and encodes (docs/architecture.md). The wrappers hold the trained model as a
submodule and never modify it. Tensor layouts follow docs/contracts.md ("Artifacts"): input `images` uint8 NHWC RGB.

uint8 stays at the edges: TensorRT takes a uint8 tensor only as a network input or output and converts it only to and
from float32/float16, so the input goes straight into a cast to float (permuted after it), the output comes straight
out of a cast from float (permuted before it), and an integer result reaches uint8 through float32.
`export.graph_checks.uint8_violations` checks every exported graph for this.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class TranslatorGraph(nn.Module):
    """uint8 NHWC RGB -> x/127.5 - 1 -> generator -> (y + 1) * 127.5, NaN to 0, rounded, clipped -> uint8 NHWC RGB.

    The same normalisation as the reference CycleGAN code (Normalize(0.5, 0.5) on [0, 1] tensors); rounding
    rather than truncation so the ONNX and PyTorch outputs agree to within one grey level. TensorRT's float -> uint8
    conversion is undefined for NaN and outside [0, 256), and Clip passes NaN through (ONNX Runtime's does), so NaN
    becomes 0 before the clip (IsNaN + Where, which TensorRT parses): whatever the generator returns, the final cast
    reads integers in 0..255 (+inf gives 255, -inf 0).
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().permute(0, 3, 1, 2) / 127.5 - 1.0
        y = (self.generator(x) + 1.0) * 127.5
        y = torch.where(y.isnan(), 0.0, y).round().clamp(0.0, 255.0)
        return y.permute(0, 2, 3, 1).to(torch.uint8)


class PerImageNorm(nn.Module):
    """A trained BatchNorm2d that normalises each image with its own per-channel mean and (biased) variance, then
    applies the layer's learned scale and shift: what BatchNorm computes in training mode on a batch of one image,
    whatever the batch size. Exports as InstanceNormalization (kept in FP32 by export.fp16)."""

    def __init__(self, batch_norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.weight = batch_norm.weight
        self.bias = batch_norm.bias
        self.eps = batch_norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def with_per_image_statistics(generator: nn.Module) -> nn.Module:
    """A copy of `generator` whose BatchNorm2d layers use each image's own statistics (PerImageNorm).

    The reference pix2pix `test.py` without `--eval` runs its generator in training mode on batches of one: batch
    norm from the image's own statistics, dropout active. This copy computes the former with dropout off (eval mode,
    deterministic), the reference's default output without its dropout noise.
    """
    copied = copy.deepcopy(generator)
    for module in list(copied.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, PerImageNorm(child))
    return copied.eval()


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
        x = images.float()  # first, so that nothing but this cast reads the uint8 input (not even Shape)
        size = x.shape[1:3]
        x = x.permute(0, 3, 1, 2)
        if self.scale != 1.0:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        x = (x / 255.0 - self.mean) / self.std
        logits = self.model(x)["out"]
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # ArgMax gives int64, which TensorRT does not convert to uint8: the labels (0..18, exact) go through float32
        return self.logits(images).argmax(dim=1).float().to(torch.uint8)
