"""TensorRT engines end to end on a GPU: build (strongly typed FP16), verify, round trips through the CLIs, refusals.

Runs with `make test-gpu` on a machine with an NVIDIA GPU, tensorrt and pycuda (`pip install 'uda-trt[tensorrt]'`);
skipped with the reason elsewhere. Tiny models and images keep each build to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uda_trt.runtime.runners import tensorrt_unavailable_reason

REASON = tensorrt_unavailable_reason(for_running=True)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT on a GPU: {REASON}")]


@pytest.fixture(scope="module")
def data(tmp_path_factory, cli) -> Path:
    root = tmp_path_factory.mktemp("data")
    args = ["--out", root, "--gta5-count", "6", "--cityscapes-train", "0", "--cityscapes-val", "4", "--workers", "1"]
    result = cli("make-synthetic", *args)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def translator(tmp_path_factory, cli) -> Path:
    from uda_trt.train.networks import ResnetGenerator

    folder = tmp_path_factory.mktemp("translator")
    torch.manual_seed(0)
    checkpoint = folder / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=8, n_blocks=2).state_dict(), checkpoint)
    result = cli("export-trt", checkpoint, "--size", "128x64", "--batch", "1,2,4", "--require-engine")
    assert result.returncode == 0, result.stderr
    return folder / "latest_net_G_A.engine"


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory, cli) -> Path:
    from uda_trt.train.checkpoints import save_segmenter_checkpoint
    from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

    folder = tmp_path_factory.mktemp("segmenter")
    torch.manual_seed(0)
    model = build_segmenter("lraspp_mobilenet_v3_large", num_classes=19)
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    save_segmenter_checkpoint(folder / "best.pt", {**config, "normalization": NORMALIZATION}, model.state_dict())
    sizes = ["--profile-sizes", "128x64", "512x256", "512x256"]
    result = cli("export-trt", folder / "best.pt", "--batch", "1,1,2", *sizes, "--require-engine")
    assert result.returncode == 0, result.stderr
    return folder / "best.engine"


def test_engine_sidecar_records_version_gpu_profile_and_parity(translator):
    import tensorrt as trt

    from uda_trt.runtime.gpu import current_gpu
    from uda_trt.runtime.sidecar import file_sha256, load_sidecar

    sidecar = load_sidecar(translator)  # also verifies the engine's sha256
    engine = sidecar.engine
    assert engine["tensorrt_version"] == trt.__version__ and engine["gpu_name"] == current_gpu().name
    assert engine["profile"] == {"min": [1, 64, 128, 3], "opt": [2, 64, 128, 3], "max": [4, 64, 128, 3]}
    assert engine["strongly_typed"] and engine["built_from"] == "fp16_onnx"
    assert sidecar.artifacts["engine"]["sha256"] == file_sha256(translator)
    assert sidecar.validation["engine"]["passed"] and sidecar.validation["engine"]["reference"] == "onnx"


def test_network_is_strongly_typed_without_the_fp16_flag(translator):
    import tensorrt as trt

    from uda_trt.export.engine import _strongly_typed_flags

    flags = _strongly_typed_flags(trt)
    network = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(flags)
    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.ERROR))
    fp16_onnx = translator.with_name("latest_net_G_A.fp16.onnx")
    assert parser.parse(fp16_onnx.read_bytes(), str(fp16_onnx))
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:
        assert network.get_flag(strongly_typed)
    # the FP16 layers come from the ONNX: some layer outputs are half, InstanceNorm's are float
    types = {}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        for output in range(layer.num_outputs):
            types.setdefault(layer.type, set()).add(layer.get_output(output).dtype)
    assert trt.DataType.HALF in set().union(*types.values())


def test_batch_translate_engine_round_trip_matches_onnx(tmp_path, translator, data, cli):
    from uda_trt.export.parity import compare

    outputs = {}
    for artifact in (translator, translator.with_name("latest_net_G_A.onnx")):
        out = tmp_path / artifact.suffix.lstrip(".")
        args = ["--engine", artifact, "--input", data / "gta5", "--output", out, "--batch-size", "3"]
        result = cli("batch-translate", *args)
        assert result.returncode == 0, result.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["images_translated"] == 6 and report["images_skipped"] == 0
        outputs[artifact.suffix] = [np.asarray(Image.open(p)) for p in sorted((out / "images").glob("*.png"))]
    report = compare("translate", outputs[".onnx"], outputs[".engine"], 0.995, 2, "onnx")
    assert report.passed, report.summary()


def test_evaluate_seg_engine_round_trip_matches_onnx(tmp_path, segmenter, data, cli):
    metrics = {}
    for artifact in (segmenter, segmenter.with_name("best.onnx")):
        out = tmp_path / artifact.suffix.lstrip(".")
        args = ["--engine", artifact, "--cityscapes", data / "cityscapes", "--output", out, "--batch-size", "2"]
        result = cli("evaluate-seg", *args)
        assert result.returncode == 0, result.stderr
        metrics[artifact.suffix] = json.loads((out / "metrics.json").read_text())
    engine, onnx_metrics = metrics[".engine"], metrics[".onnx"]
    assert engine["backend"] == "tensorrt" and engine["images_scored"] == onnx_metrics["images_scored"] == 4
    total = np.array(onnx_metrics["confusion_matrix"]).sum()
    changed = np.abs(np.array(engine["confusion_matrix"]) - np.array(onnx_metrics["confusion_matrix"])).sum() / 2
    assert changed / total <= 0.005


def test_infer_many_overlaps_and_equals_one_by_one(translator):
    from uda_trt.runtime.runners import open_runner

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 64, 128, 3), dtype=np.uint8) for n in (1, 4, 2, 3, 1)]
    with open_runner(translator) as runner:
        streamed = [out["translated"] for out in runner.infer_many(batches)]
        single = [runner.infer({"images": batch})["translated"] for batch in batches]
    assert [s.shape for s in streamed] == [(n, 64, 128, 3) for n in (1, 4, 2, 3, 1)]
    for a, b in zip(streamed, single, strict=True):
        np.testing.assert_array_equal(a, b)


def test_out_of_profile_batch_is_one_line(translator):
    from uda_trt.runtime.errors import UserError
    from uda_trt.runtime.runners import open_runner

    with open_runner(translator) as runner, pytest.raises(UserError, match="batch size 5 is outside"):
        runner.infer({"images": np.zeros((5, 64, 128, 3), np.uint8)})


def test_engine_for_another_tensorrt_or_gpu_is_refused_naming_both(tmp_path, translator, cli):
    import shutil

    import tensorrt as trt

    from uda_trt.runtime.sidecar import sidecar_path

    copy = tmp_path / translator.name
    shutil.copy(translator, copy)
    sidecar = json.loads(sidecar_path(translator).read_text())
    sidecar["engine"]["tensorrt_version"] = "9.0.0"
    sidecar["engine"]["gpu_name"] = "NVIDIA Imaginary 1"
    sidecar_path(copy).write_text(json.dumps(sidecar))
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(images / "a.png")
    result = cli("batch-translate", "--engine", copy, "--input", images, "--output", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"TensorRT 9.0.0 (this machine has {trt.__version__})" in line and "NVIDIA Imaginary 1" in line
