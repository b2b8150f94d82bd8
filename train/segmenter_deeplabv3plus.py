"""DeepLabV3+ (Chen et al. 2018) on torchvision backbones: ASPP at output stride 16, a decoder over stride-4 features.

As the DeepLabV3+ study built it (jfzhang95/pytorch-deeplab-xception): the backbone's last stage is dilated instead
of strided (output stride 16), torchvision's ASPP (rates 6, 12, 18, image pooling, 256 channels) reads it, and the
decoder upsamples the ASPP output to the low-level features (stride 4) reduced to 48 channels, concatenates, refines
with two 3x3 conv + BatchNorm + ReLU and classifies; the logits are upsampled to the input. Every upsampling takes
its target size from a tensor's shape, so any input size works and the exported graph keeps dynamic height and width
(the fixed x4 upsampling of other implementations breaks at sizes that are not multiples of 16).

Backbones: ResNet-50 (low level: layer1, 256 channels) and MobileNetV3-Large (low level: the first stride-4 block,
24 channels; the mobile backbone torchvision ships with dilation). `pretrained_backbone=True` loads torchvision's
ImageNet weights (downloaded once into the torch hub cache), the same ones torchvision's own segmenters start from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, mobilenet_v3_large, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

BACKBONES = ("resnet50", "mobilenet")
ATROUS_RATES = (6, 12, 18)  # at output stride 16 (the paper doubles them at 8)
ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the high-level features, fused with projected low-level features; returns logits at stride 4."""

    def __init__(self, high_channels: int, low_channels: int, num_classes: int) -> None:
        super().__init__()
        self.aspp = ASPP(high_channels, ATROUS_RATES, ASPP_CHANNELS)
        self.reduce = nn.Sequential(
            nn.Conv2d(low_channels, LOW_LEVEL_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(LOW_LEVEL_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([x, self.reduce(low)], dim=1)))


class DeepLabV3Plus(nn.Module):
    """N x 3 x H x W (normalised RGB) -> {"out": N x num_classes x H x W logits}, torchvision's segmenter contract.

    `backbone` returns {"low": stride-4 features, "high": stride-16 features}.
    """

    def __init__(self, backbone: nn.Module, head: DeepLabV3PlusHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        logits = self.head(features["low"], features["high"])
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def build_deeplabv3plus(backbone: str, num_classes: int, pretrained_backbone: bool = False) -> DeepLabV3Plus:
    """DeepLabV3+ with a `backbone` from BACKBONES, untrained unless `pretrained_backbone` (ImageNet, downloads)."""
    if backbone == "resnet50":
        weights = ResNet50_Weights.IMAGENET1K_V1 if pretrained_backbone else None
        net = resnet50(weights=weights, replace_stride_with_dilation=[False, False, True])
        features = IntermediateLayerGetter(net, return_layers={"layer1": "low", "layer4": "high"})
        return DeepLabV3Plus(features, DeepLabV3PlusHead(2048, 256, num_classes))
    if backbone == "mobilenet":
        weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained_backbone else None
        blocks = mobilenet_v3_large(weights=weights, dilated=True).features
        # As torchvision's own MobileNetV3 segmenters find them: the strided blocks start each stage (C1..C4),
        # the last block is C5. C1's output has stride 4; C5's stride 16 (its stride turned into dilation).
        stages = [0] + [i for i, block in enumerate(blocks) if getattr(block, "_is_cn", False)] + [len(blocks) - 1]
        low, high = stages[-5], stages[-1]
        features = IntermediateLayerGetter(blocks, return_layers={str(low): "low", str(high): "high"})
        return DeepLabV3Plus(
            features, DeepLabV3PlusHead(blocks[high].out_channels, blocks[low].out_channels, num_classes)
        )
    raise ValueError(f"unknown DeepLabV3+ backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
