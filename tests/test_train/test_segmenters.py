"""Segmenter builders and the segmenter checkpoint format (train.segmenters), and the structure of the architectures
written here: the studies' U-Net (train.segmenter_unet) and DeepLabV3+ (train.segmenter_deeplabv3plus).

ONNX export and parity of the new architectures: tests/test_export/test_segmenter_architectures.py; the
train -> export -> evaluate-seg chain: tests/test_export/commands/test_segmenter_chain.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import load_segmenter_checkpoint, save_segmenter_checkpoint
from uda_trt.train.commands.train_segmenter import ARCHITECTURES as CLI_ARCHITECTURES
from uda_trt.train.segmenter import SegmenterConfig
from uda_trt.train.segmenters import (
    NORMALIZATION,
    SEGMENTER_ARCHITECTURES,
    TORCHVISION_ARCHITECTURES,
    build_segmenter,
    build_segmenter_from_checkpoint,
)

FAST = [arch for arch in TORCHVISION_ARCHITECTURES if arch != "deeplabv3_resnet50"]
NEW_ARCHITECTURES = ("unet", "deeplabv3plus_mobilenet", "deeplabv3plus_resnet50")
ODD = (17, 33)  # (h, w): odd at every depth of the U-Net, not a multiple of 16: a scaled image may be any size


def _config(architecture: str) -> dict:
    return {"architecture": architecture, "num_classes": 19, "scale": 0.5, "normalization": NORMALIZATION}


@pytest.mark.parametrize("architecture", FAST + [pytest.param("deeplabv3_resnet50", marks=pytest.mark.slow)])
def test_each_architecture_outputs_19_class_logits_at_input_size(architecture):
    torch.manual_seed(0)
    model = build_segmenter(architecture).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 64))
    assert set(out) == {"out"}  # aux head off
    assert out["out"].shape == (2, 19, 32, 64)
    assert torch.isfinite(out["out"]).all()


def test_unknown_architecture_is_a_user_error():
    with pytest.raises(UserError, match="unknown segmenter architecture 'segformer'"):
        build_segmenter("segformer")


def test_cli_choices_match_the_builders():
    assert tuple(CLI_ARCHITECTURES) == SEGMENTER_ARCHITECTURES


def test_default_build_downloads_nothing(tmp_path, monkeypatch):
    """weights=None, weights_backbone=None: the hub cache stays empty."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    build_segmenter("lraspp_mobilenet_v3_large")
    assert not (tmp_path / "hub").exists()


def test_pretrained_backbone_loads_torchvision_imagenet_weights_from_the_hub_cache(tmp_path, monkeypatch):
    """The real loading path, fed from a pre-filled cache instead of the network (no download here)."""
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    torch.manual_seed(1)
    reference = mobilenet_v3_large().state_dict()
    url = MobileNet_V3_Large_Weights.IMAGENET1K_V1.url  # the backbone torchvision's segmenters were trained from
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    model = build_segmenter("lraspp_mobilenet_v3_large", pretrained_backbone=True)
    first_conv = model.backbone["0"][0].weight
    assert torch.equal(first_conv, reference["features.0.0.weight"])
    assert model.classifier.low_classifier.out_channels == 19  # the head is new, sized for 19 classes


def test_checkpoint_round_trips_with_weights_only_and_rebuilds_identical_outputs(tmp_path):
    torch.manual_seed(2)
    model = build_segmenter("lraspp_mobilenet_v3_large").eval()
    config = {**_config("lraspp_mobilenet_v3_large"), "training": {"crop_size": (64, 32), "data_root": tmp_path}}
    path = tmp_path / "runs" / "best.pt"
    save_segmenter_checkpoint(path, config, model.state_dict())

    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "uda-trt-segmenter" and raw["version"] == 1
    assert raw["config"]["training"] == {"crop_size": [64, 32], "data_root": str(tmp_path)}  # plain types
    assert raw["config"]["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

    rebuilt = build_segmenter_from_checkpoint(load_segmenter_checkpoint(path))
    assert not rebuilt.training
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["out"], rebuilt(x)["out"])


def test_checkpoint_config_must_say_how_to_rebuild(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        save_segmenter_checkpoint(tmp_path / "x.pt", {"architecture": "lraspp_mobilenet_v3_large"}, {})


def test_loading_a_foreign_or_missing_file_is_a_one_line_user_error(tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save(build_segmenter("lraspp_mobilenet_v3_large").state_dict(), bare)
    with pytest.raises(UserError, match="not a segmenter checkpoint"):
        load_segmenter_checkpoint(bare)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt: not a PyTorch checkpoint"):
        load_segmenter_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_segmenter_checkpoint(tmp_path / "missing.pt")


# --- the architectures written here: the studies' U-Net and DeepLabV3+ ---------------------------------------------


@pytest.mark.parametrize("architecture", NEW_ARCHITECTURES)
def test_new_architecture_trains_at_any_size_every_parameter_getting_a_finite_gradient(architecture):
    """One training step's forward and backward on a batch of two at an odd size: logits at the input size, a
    gradient for every parameter (the skips and the decoder are wired in), nothing NaN."""
    torch.manual_seed(0)
    model = build_segmenter(architecture).train()
    images, labels = torch.randn(2, 3, *ODD), torch.randint(0, 19, (2, *ODD))
    out = model(images)
    assert set(out) == {"out"} and out["out"].shape == (2, 19, *ODD)
    F.cross_entropy(out["out"], labels).backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _conv_block(cin: int, cout: int) -> int:
    """Parameters of the study's conv_block: two biased 3x3 convs, each followed by BatchNorm (weight and bias)."""
    return (cin * 9 * cout + cout) + 2 * cout + (cout * 9 * cout + cout) + 2 * cout


def test_unet_has_the_studys_layers_and_parameter_count():
    """The study's Unet (en1..en4 at 64..512, bottleneck 1024, d1..d4 with 2x2 transposed convs, 1x1 classifier),
    counted from its listing, with 19 classes instead of 3."""
    widths = (3, 64, 128, 256, 512)
    encoders = sum(_conv_block(cin, cout) for cin, cout in zip(widths[:-1], widths[1:], strict=True))
    bottleneck = _conv_block(512, 1024)
    ups = (1024, 512, 256, 128, 64)
    decoders = sum(
        cin * cout * 4 + cout + _conv_block(2 * cout, cout) for cin, cout in zip(ups[:-1], ups[1:], strict=True)
    )
    classifier = 64 * 19 + 19
    model = build_segmenter("unet")
    assert sum(p.numel() for p in model.parameters()) == encoders + bottleneck + decoders + classifier
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules()) == 4
    assert model.classifier.out_channels == 19


@pytest.mark.parametrize(
    ("architecture", "low_channels", "high_channels"),
    [("deeplabv3plus_mobilenet", 24, 960), ("deeplabv3plus_resnet50", 256, 2048)],
)
def test_deeplabv3plus_fuses_stride_4_features_with_aspp_at_output_stride_16(architecture, low_channels, high_channels):
    model = build_segmenter(architecture).eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 128))
    assert features["low"].shape == (1, low_channels, 16, 32)  # stride 4
    assert features["high"].shape == (1, high_channels, 4, 8)  # stride 16: the last stage dilated, not strided
    aspp = model.head.aspp
    assert isinstance(aspp, ASPP) and [m[0].dilation for m in aspp.convs[1:4]] == [(6, 6), (12, 12), (18, 18)]
    assert model.head.reduce[0].in_channels == low_channels and model.head.classifier.out_channels == 19


def test_unet_refuses_a_pretrained_backbone_in_one_line(tmp_path):
    with pytest.raises(UserError, match="--pretrained-backbone: unet has no backbone"):
        build_segmenter("unet", pretrained_backbone=True)
    config = SegmenterConfig(tmp_path, tmp_path / "out", architecture="unet", pretrained_backbone=True)
    with pytest.raises(UserError, match="--pretrained-backbone: unet has no backbone"):
        config.check()  # before any data is read or model built


def test_deeplabv3plus_pretrained_backbone_loads_torchvision_imagenet_weights_from_the_hub_cache(tmp_path, monkeypatch):
    """The real loading path, fed from a pre-filled cache instead of the network (no download here)."""
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    torch.manual_seed(3)
    reference = mobilenet_v3_large().state_dict()
    url = MobileNet_V3_Large_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    model = build_segmenter("deeplabv3plus_mobilenet", pretrained_backbone=True)
    assert torch.equal(model.backbone["0"][0].weight, reference["features.0.0.weight"])
    assert torch.equal(
        model.backbone["16"][0].weight, reference["features.16.0.weight"]
    )  # the last block, which ASPP reads
    assert model.head.classifier.out_channels == 19  # the head is new, sized for 19 classes
