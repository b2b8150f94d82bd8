"""Checkpoint files: read them safely, tell what they hold from their keys, rebuild their models, write them atomically.

Generators and discriminators are bare state_dicts with the reference implementation's key names, so files move both
ways between this package and the reference CycleGAN code (docs/contracts.md, "Checkpoints"). Such files carry no
architecture record, so it is recognised from key names and tensor shapes: ResNet generators of any width and block
count (with or without the InstanceNorm running stats that 2018-era PyTorch wrote, with or without a DataParallel
`module.` prefix), U-Net generators, PatchGAN discriminators. Our segmenter and training-state files are dicts with a
`format` tag. Everything is read with `torch.load(weights_only=True)`: a checkpoint never runs code.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import atomic_write, json_plain
from uda_trt.train.joint_settings import JOINT_TRAIN_STATE_FORMAT
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator, UnetGenerator

SEGMENTER_FORMAT = "uda-trt-segmenter"
SEGMENTER_VERSION = 1
TRAIN_STATE_FORMAT = "uda-trt-cyclegan-train-state"
SEGMENTER_TRAIN_STATE_FORMAT = "uda-trt-segmenter-train-state"
PIX2PIX_TRAIN_STATE_FORMAT = "uda-trt-pix2pix-train-state"
# The generator file a GAN trainer's training state stands beside: what export wants instead of the state.
_GENERATOR_OF = {"cyclegan": "latest_net_G_A.pth", "pix2pix": "latest_net_G.pth"}
TRANSLATOR_ARCHITECTURES = ("resnet_generator", "unet_generator")
_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file holds.

    kind: "translator" | "segmenter" | "discriminator" | "training_state".
    architecture/args: enough to rebuild the model (`build_translator(info.architecture, info.args, ...)`);
    for segmenters, architecture is config["architecture"] and args is the whole stored config.
    state_dict: cleaned (prefix stripped, stale InstanceNorm stats dropped), loads strictly; empty for
    training states.
    """

    path: Path
    kind: str
    architecture: str
    args: dict[str, Any]
    state_dict: Mapping[str, torch.Tensor] = field(repr=False)

    def summary(self) -> str:
        """One line for logs, e.g. `translator resnet_generator (ngf=64, n_blocks=9, ...)`."""
        args = ", ".join(f"{k}={v}" for k, v in self.args.items() if not isinstance(v, (dict, list)))
        return f"{self.kind} {self.architecture} ({args})"


# torch.save stores archive members uncompressed; a member may inflate to at most this many times the file size
# (plus some slack) before the file is refused as a zip bomb, unread.
_MAX_INFLATION = 4
_INFLATION_SLACK = 64 << 20


def _check_archive(path: Path) -> None:
    """Refuse a zip archive whose members declare far more bytes than the file holds (a zip bomb)."""
    if not zipfile.is_zipfile(path):
        return  # legacy (pre-1.6) pickle checkpoints, or not a checkpoint at all: torch.load decides
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a PyTorch checkpoint (damaged zip archive: {exc})") from None
    if declared > _MAX_INFLATION * path.stat().st_size + _INFLATION_SLACK:
        raise UserError(
            f"{path}: refused to load: its archive declares {declared} bytes in a {path.stat().st_size}-byte file "
            "(torch.save never compresses; a zip bomb?)"
        )


def load_checkpoint_file(path: Path | str) -> object:
    """torch.load(weights_only=True) on CPU; a missing, corrupt, code-carrying or zip-bomb file -> UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    _check_archive(path)
    try:
        with warnings.catch_warnings():
            # torch warns (with a source line) about unusual pickle protocols before refusing or loading; the
            # outcome is reported in one line below, so the warning is noise
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if found:
            raise UserError(
                f"{path}: refused to load: the file asks to import {found.group(1)}; checkpoints may hold only "
                "tensors and plain data (torch.load weights_only=True)"
            ) from None
        raise UserError(f"{path}: not a PyTorch checkpoint (unreadable pickle data)") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError) as exc:
        raise UserError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None


def describe_checkpoint(path: Path | str) -> CheckpointInfo:
    """Read a checkpoint and say what it is; anything unrecognised -> UserError naming the file."""
    path = Path(path)
    obj = load_checkpoint_file(path)
    if isinstance(obj, Mapping) and "format" in obj:
        return _describe_tagged(path, obj)
    if isinstance(obj, Mapping) and any("optimizer" in str(k) for k in obj):
        return CheckpointInfo(path, "training_state", "unknown", {}, {})
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: not a recognised checkpoint (expected a state_dict of tensors or a tagged dict)")
    state = _strip_prefix(obj)
    guess = _guess_architecture(state)
    if guess is None:
        raise UserError(f"{path}: not a recognised checkpoint (keys match no known generator or discriminator)")
    kind, architecture, args = guess
    return CheckpointInfo(path, kind, architecture, args, _clean_state(path, architecture, args, state))


def require_model_checkpoint(path: Path | str) -> CheckpointInfo:
    """Like `describe_checkpoint`, but refuse files that are not a deployable model (translator or segmenter)."""
    info = describe_checkpoint(path)
    if info.kind == "discriminator":
        raise UserError(
            f"{info.path} is a discriminator checkpoint; export needs a generator "
            "(a CycleGAN's latest_net_G_A.pth maps source to target; a pix2pix run's is latest_net_G.pth) or a "
            "segmenter checkpoint (best.pt)"
        )
    if info.kind == "training_state" and info.architecture == "segmenter":
        raise UserError(
            f"{info.path} is a training state (for train-segmenter --resume); export needs a segmenter checkpoint "
            f"such as {info.path.parent / 'best.pt'}"
        )
    if info.kind == "training_state" and info.architecture == "cyclegan-joint":
        raise UserError(
            f"{info.path} is a training state (for train-cyclegan --joint-segmenter --resume); export needs the "
            f"generator {info.path.parent / _GENERATOR_OF['cyclegan']} or the target segmenter "
            f"{info.path.parent / 'latest_segmenter.pt'}"
        )
    if info.kind == "training_state":
        trainer = info.architecture if info.architecture in _GENERATOR_OF else "cyclegan"
        raise UserError(
            f"{info.path} is a training state (for train-{trainer} --resume); export needs a generator file "
            f"such as {info.path.parent / _GENERATOR_OF[trainer]}"
        )
    return info


def build_network(architecture: str, args: Mapping[str, Any]) -> nn.Module:
    """Construct (uninitialised) a generator or discriminator from its architecture name and arguments."""
    if architecture == "resnet_generator":
        return ResnetGenerator(**args)
    if architecture == "unet_generator":
        return UnetGenerator(**args)
    if architecture == "nlayer_discriminator":
        return NLayerDiscriminator(**args)
    raise ValueError(f"unknown network architecture {architecture!r}")


def build_translator(
    architecture: str, args: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None = None
) -> nn.Module:
    """A translator (generator) in eval mode, with `state_dict` loaded strictly when given (export uses this)."""
    if architecture not in TRANSLATOR_ARCHITECTURES:
        raise ValueError(f"{architecture!r} is not a translator; expected one of {TRANSLATOR_ARCHITECTURES}")
    net = build_network(architecture, args)
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
    return net.eval()


def size_divisor(architecture: str, args: Mapping[str, Any]) -> int:
    """Input height and width of a translator must be multiples of this (4 for ResNet, 256 for U-Net-256)."""
    if architecture == "resnet_generator":
        return 4
    if architecture == "unet_generator":
        return 2 ** int(args.get("num_downs", 8))
    raise ValueError(f"{architecture!r} is not a translator")


def save_generator(path: Path | str, module: nn.Module) -> None:
    """Write a bare state_dict with the reference key names (CPU tensors), atomically."""
    atomic_torch_save(cpu_state_dict(module), path)


def save_segmenter_checkpoint(path: Path | str, config: Mapping[str, Any], state_dict: Mapping) -> None:
    """Write `{"format": "uda-trt-segmenter", "version": 1, "config", "state_dict"}` atomically.

    `config` must hold at least architecture, num_classes, scale and normalization (what export needs to rebuild
    the model); it is stored as JSON-plain types (tuples -> lists, paths -> str) so weights_only loading reads it.
    """
    missing = [key for key in ("architecture", "num_classes", "scale", "normalization") if key not in config]
    if missing:
        raise ValueError(f"segmenter checkpoint config lacks {', '.join(missing)}")
    payload = {
        "format": SEGMENTER_FORMAT,
        "version": SEGMENTER_VERSION,
        "config": json_plain(dict(config)),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in state_dict.items()),
    }
    atomic_torch_save(payload, path)


def load_segmenter_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a segmenter checkpoint (weights_only); a missing, unreadable or foreign file is a one-line UserError."""
    obj = load_checkpoint_file(Path(path))
    if not (isinstance(obj, Mapping) and obj.get("format") == SEGMENTER_FORMAT):
        raise UserError(f"{path}: not a segmenter checkpoint (no 'format': {SEGMENTER_FORMAT!r})")
    return obj


def cpu_state_dict(module: nn.Module) -> OrderedDict:
    """`module.state_dict()` with tensors copied to CPU, keeping the version metadata the reference code expects."""
    state = module.state_dict()
    out = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
    out._metadata = getattr(state, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return out


def atomic_torch_save(obj: object, path: Path | str) -> None:
    """torch.save through `atomic_write`: a killed save never leaves a half-written checkpoint under its name."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__


def _describe_tagged(path: Path, obj: Mapping) -> CheckpointInfo:
    fmt = obj["format"]
    if fmt == SEGMENTER_FORMAT:
        config = obj.get("config")
        state = obj.get("state_dict")
        if not isinstance(config, Mapping) or "architecture" not in config or not isinstance(state, Mapping):
            raise UserError(f"{path}: damaged segmenter checkpoint (no config.architecture or state_dict)")
        return CheckpointInfo(path, "segmenter", str(config["architecture"]), dict(config), state)
    if fmt == TRAIN_STATE_FORMAT:
        return CheckpointInfo(path, "training_state", "cyclegan", dict(obj.get("config", {})), {})
    if fmt == JOINT_TRAIN_STATE_FORMAT:
        return CheckpointInfo(path, "training_state", "cyclegan-joint", dict(obj.get("config", {})), {})
    if fmt == PIX2PIX_TRAIN_STATE_FORMAT:
        return CheckpointInfo(path, "training_state", "pix2pix", dict(obj.get("config", {})), {})
    if fmt == SEGMENTER_TRAIN_STATE_FORMAT:
        return CheckpointInfo(path, "training_state", "segmenter", dict(obj.get("config", {})), {})
    raise UserError(f"{path}: unknown checkpoint format {fmt!r}")


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> OrderedDict:
    if all(k.startswith("module.") for k in state):
        return OrderedDict((k[len("module.") :], v) for k, v in state.items())
    return OrderedDict(state)


def _guess_architecture(state: Mapping[str, torch.Tensor]) -> tuple[str, str, dict[str, Any]] | None:
    """(kind, architecture, args) from key names and shapes, or None."""
    keys = set(state)
    first = state.get("model.1.weight")
    if first is not None and first.dim() == 4 and first.shape[-1] == 7:
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        last = max(int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.weight$", k)))
        return (
            "translator",
            "resnet_generator",
            {
                "input_nc": int(first.shape[1]),
                "output_nc": int(state[f"model.{last}.weight"].shape[0]),
                "ngf": int(first.shape[0]),
                "n_blocks": len(blocks),
                "norm": "batch" if "model.2.weight" in keys else "instance",
                "use_dropout": any(k.endswith("conv_block.6.weight") for k in keys),
            },
        )
    outer = state.get("model.model.0.weight")
    if outer is not None and "model.model.3.weight" in keys:
        depth = max(k.split(".").count("model") for k in keys)
        return (
            "translator",
            "unet_generator",
            {
                "input_nc": int(outer.shape[1]),
                "output_nc": int(state["model.model.3.weight"].shape[1]),
                "num_downs": depth - 1,
                "ngf": int(outer.shape[0]),
                "norm": "batch" if "model.model.1.model.2.weight" in keys else "instance",
                "use_dropout": False,  # dropout has no parameters; it is off in eval mode anyway
            },
        )
    d0 = state.get("model.0.weight")
    if d0 is not None and d0.dim() == 4 and d0.shape[-1] == 4:
        convs = [k for k in keys if re.match(r"model\.\d+\.weight$", k) and state[k].dim() == 4]
        return (
            "discriminator",
            "nlayer_discriminator",
            {
                "input_nc": int(d0.shape[1]),
                "ndf": int(d0.shape[0]),
                "n_layers": len(convs) - 2,
                "norm": "batch" if "model.3.weight" in keys else "instance",
            },
        )
    return None


def _clean_state(path: Path, architecture: str, args: dict, state: OrderedDict) -> OrderedDict:
    """Drop norm statistics the model does not keep (2018 InstanceNorm buffers), then check keys and shapes
    against the model, as the reference does before its strict load."""
    try:
        with torch.device("meta"):
            expected = build_network(architecture, args).state_dict()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UserError(f"{path}: keys look like a {architecture} but its shapes do not fit ({exc})") from None
    clean = OrderedDict((k, v) for k, v in state.items() if k in expected or not k.endswith(_STAT_SUFFIXES))
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in clean:
            clean[key] = torch.tensor(0, dtype=torch.long)
    missing = [k for k in expected if k not in clean]
    unexpected = [k for k in clean if k not in expected]
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise UserError(f"{path}: keys do not match a {architecture} with {args} ({detail})")
    for key, tensor in expected.items():
        if tuple(clean[key].shape) != tuple(tensor.shape):
            raise UserError(
                f"{path}: {key} has shape {tuple(clean[key].shape)}, a {architecture} needs {tuple(tensor.shape)}"
            )
    return OrderedDict((k, clean[k]) for k in expected)
