"""TensorRT engines end to end on a GPU: build (strongly typed FP16), verify, round trips through the CLIs, refusals,
layer precisions read back from the built engine, profiles with ranges and a minimum batch above 1, timing caches.

Runs with `make test-gpu` on a machine with an NVIDIA GPU, tensorrt and pycuda (`pip install 'uda-trt[tensorrt]'`);
skipped with the reason elsewhere. Tiny models and images keep each build to seconds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import engine_layers
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
    sizes = ["--profile-sizes", "64x32", "128x64", "192x96"]
    result = cli("export-trt", checkpoint, "--size", "128x64", "--batch", "1,2,4", *sizes, "--require-engine")
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
    # min batch 2, and sizes that exclude the 512x256 built-in scenes: export-trt must fit the check to the profile
    sizes = ["--profile-sizes", "128x64", "160x80", "320x160"]
    result = cli("export-trt", folder / "best.pt", "--batch", "2,2,4", *sizes, "--require-engine")
    assert result.returncode == 0, result.stderr
    return folder / "best.engine"


def test_engine_sidecar_records_version_gpu_profile_and_parity(translator):
    import tensorrt as trt

    from uda_trt.runtime.gpu import current_gpu
    from uda_trt.runtime.sidecar import file_sha256, load_sidecar

    sidecar = load_sidecar(translator)  # also verifies the engine's sha256
    engine = sidecar.engine
    assert engine["tensorrt_version"] == trt.__version__ and engine["gpu_name"] == current_gpu().name
    assert engine["profile"] == {"min": [1, 32, 64, 3], "opt": [2, 64, 128, 3], "max": [4, 96, 192, 3]}
    assert engine["strongly_typed"] and engine["built_from"] == "fp16_onnx"
    assert sidecar.artifacts["engine"]["sha256"] == file_sha256(translator)
    assert sidecar.validation["engine"]["passed"] and sidecar.validation["engine"]["reference"] == "onnx"


def test_network_is_strongly_typed_without_the_fp16_flag(translator):
    import tensorrt as trt

    from uda_trt.export.engine import _strongly_typed_flags

    network = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(_strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.ERROR))
    fp16_onnx = translator.with_name("latest_net_G_A.fp16.onnx")
    assert parser.parse(fp16_onnx.read_bytes(), str(fp16_onnx))
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


def _precisions(layer: dict) -> set[str]:
    """'fp32' / 'fp16' (or the raw text) of each input and output, from the inspector's "Format/Datatype", e.g.
    "Row major linear FP32" or "Channel major FP16 format where channel % 8 == 0"."""
    found = set()
    for tensor in layer.get("Inputs", []) + layer.get("Outputs", []):
        text = tensor.get("Format/Datatype", "")
        found.add("fp32" if "FP32" in text or "Float" in text else "fp16" if "FP16" in text or "Half" in text else text)
    return found


def test_instance_norm_layers_of_the_built_engine_compute_in_float32(translator):
    """Read back from the engine itself, not from a flag the test set: every engine layer that carries one of the
    FP16 ONNX's InstanceNormalization nodes has float32 data, while the engine as a whole runs in FP16."""
    import onnx

    norms = [
        node.name
        for node in onnx.load(translator.with_name("latest_net_G_A.fp16.onnx")).graph.node
        if node.op_type == "InstanceNormalization"
    ]
    assert norms, "the generator has InstanceNormalization layers"
    layers = engine_layers(translator, (2, 64, 128, 3))
    assert layers and all(isinstance(layer, dict) for layer in layers), "engine built without detailed layer info"
    assert "fp16" in set().union(*(_precisions(layer) for layer in layers)), "the engine runs no layer in FP16"
    for name in norms:
        carrying = [layer for layer in layers if name in layer["Name"] and layer.get("LayerType") != "Reformat"]
        if not carrying and any("ForeignNode" in layer["Name"] for layer in layers):
            # a Myelin region lists only its first and last node, and the inspector shows no precision inside it
            pytest.skip(f"TensorRT compiled {name} into a Myelin region: its precision is not visible to the inspector")
        assert carrying, f"no engine layer carries {name}"
        for layer in carrying:
            assert "fp32" in _precisions(layer), (name, layer["Name"], _precisions(layer))


def test_segmenter_engine_with_minimum_batch_2_was_checked_inside_its_profile(segmenter):
    from uda_trt.runtime.errors import UserError
    from uda_trt.runtime.runners import open_runner
    from uda_trt.runtime.sidecar import load_sidecar

    sidecar = load_sidecar(segmenter)
    assert sidecar.engine["profile"] == {"min": [2, 64, 128, 3], "opt": [2, 80, 160, 3], "max": [4, 160, 320, 3]}
    check = sidecar.validation["engine"]
    # the three built-in scenes, drawn at 320x160 (the nearest size inside the profile), fed in batches of >= 2
    assert check["passed"] and check["images"] == 3 and check["pixels"] == 3 * 320 * 160
    with open_runner(segmenter) as runner, pytest.raises(UserError, match="batch size 1 is outside"):
        runner.infer({"images": np.zeros((1, 80, 160, 3), np.uint8)})


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_segmenter_engine_follows_image_sizes_changing_between_calls(segmenter):
    """Batches of 2 at five sizes in a row on one runner (back to the first size at the end) give the labels a fresh
    runner gives for that size alone, and the FP32 ONNX's labels up to FP16 rounding: the engine's input shape,
    output buffers and strides follow every change."""
    from uda_trt.export.parity import synthetic_parity_images
    from uda_trt.runtime.runners import open_runner

    sizes = [(160, 80), (320, 160), (128, 64), (224, 112), (160, 80)]
    batches = [np.stack(synthetic_parity_images("segment", size, count=2)) for size in sizes]
    with open_runner(segmenter) as engine:
        sequence = [engine.infer({"images": batch})["labels"] for batch in batches]
    alone = []
    for batch in batches:
        with open_runner(segmenter) as engine:
            alone.append(engine.infer({"images": batch})["labels"])
    with open_runner(segmenter.with_name("best.onnx"), "onnxruntime-cpu") as onnx:
        reference = [onnx.infer({"images": batch})["labels"] for batch in batches]
    # the comparison with ONNX means something only if two scenes do not get (nearly) the same map
    assert _agreement(reference[0][0], reference[0][1]) < 0.9, "the segmenter's labels hardly depend on the image"
    for labels, fresh, ref, (width, height) in zip(sequence, alone, reference, sizes, strict=True):
        assert labels.shape == fresh.shape == ref.shape == (2, height, width)
        assert _agreement(labels, fresh) >= 0.999, ((width, height), _agreement(labels, fresh))
        assert _agreement(labels, ref) >= 0.95, ((width, height), _agreement(labels, ref))
    assert _agreement(sequence[0], sequence[-1]) >= 0.999  # the first size again, after four others


def test_translator_engine_follows_image_sizes_changing_between_calls(translator):
    from uda_trt.export.parity import compare
    from uda_trt.runtime.runners import open_runner

    rng = np.random.default_rng(2)
    shapes = [(2, 64, 128), (1, 96, 192), (3, 32, 64), (2, 64, 128)]
    batches = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    with (
        open_runner(translator) as engine,
        open_runner(translator.with_name("latest_net_G_A.onnx"), "onnxruntime-cpu") as onnx,
    ):
        for batch in batches:
            out, ref = engine.infer({"images": batch})["translated"], onnx.infer({"images": batch})["translated"]
            assert out.shape == batch.shape
            report = compare("translate", list(ref), list(out), 0.995, 2, "onnx")
            assert report.passed, (batch.shape, report.summary())


def _timing_cache_state(data: bytes):
    """(cache or None, accepted) for serialized timing-cache bytes, as this TensorRT and GPU see them."""
    import tensorrt as trt

    config = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_builder_config()
    cache = config.create_timing_cache(data)
    return cache, cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)


def test_default_timing_cache_is_keyed_by_tensorrt_version_and_gpu(translator):
    import tensorrt as trt

    from uda_trt.export.engine import default_timing_cache
    from uda_trt.runtime.gpu import current_gpu

    path = default_timing_cache(trt.__version__, current_gpu().compute_capability)
    assert path.is_file(), "export-trt without --timing-cache writes the versioned default"
    assert path.name == f"tensorrt-{trt.__version__}-sm{current_gpu().compute_capability.replace('.', '')}.timing-cache"
    assert _timing_cache_state(path.read_bytes())[1]


def test_timing_cache_is_reused_by_the_next_build(tmp_path, translator):
    from uda_trt.export.engine import build_engine, default_profile

    fp16 = translator.with_name("latest_net_G_A.fp16.onnx")
    profile = default_profile("translate", (128, 64), (1, 2, 4))
    # CUDA and TensorRT start-up land in this build, so the two timed builds differ only by the cache
    build_engine(fp16, tmp_path / "warm.engine", profile, timing_cache=None)
    cache = tmp_path / "tensorrt.timing-cache"
    first = build_engine(fp16, tmp_path / "first.engine", profile, timing_cache=cache)
    saved, accepted = _timing_cache_state(cache.read_bytes())
    assert accepted
    if hasattr(saved, "queryKeys"):  # TensorRT >= 10.x: the entries themselves
        assert len(saved.queryKeys()) > 0
    second = build_engine(fp16, tmp_path / "second.engine", profile, timing_cache=cache)
    assert second.seconds < 0.8 * first.seconds, (first.seconds, second.seconds)


def test_corrupt_timing_cache_is_replaced_and_the_build_succeeds(tmp_path, translator, caplog):
    from uda_trt.export.engine import build_engine, default_profile

    garbage = b"not a TensorRT timing cache" * 64
    cache = tmp_path / "tensorrt.timing-cache"
    cache.write_bytes(garbage)
    rejected = not _timing_cache_state(garbage)[1]  # create_timing_cache returns None: the next call used to raise
    with caplog.at_level(logging.WARNING, logger="uda_trt.export.engine"):
        build = build_engine(
            translator.with_name("latest_net_G_A.fp16.onnx"),
            tmp_path / "rebuilt.engine",
            default_profile("translate", (128, 64), (1, 1, 2)),
            timing_cache=cache,
        )
    assert build.path.is_file() and build.path.stat().st_size > 0
    if rejected:
        assert f"timing cache {cache} is corrupt or from another TensorRT or GPU" in caplog.text
    assert cache.read_bytes() != garbage and _timing_cache_state(cache.read_bytes())[1]


def test_profile_tensorrt_rejects_is_one_line_naming_the_onnx(tmp_path, translator):
    from uda_trt.export.engine import Profile, build_engine
    from uda_trt.runtime.errors import UserError

    fp16 = translator.with_name("latest_net_G_A.fp16.onnx")
    inconsistent = Profile(min=(2, 64, 128, 3), opt=(1, 64, 128, 3), max=(4, 64, 128, 3))  # bypasses Profile.check
    with pytest.raises(UserError, match=r"latest_net_G_A.fp16.onnx: TensorRT rejects the engine profile"):
        build_engine(fp16, tmp_path / "never.engine", inconsistent, timing_cache=None)
    assert not (tmp_path / "never.engine").exists()
