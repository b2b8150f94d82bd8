"""Semantic segmenters (torchvision DeepLabV3 and LR-ASPP) and their self-describing checkpoint files.

Models are built with `weights=None` and, unless asked, `weights_backbone=None`, so nothing downloads: training from
scratch is the default and the only path tested offline. `pretrained_backbone=True` keeps torchvision's real
ImageNet-backbone loading for users with a network.

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

SEGMENTER_ARCHITECTURES = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")

# Applied to x / 255 of RGB images, in training and inside the exported graph alike (ImageNet statistics, as the
# torchvision backbones expect when pretrained).
NORMALIZATION = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def build_segmenter(architecture: str, num_classes: int = NUM_CLASSES, pretrained_backbone: bool = False) -> nn.Module:
    """A torchvision segmenter whose forward returns {"out": N x num_classes x H x W logits}; aux head off."""
    if architecture not in SEGMENTER_ARCHITECTURES:
        raise UserError(
            f"unknown segmenter architecture {architecture!r}; choose one of {', '.join(SEGMENTER_ARCHITECTURES)}"
        )
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
