"""export-trt through its console script, as a user runs it: files written, contents checked, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uda_trt.runtime.runners import open_runner, tensorrt_unavailable_reason
from uda_trt.runtime.sidecar import file_sha256
from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT
from uda_trt.train.networks import NLayerDiscriminator, ResnetGenerator

EXPORT_TRT = "export-trt"  # the console script under test
NO_ENGINE = pytest.mark.skipif(tensorrt_unavailable_reason() is None, reason="this machine can build engines")


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


@NO_ENGINE
@pytest.mark.slow
def test_require_engine_exits_2_after_writing_onnx(tmp_path, cli, user_error, generator_file, parity_dir):
    result = cli(EXPORT_TRT, generator_file, "--size", "32x16", "--parity-images", parity_dir, "--require-engine")
    user_error(result, names="--require-engine")
    assert generator_file.with_suffix(".onnx").is_file() and generator_file.with_suffix(".json").is_file()


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
