"""The studies' U-Net segmenter (Ronneberger et al. 2015, as the paired-translation study wrote it).

Four encoder blocks (two 3x3 conv + BatchNorm + ReLU, then 2x2 max-pool) at 64, 128, 256 and 512 channels, a
1024-channel bottleneck, four decoder blocks (2x2 transposed convolution, concatenation with the encoder block's
output of the same resolution, two 3x3 conv + BatchNorm + ReLU) and a 1x1 classifier: same layers, widths and
parameter count as the study's `Unet`, with 19 classes instead of 3.

One change, invisible at sizes that are multiples of 16: the pools round up (`ceil_mode=True`) and each upsampled
map is cropped to its skip connection's size, so any input size works. The runtime feeds whole Cityscapes-size
images scaled by an arbitrary factor, and a plain U-Net fails to concatenate as soon as a side is odd at some depth.
The crop reads the skip's shape, so the exported graph keeps dynamic height and width.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (64, 128, 256, 512)
BOTTLENECK = 1024


class ConvBlock(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; the conv keeps its bias, as in the study."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """Upsample x2 (transposed conv), crop to the skip's size, concatenate the skip, ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)[:, :, : skip.shape[2], : skip.shape[3]]  # ceil-mode pooling made it one pixel too big
        return self.conv(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """N x 3 x H x W (normalised RGB) -> {"out": N x num_classes x H x W logits}, torchvision's segmenter contract."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        channels = (3, *WIDTHS)
        self.encoders = nn.ModuleList(ConvBlock(cin, cout) for cin, cout in zip(channels[:-1], WIDTHS, strict=True))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.bottleneck = ConvBlock(WIDTHS[-1], BOTTLENECK)
        ups = (BOTTLENECK, *reversed(WIDTHS))
        self.decoders = nn.ModuleList(
            DecoderBlock(cin, cout) for cin, cout in zip(ups[:-1], reversed(WIDTHS), strict=True)
        )
        self.classifier = nn.Conv2d(WIDTHS[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = decoder(x, skip)
        return {"out": self.classifier(x)}
