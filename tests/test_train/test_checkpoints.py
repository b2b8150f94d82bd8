"""Checkpoint recognition from reference-format files, safe loading, refusals of the wrong kind of file."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import (
    TRAIN_STATE_FORMAT,
    build_translator,
    describe_checkpoint,
    load_checkpoint_file,
    require_model_checkpoint,
    save_generator,
    save_segmenter_checkpoint,
    size_divisor,
)
from uda_trt.train.joint_settings import JOINT_TRAIN_STATE_FORMAT
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator, UnetGenerator


def reference_resnet_state(ngf: int, n_blocks: int, in_buffers: bool, prefix: str = "") -> OrderedDict:
    """A generator file as the reference code writes it, built from the key table alone (not from our module).

    in_buffers adds what 2018-era PyTorch stored for every InstanceNorm: running_mean, running_var (and
    num_batches_tracked, as PyTorch 0.4 wrote it).
    """
    g = torch.Generator().manual_seed(ngf + n_blocks)
    state: OrderedDict = OrderedDict()

    def conv(index: str, shape: tuple[int, ...], out_channels: int) -> None:
        state[f"{prefix}{index}.weight"] = torch.randn(shape, generator=g) * 0.02
        state[f"{prefix}{index}.bias"] = torch.randn(out_channels, generator=g) * 0.02

    def norm(index: str, channels: int) -> None:
        if in_buffers:
            state[f"{prefix}{index}.running_mean"] = torch.zeros(channels)
            state[f"{prefix}{index}.running_var"] = torch.ones(channels)
            state[f"{prefix}{index}.num_batches_tracked"] = torch.tensor(0)

    conv("model.1", (ngf, 3, 7, 7), ngf)
    norm("model.2", ngf)
    conv("model.4", (2 * ngf, ngf, 3, 3), 2 * ngf)
    norm("model.5", 2 * ngf)
    conv("model.7", (4 * ngf, 2 * ngf, 3, 3), 4 * ngf)
    norm("model.8", 4 * ngf)
    for b in range(10, 10 + n_blocks):
        conv(f"model.{b}.conv_block.1", (4 * ngf, 4 * ngf, 3, 3), 4 * ngf)
        norm(f"model.{b}.conv_block.2", 4 * ngf)
        conv(f"model.{b}.conv_block.5", (4 * ngf, 4 * ngf, 3, 3), 4 * ngf)
        norm(f"model.{b}.conv_block.6", 4 * ngf)
    up = 10 + n_blocks
    conv(f"model.{up}", (4 * ngf, 2 * ngf, 3, 3), 2 * ngf)  # ConvTranspose weights are [in, out, k, k]
    norm(f"model.{up + 1}", 2 * ngf)
    conv(f"model.{up + 3}", (2 * ngf, ngf, 3, 3), ngf)
    norm(f"model.{up + 4}", ngf)
    conv(f"model.{up + 7}", (3, ngf, 7, 7), 3)
    return state


@pytest.mark.parametrize(
    ("ngf", "n_blocks", "in_buffers", "prefix"),
    [(32, 6, True, ""), (32, 6, False, ""), (8, 9, True, "module."), (16, 9, False, "")],
)
def test_reference_generator_files_are_recognised_and_load_strictly(
    tmp_path: Path, ngf: int, n_blocks: int, in_buffers: bool, prefix: str
) -> None:
    state = reference_resnet_state(ngf, n_blocks, in_buffers, prefix)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(state, path)
    info = require_model_checkpoint(path)
    assert info.kind == "translator"
    assert info.architecture == "resnet_generator"
    assert info.args == {
        "input_nc": 3,
        "output_nc": 3,
        "ngf": ngf,
        "n_blocks": n_blocks,
        "norm": "instance",
        "use_dropout": False,
    }
    net = build_translator(info.architecture, info.args, info.state_dict)
    assert not net.training
    loaded = net.state_dict()
    assert len(loaded) == 12 + 4 * n_blocks
    for key, value in loaded.items():
        assert torch.equal(value, state[prefix + key])
    assert size_divisor(info.architecture, info.args) == 4


def test_our_generator_round_trips_as_a_bare_reference_state_dict(tmp_path: Path) -> None:
    net = ResnetGenerator(ngf=8, n_blocks=3)
    path = tmp_path / "g.pth"
    save_generator(path, net)
    assert [p.name for p in tmp_path.iterdir()] == ["g.pth"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    assert list(raw) == list(net.state_dict())  # bare state_dict, reference names, no wrapper
    info = describe_checkpoint(path)
    assert (info.args["ngf"], info.args["n_blocks"]) == (8, 3)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(build_translator(info.architecture, info.args, info.state_dict)(x), net.eval()(x))


def test_unet_256_file_is_recognised(tmp_path: Path) -> None:
    net = UnetGenerator(num_downs=8, ngf=4, norm="batch")
    path = tmp_path / "latest_net_G.pth"
    save_generator(path, net)
    info = require_model_checkpoint(path)
    assert info.architecture == "unet_generator"
    assert info.args == {"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 4, "norm": "batch", "use_dropout": False}
    assert size_divisor(info.architecture, info.args) == 256
    build_translator(info.architecture, info.args, info.state_dict)


def _one_line_error(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = excinfo.value.format_message()
    assert "\n" not in message
    assert str(path) in message
    return message


def test_discriminator_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latest_net_D_A.pth"
    save_generator(path, NLayerDiscriminator(ndf=8))
    info = describe_checkpoint(path)
    assert (info.kind, info.args["ndf"], info.args["n_layers"]) == ("discriminator", 8, 3)
    with pytest.raises(UserError) as excinfo:
        require_model_checkpoint(path)
    message = _one_line_error(excinfo, path)
    assert "discriminator" in message and "latest_net_G_A.pth" in message


def test_training_state_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latest_train_state.pt"
    net = ResnetGenerator(ngf=4, n_blocks=1)
    optimizer = torch.optim.Adam(net.parameters())
    torch.save(
        {
            "format": TRAIN_STATE_FORMAT,
            "models": {"G_A": net.state_dict()},
            "optimizers": {"G": optimizer.state_dict()},
            "config": {"ngf": 4},
        },
        path,
    )
    assert describe_checkpoint(path).kind == "training_state"
    with pytest.raises(UserError) as excinfo:
        require_model_checkpoint(path)
    assert "training state" in _one_line_error(excinfo, path)


def test_joint_training_state_names_the_files_to_export(tmp_path: Path) -> None:
    """train-cyclegan --joint-segmenter's state is recognised: the error names its generator and segmenter."""
    path = tmp_path / "latest_train_state.pt"
    torch.save({"format": JOINT_TRAIN_STATE_FORMAT, "models": {}, "config": {"ngf": 4}}, path)
    assert describe_checkpoint(path).kind == "training_state"
    with pytest.raises(UserError) as excinfo:
        require_model_checkpoint(path)
    message = _one_line_error(excinfo, path)
    assert "--joint-segmenter" in message
    assert str(tmp_path / "latest_net_G_A.pth") in message and str(tmp_path / "latest_segmenter.pt") in message


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save({"model.1.weight": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(UserError) as excinfo:
        load_checkpoint_file(path)
    assert "refused" in _one_line_error(excinfo, path)
    assert not marker.exists()


def test_corrupt_missing_and_foreign_files_are_user_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    save_generator(good, ResnetGenerator(ngf=4, n_blocks=1))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, unknown)
    for path in (truncated, text, tmp_path / "missing.pth", tensor, unknown, tmp_path):
        with pytest.raises(UserError) as excinfo:
            describe_checkpoint(path)
        _one_line_error(excinfo, path)


def test_generator_with_wrong_shapes_is_a_user_error(tmp_path: Path) -> None:
    state = reference_resnet_state(8, 2, in_buffers=False)
    state["model.4.weight"] = torch.zeros(16, 8, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as excinfo:
        describe_checkpoint(path)
    assert "model.4.weight" in _one_line_error(excinfo, path)


def test_segmenter_checkpoint_is_described_with_its_config(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    config = {
        "architecture": "lraspp_mobilenet_v3_large",
        "num_classes": 19,
        "scale": 0.5,
        "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3},
        "crop": [64, 32],
    }
    save_segmenter_checkpoint(path, config, {"w": torch.ones(2)})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "uda-trt-segmenter" and raw["version"] == 1
    info = require_model_checkpoint(path)
    assert (info.kind, info.architecture, info.args) == ("segmenter", "lraspp_mobilenet_v3_large", config)
    assert torch.equal(info.state_dict["w"], torch.ones(2))
    with pytest.raises(ValueError, match="normalization"):
        save_segmenter_checkpoint(tmp_path / "x.pt", {"architecture": "a", "num_classes": 19, "scale": 1}, {})
