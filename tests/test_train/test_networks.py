"""The networks match the reference code's key names, shapes and parameter counts (docs/reference/cyclegan.md)."""

from __future__ import annotations

import torch

from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator, UnetGenerator, count_parameters, init_weights


def reference_resnet_keys(n_blocks: int) -> list[str]:
    """The reference table: convs at 1, 4, 7; blocks from 10 (conv_block.1 and .5); two up-convs; the last conv."""
    layers = ["model.1", "model.4", "model.7"]
    layers += [f"model.{10 + b}.conv_block.{j}" for b in range(n_blocks) for j in (1, 5)]
    up = 10 + n_blocks
    layers += [f"model.{up}", f"model.{up + 3}", f"model.{up + 7}"]
    return [f"{layer}.{p}" for layer in layers for p in ("weight", "bias")]


def test_resnet_9blocks_keys_and_parameter_count_equal_the_reference() -> None:
    net = ResnetGenerator(ngf=64, n_blocks=9)
    state = net.state_dict()
    assert list(state) == reference_resnet_keys(9)
    assert len(state) == 48
    assert count_parameters(net) == 11_378_179
    assert state["model.1.weight"].shape == (64, 3, 7, 7)
    assert state["model.19.weight"].shape == (256, 128, 3, 3)  # ConvTranspose: [in, out, k, k]
    assert state["model.22.weight"].shape == (128, 64, 3, 3)
    assert state["model.26.weight"].shape == (3, 64, 7, 7)
    assert isinstance(net.model[27], torch.nn.Tanh)


def test_resnet_6blocks_indices_shift() -> None:
    assert list(ResnetGenerator(ngf=8, n_blocks=6).state_dict()) == reference_resnet_keys(6)


def test_resnet_dropout_moves_second_conv_to_index_6() -> None:
    keys = ResnetGenerator(ngf=4, n_blocks=1, use_dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in keys and "model.10.conv_block.5.weight" not in keys


def test_resnet_block_has_no_relu_after_the_add() -> None:
    net = ResnetGenerator(ngf=4, n_blocks=1)
    block = net.model[10]
    x = -torch.ones(1, 16, 8, 8)  # negative input survives only if nothing clamps after the residual add
    with torch.no_grad():
        assert (block(x) < 0).any()


def test_generator_output_shape_and_range() -> None:
    net = init_weights(ResnetGenerator(ngf=4, n_blocks=2))
    y = net(torch.rand(2, 3, 24, 32) * 2 - 1)
    assert y.shape == (2, 3, 24, 32)
    assert y.abs().max() <= 1


def test_discriminator_parameter_count_keys_and_patch_map() -> None:
    net = NLayerDiscriminator(ndf=64, n_layers=3)
    assert count_parameters(net) == 2_764_737
    weights = [k for k in net.state_dict() if k.endswith("weight")]
    assert weights == [f"model.{i}.weight" for i in (0, 2, 5, 8, 11)]
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_unet_256_parameter_count_and_nested_keys() -> None:
    with torch.device("meta"):
        net = UnetGenerator(num_downs=8, ngf=64, norm="batch", use_dropout=True)
    assert count_parameters(net) == 54_413_955
    keys = list(net.state_dict())
    assert keys[0] == "model.model.0.weight"
    assert "model.model.1.model.3.model.1.weight" in keys
    assert "model.model.1.model.2.running_mean" in keys  # BatchNorm, so no conv bias in inner blocks
    assert "model.model.1.model.1.bias" not in keys
    assert "model.model.3.bias" in keys  # the outermost up-conv keeps its bias


def test_unet_forward_shape() -> None:
    net = UnetGenerator(num_downs=5, ngf=4).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 64)).shape == (1, 3, 32, 64)


def test_init_weights_is_normal_0_002_with_zero_bias() -> None:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(ngf=16, n_blocks=2))
    w = net.model[4].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002
    assert all(float(m.bias.detach().abs().max()) == 0 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
