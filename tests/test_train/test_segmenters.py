"""Segmenter builders and the segmenter checkpoint format (train.segmenters)."""

from __future__ import annotations

import pytest
import torch

from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import load_segmenter_checkpoint, save_segmenter_checkpoint
from uda_trt.train.commands.train_segmenter import ARCHITECTURES as CLI_ARCHITECTURES
from uda_trt.train.segmenters import (
    NORMALIZATION,
    SEGMENTER_ARCHITECTURES,
    build_segmenter,
    build_segmenter_from_checkpoint,
)

FAST = [arch for arch in SEGMENTER_ARCHITECTURES if arch != "deeplabv3_resnet50"]


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
    with pytest.raises(UserError, match="unknown segmenter architecture 'unet'"):
        build_segmenter("unet")


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
