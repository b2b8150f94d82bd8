"""STEM.int8.engine end to end on a GPU: export-trt --int8 builds it from the TensorRT form of STEM.int8.onnx, it
passes the INT8 gates against STEM.onnx and is listed with its own sidecar block, its layers compute in int8 (read
back from the built engine), and batch-translate runs it.

Runs with `make test-gpu` on a machine with an NVIDIA GPU, tensorrt and pycuda; skipped with the reason elsewhere.
Not yet run on a GPU in this project. Tiny models, images and profiles keep each build to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import GENERATOR_STEM, engine_layers, write_cityscapes, write_generator, write_gta5
from uda_trt.runtime.runners import tensorrt_unavailable_reason

REASON = tensorrt_unavailable_reason(for_running=True)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT on a GPU: {REASON}")]
STEM = GENERATOR_STEM


@pytest.fixture(scope="module")
def translator(tmp_path_factory, cli) -> tuple[Path, object]:
    """export-trt --int8 --require-engine of a tiny ResNet generator after 30 Adam steps towards the identity (see
    helpers.write_generator), calibrated by MinMax on a 12-image GTA5 root; profile batch 1..4 at 64x32."""
    folder = tmp_path_factory.mktemp("int8-translator")
    gta5 = write_gta5(folder / "gta5", count=12, size=(80, 40))
    checkpoint = write_generator(folder / "run", gta5)
    args = ["--size", "64x32", "--batch", "1,2,4", "--int8", "--calibration", gta5, "--calibration-images", "8"]
    result = cli("export-trt", checkpoint, *args, "--calibration-method", "minmax", "--require-engine")
    assert result.returncode == 0, result.stderr
    return folder / "run" / f"{STEM}.int8.engine", result


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory, cli) -> Path:
    """export-trt --int8 --require-engine of an untrained LR-ASPP segmenter; the held-out 64x32 images are resized
    into the profile (128x64 .. 256x128) for the engine's gate."""
    from uda_trt.train.checkpoints import save_segmenter_checkpoint
    from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

    folder = tmp_path_factory.mktemp("int8-segmenter")
    torch.manual_seed(0)
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    model = build_segmenter(config["architecture"], num_classes=19)
    save_segmenter_checkpoint(folder / "best.pt", {**config, "normalization": NORMALIZATION}, model.state_dict())
    root = folder / "cityscapes"
    write_cityscapes(root, {"aachen": 4, "bremen": 4}, size=(64, 32), split="val")
    args = ["--batch", "1,2,2", "--profile-sizes", "128x64", "256x128", "256x128", "--int8", "--calibration", root]
    args += ["--calibration-split", "val", "--calibration-images", "4", "--calibration-method", "minmax"]
    result = cli("export-trt", folder / "best.pt", *args, "--require-engine")
    assert result.returncode == 0, result.stderr
    return folder / "best.int8.engine"


def _check_listed(engine_path: Path, task: str) -> dict:
    """The sidecar lists the INT8 engine with its sha256, its own block and a passed INT8 gate; returns the block."""
    import tensorrt as trt

    from uda_trt.export.int8 import GATES
    from uda_trt.runtime.gpu import current_gpu
    from uda_trt.runtime.sidecar import file_sha256, load_sidecar

    sidecar = load_sidecar(engine_path)  # also verifies the engine's sha256
    block = sidecar.int8_engine
    assert sidecar.artifacts["int8_engine"] == {"file": engine_path.name, "sha256": file_sha256(engine_path)}
    assert block["built_from"] == "int8_onnx" and block["strongly_typed"]
    assert block["tensorrt_version"] == trt.__version__ and block["gpu_name"] == current_gpu().name
    assert block["profile"] == sidecar.engine["profile"]  # the FP16 engine's profile, built in the same run
    check = sidecar.validation["int8_engine"]
    assert check["passed"] and check["reference"] == "onnx" and check["fraction"] >= GATES[task]["required"]
    return block


def test_translator_int8_engine_passes_its_gates_and_is_listed(translator):
    engine_path, result = translator
    _check_listed(engine_path, "translate")
    assert f"wrote {engine_path} (TensorRT " in result.stdout and "gates: PSNR" in result.stdout
    suffixes = (".pth", ".onnx", ".fp16.onnx", ".engine", ".json", ".int8.onnx", ".int8.engine")  # no stray files
    assert sorted(p.name for p in engine_path.parent.iterdir()) == sorted(STEM + suffix for suffix in suffixes)


def test_segmenter_int8_engine_passes_its_gates_and_is_listed(segmenter):
    block = _check_listed(segmenter, "segment")
    assert block["profile"] == {"min": [1, 64, 128, 3], "opt": [2, 128, 256, 3], "max": [2, 128, 256, 3]}


def _int8_layers(layers: list) -> list[str]:
    """Names of the layers whose inputs or outputs the inspector shows as int8 ("Format/Datatype")."""
    found = []
    for layer in layers:
        tensors = layer.get("Inputs", []) + layer.get("Outputs", [])
        if any("int8" in tensor.get("Format/Datatype", "").lower() for tensor in tensors):
            found.append(layer["Name"])
    return found


@pytest.mark.parametrize(("kind", "shape"), [("translator", (2, 32, 64, 3)), ("segmenter", (2, 128, 256, 3))])
def test_int8_engines_compute_layers_in_int8(kind, shape, request):
    """Read back from the engine, not from a flag: some layer reads or writes int8 data (the quantized
    convolutions), which the FP16 engine of the same run never does."""
    engine_path = request.getfixturevalue(kind)
    engine_path = engine_path[0] if kind == "translator" else engine_path
    layers = engine_layers(engine_path, shape)
    assert layers and all(isinstance(layer, dict) for layer in layers), "engine built without detailed layer info"

    quantized = _int8_layers(layers)
    if not quantized and all(
        "ForeignNode" in layer["Name"] for layer in layers if layer.get("LayerType") != "Reformat"
    ):
        pytest.skip(
            "TensorRT compiled the network into Myelin regions: their precision is not visible to the inspector"
        )
    assert quantized, [(layer["Name"], layer.get("Inputs")) for layer in layers]
    fp16_engine = engine_path.with_name(engine_path.name.replace(".int8.engine", ".engine"))
    assert not _int8_layers(engine_layers(fp16_engine, shape))


def test_batch_translate_runs_the_int8_engine_within_its_gates(tmp_path, translator, cli):
    """batch-translate --engine STEM.int8.engine over the calibration-domain GTA5 root (12 images, resized to the
    working size by the job) gives what STEM.onnx gives, within the INT8 gates."""
    from uda_trt.export.int8 import gate

    engine_path, _ = translator
    gta5 = engine_path.parent.parent / "gta5"
    outputs = {}
    for artifact in (engine_path, engine_path.with_name(f"{STEM}.onnx")):
        out = tmp_path / artifact.name.replace(".", "-")
        result = cli("batch-translate", "--engine", artifact, "--input", gta5, "--output", out, "--batch-size", "3")
        assert result.returncode == 0, result.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["images_translated"] == 12 and report["images_skipped"] == 0
        outputs[artifact.name] = [np.asarray(Image.open(p)) for p in sorted((out / "images").glob("*.png"))]
    assert len(outputs[engine_path.name]) == 12
    report = gate("translate", outputs[f"{STEM}.onnx"], outputs[engine_path.name])
    assert report.passed, report.summary()
