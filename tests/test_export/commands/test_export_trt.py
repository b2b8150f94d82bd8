"""export-trt through its console script, as a user runs it: files written, contents checked, one-line refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uda_trt.export.commands.export_trt import engine_skip_reason, installed_packages
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.runners import gpu_present, open_runner, tensorrt_unavailable_reason
from uda_trt.runtime.sidecar import file_sha256
from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator

EXPORT_TRT = "export-trt"  # the console script under test
NO_ENGINE = pytest.mark.skipif(tensorrt_unavailable_reason() is None, reason="this machine can build engines")
NO_ENGINE_PACKAGES = pytest.mark.skipif(
    gpu_present() or bool(installed_packages()), reason="needs a machine without a GPU, tensorrt and pycuda"
)


@pytest.fixture
def generator_file(tmp_path) -> Path:
    torch.manual_seed(1)
    path = tmp_path / "run" / "latest_net_G_A.pth"
    path.parent.mkdir()
    torch.save(ResnetGenerator(ngf=4, n_blocks=2).state_dict(), path)
    return path


@pytest.fixture
def parity_dir(tmp_path) -> Path:
    folder = tmp_path / "parity"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 36, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


@NO_ENGINE
@pytest.mark.slow
def test_writes_onnx_and_sidecar_and_skips_engine(tmp_path, cli, generator_file, parity_dir):
    out = tmp_path / "out"
    result = cli(EXPORT_TRT, generator_file, "--output", out, "--size", "32x16", "--parity-images", parity_dir)
    assert result.returncode == 0, result.stderr
    onnx_path, json_path = out / "latest_net_G_A.onnx", out / "latest_net_G_A.json"
    fp16_path = out / "latest_net_G_A.fp16.onnx"
    assert sorted(p.name for p in out.iterdir()) == [fp16_path.name, json_path.name, onnx_path.name]  # no temps
    sidecar = json.loads(json_path.read_text())
    assert sidecar["artifacts"] == {
        "onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)},
        "fp16_onnx": {"file": fp16_path.name, "sha256": file_sha256(fp16_path)},
    }
    assert sidecar["source_checkpoint"] == {"file": generator_file.name, "sha256": file_sha256(generator_file)}
    assert sidecar["working_size"] == [32, 16] and sidecar["validation"]["onnx"]["images"] == 2
    skipped = [line for line in result.stderr.splitlines() if line.startswith("engine skipped")]
    assert len(skipped) == 1 and "Traceback" not in result.stderr
    assert "parity" in result.stdout
    with open_runner(onnx_path) as runner:
        out_images = runner.infer({"images": np.zeros((1, 16, 32, 3), np.uint8)})["translated"]
    assert out_images.shape == (1, 16, 32, 3)


def test_what_the_engine_steps_need_decides_build_skip_or_refusal():
    everything = {"tensorrt", "pycuda"}
    assert engine_skip_reason(True, everything, fp16=True, verify=True, require_engine=True) is None
    assert engine_skip_reason(True, {"tensorrt"}, fp16=True, verify=False, require_engine=True) is None  # no pycuda
    # a CPU machine: skipped after the ONNX export, naming everything missing
    reason = engine_skip_reason(False, set(), fp16=True, verify=True, require_engine=False)
    assert reason == "no NVIDIA GPU found; tensorrt and pycuda not installed (pip install 'uda-trt[tensorrt]')"
    assert "pycuda" not in engine_skip_reason(False, set(), fp16=True, verify=False, require_engine=False)
    # a GPU with tensorrt but no pycuda: the engine would be built, then refused; refused before any build instead
    with pytest.raises(UserError, match=r"^pycuda not installed: --verify runs the engine with it \(pip install"):
        engine_skip_reason(True, {"tensorrt"}, fp16=True, verify=True, require_engine=False)
    with pytest.raises(UserError, match=r"^--require-engine: .*: the engine is built from STEM.fp16.onnx"):
        engine_skip_reason(True, everything, fp16=False, verify=True, require_engine=True)
    assert "--no-fp16" in engine_skip_reason(True, everything, fp16=False, verify=True, require_engine=False)


def test_segmenter_parity_images_are_chosen_inside_the_engine_profile_before_the_export(tmp_path, generator_file):
    """What export-trt passes to the export when it will build an engine: a segmenter's scenes are drawn inside the
    profile (--profile-sizes 128x64 256x128 320x160 excludes the usual 512x256); a translator's images pass as given
    (the export resizes them to the working size). Only the checkpoint's kind is read, so no weights are saved."""
    from uda_trt.export.commands.export_trt import segmenter_engine_images
    from uda_trt.train.checkpoints import save_segmenter_checkpoint

    path = tmp_path / "best.pt"
    normalization = {"mean": [0.5] * 3, "std": [0.25] * 3}
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    save_segmenter_checkpoint(path, {**config, "normalization": normalization}, {})
    sizes = ((128, 64), (256, 128), (320, 160))
    images = segmenter_engine_images(path, None, (2, 2, 4), sizes)
    assert len(images) == 3 and {image.shape for image in images} == {(160, 320, 3)}
    given = [np.zeros((20, 36, 3), np.uint8)]
    assert segmenter_engine_images(path, given, (1, 1, 1), sizes)[0].shape == (64, 128, 3)
    assert segmenter_engine_images(generator_file, given, (1, 1, 1), sizes) is given


@NO_ENGINE_PACKAGES
def test_require_engine_refuses_before_any_build_naming_what_is_missing(tmp_path, cli, user_error, monkeypatch):
    """export-trt --require-engine on this machine (no GPU, neither tensorrt nor pycuda) exits 2 before reading the
    checkpoint or writing anything. Then again with a throwaway empty `tensorrt` package on PYTHONPATH: a stand-in
    for the dependency (not for the code under test) that makes `tensorrt` importable, which shows that pycuda,
    which --verify needs, is checked on its own."""
    checkpoint = tmp_path / "latest_net_G_A.pth"
    checkpoint.write_bytes(b"never read: the command stops before the export")
    result = cli(EXPORT_TRT, checkpoint, "--require-engine")
    user_error(result, names="--require-engine: no TensorRT engine can be built and checked here: no NVIDIA GPU")
    assert "tensorrt and pycuda not installed (pip install 'uda-trt[tensorrt]')" in result.stderr

    stand_in = tmp_path / "site" / "tensorrt"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(stand_in.parent), os.getenv("PYTHONPATH")])))
    result = cli(EXPORT_TRT, checkpoint, "--require-engine")
    user_error(result, names="pycuda not installed: --verify runs the engine with it (pip install 'uda-trt[tensorrt]'")
    assert "tensorrt and" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest_net_G_A.pth", "site"]  # nothing written


@pytest.mark.slow
def test_default_parity_uses_builtin_scenes(tmp_path, cli, generator_file):
    result = cli(EXPORT_TRT, generator_file, "--size", "64x32")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads(generator_file.with_suffix(".json").read_text())
    assert sidecar["validation"]["onnx"]["images"] == 3 and sidecar["validation"]["onnx"]["passed"]


def test_discriminator_is_refused_in_one_line(tmp_path, cli, user_error):
    path = tmp_path / "latest_net_D_A.pth"
    torch.save(NLayerDiscriminator(ndf=8).state_dict(), path)
    user_error(cli(EXPORT_TRT, path), names="is a discriminator checkpoint")
    assert not path.with_suffix(".onnx").exists()


def test_training_state_is_refused_in_one_line(tmp_path, cli, user_error):
    path = tmp_path / "latest_train_state.pt"
    torch.save({"format": TRAIN_STATE_FORMAT, "config": {}, "epoch": 3}, path)
    user_error(cli(EXPORT_TRT, path), names="is a training state")


@pytest.mark.slow
def test_bad_flags_are_refused_in_one_line(tmp_path, cli, user_error, generator_file):
    user_error(cli(EXPORT_TRT, generator_file, "--size", "30x16"), names="--size 30x16")
    user_error(cli(EXPORT_TRT, generator_file, "--scale", "0.5"), names="--scale")
    user_error(cli(EXPORT_TRT, generator_file, "--parity-images", tmp_path / "nope"), names="--parity-images")
    user_error(cli(EXPORT_TRT, tmp_path / "missing.pth"), names="missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    user_error(cli(EXPORT_TRT, tmp_path / "junk.pth"), names="junk.pth")


@pytest.mark.slow
def test_segmenter_scale_flag_and_builtin_scenes(tmp_path, cli):
    from uda_trt.train.checkpoints import save_segmenter_checkpoint
    from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

    torch.manual_seed(0)
    model = build_segmenter("lraspp_mobilenet_v3_large", num_classes=19)
    path = tmp_path / "best.pt"
    config = {
        "architecture": "lraspp_mobilenet_v3_large",
        "num_classes": 19,
        "scale": 0.5,
        "normalization": NORMALIZATION,
    }
    save_segmenter_checkpoint(path, config, model.state_dict())
    result = cli(EXPORT_TRT, path, "--scale", "0.25")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "best.json").read_text())
    assert sidecar["task"] == "segment" and sidecar["scale"] == 0.25 and sidecar["architecture_args"]["scale"] == 0.5
    assert sidecar["validation"]["onnx"]["passed"] and sidecar["validation"]["onnx"]["images"] == 3
    assert sidecar["outputs"][0]["name"] == "labels" and len(sidecar["class_names"]) == 19
