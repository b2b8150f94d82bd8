"""Semantic segmenters and their self-describing checkpoint files.

Architectures: torchvision's DeepLabV3 and LR-ASPP; the studies' U-Net (train.segmenter_unet); DeepLabV3+ on
torchvision's ResNet-50 and MobileNetV3-Large backbones (train.segmenter_deeplabv3plus). Every model's forward
returns {"out": N x classes x H x W logits} at the input's size, for any input size.

Models are built with `weights=None` and, unless asked, no backbone weights, so nothing downloads: training from
scratch is the default and the only path tested offline. `pretrained_backbone=True` keeps torchvision's real
ImageNet-backbone loading for users with a network (the U-Net has no backbone: it trains from scratch, as the study's).

A checkpoint records how to rebuild its model (architecture, class count, working scale, normalisation) next to the
weights, in plain types only, so `torch.load(weights_only=True)` reads it and export needs nothing else.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn
from torchvision.models import segmentation

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.labels import NUM_CLASSES
from uda_trt.train.checkpoints import SEGMENTER_VERSION
from uda_trt.train.segmenter_deeplabv3plus import build_deeplabv3plus
from uda_trt.train.segmenter_unet import UNet

TORCHVISION_ARCHITECTURES = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")
SEGMENTER_ARCHITECTURES = (*TORCHVISION_ARCHITECTURES, "unet", "deeplabv3plus_resnet50", "deeplabv3plus_mobilenet")
DEEPLABV3PLUS_PREFIX = "deeplabv3plus_"
# ASPP's image pooling ends in a BatchNorm over one value per channel: a training batch needs at least two images.
IMAGE_POOLING_ARCHITECTURES = tuple(a for a in SEGMENTER_ARCHITECTURES if a.startswith("deeplabv3"))
# No ImageNet backbone to start from: these train from scratch only.
NO_PRETRAINED_BACKBONE = ("unet",)

# Applied to x / 255 of RGB images, in training and inside the exported graph alike (ImageNet statistics, as the
# torchvision backbones expect when pretrained).
NORMALIZATION = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def build_segmenter(architecture: str, num_classes: int = NUM_CLASSES, pretrained_backbone: bool = False) -> nn.Module:
    """A segmenter whose forward returns {"out": N x num_classes x H x W logits}; torchvision's aux head off."""
    if architecture not in SEGMENTER_ARCHITECTURES:
        raise UserError(
            f"unknown segmenter architecture {architecture!r}; choose one of {', '.join(SEGMENTER_ARCHITECTURES)}"
        )
    if pretrained_backbone and architecture in NO_PRETRAINED_BACKBONE:
        raise UserError(f"--pretrained-backbone: {architecture} has no backbone to pretrain; it trains from scratch")
    if architecture == "unet":
        return UNet(num_classes)
    if architecture.startswith(DEEPLABV3PLUS_PREFIX):
        return build_deeplabv3plus(architecture.removeprefix(DEEPLABV3PLUS_PREFIX), num_classes, pretrained_backbone)
    builder = getattr(segmentation, architecture)
    # The builder's own default is the ImageNet backbone torchvision's segmentation models were trained from
    # (IMAGENET1K_V1); it downloads once into the torch hub cache.
    weights_backbone = (
        inspect.signature(builder).parameters["weights_backbone"].default if pretrained_backbone else None
    )
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": weights_backbone, "num_classes": num_classes}
    if architecture.startswith("deeplabv3"):
        kwargs["aux_loss"] = False
    return builder(**kwargs)


def build_segmenter_from_checkpoint(checkpoint: Any) -> nn.Module:
    """Rebuild the model a checkpoint describes, load its weights strictly, and return it in eval mode.

    Accepts the loaded checkpoint dict, or an object with `.args` (the config) and `.state_dict` attributes such as
    train.checkpoints.CheckpointInfo.
    """
    if isinstance(checkpoint, Mapping):
        if checkpoint.get("version") != SEGMENTER_VERSION:
            raise UserError(f"segmenter checkpoint version {checkpoint.get('version')!r} is not supported")
        config, state_dict = checkpoint["config"], checkpoint["state_dict"]
    else:
        config, state_dict = checkpoint.args, checkpoint.state_dict
    model = build_segmenter(config["architecture"], num_classes=int(config["num_classes"]))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
