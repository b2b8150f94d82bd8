"""The runtime on a GPU: ONNX Runtime's CUDA and TensorRT providers active (not silently fallen back) and agreeing
with the CPU provider within the export parity bounds, the TensorRT provider's profiles and cache, and the native
TensorRT runner's context, threads, abandoned streams and name checks.

Runs with `make test-gpu` (which puts onnxruntime-gpu in place of onnxruntime, with tensorrt and pycuda); skipped
with the reason elsewhere. Small float networks built here (convolutions and tanh, as translators are) keep each
engine build to seconds and give rounding something to move.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.runners import OnnxRuntimeRunner, gpu_present, open_runner, tensorrt_unavailable_reason
from uda_trt.runtime.sidecar import Sidecar, file_sha256, load_sidecar, sidecar_path

pytestmark = pytest.mark.gpu
SIZE = (64, 32)  # (w, h) of the translator's images
PROFILE = {"min": [1, 32, 64, 3], "opt": [2, 32, 64, 3], "max": [4, 32, 64, 3]}


def _need(provider: str) -> None:
    if not gpu_present():
        pytest.skip("needs an NVIDIA GPU: none found")
    if provider not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime lacks {provider} (make test-gpu installs onnxruntime-gpu)")


def _save(folder: Path, name: str, nodes: list, output, initializers: list, **sidecar) -> Path:
    images = helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])
    model = helper.make_model(
        helper.make_graph(nodes, name, [images], [output], initializers),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    Sidecar(
        architecture=name,
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        artifacts={"onnx": {"file": path.name, "sha256": file_sha256(path)}},
        source_checkpoint={"file": "", "sha256": ""},
        opset=17,
        ir_version=10,
        exporter_version="test",
        **sidecar,
    ).write(sidecar_path(path))
    return path


def _write_translator(folder: Path) -> Path:
    """uint8 NHWC -> Cast, two 3x3 convolutions, tanh, round, clip -> Cast uint8: uint8 only at the edges."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)),
        "b1": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.3, (3, 8, 3, 3)),
        "b2": rng.normal(0, 0.1, 3),
    }
    constants = {"c255": 255.0, "half": 127.5, "zero": 0.0}
    initializers = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in {**weights, **constants}.items()]
    node = helper.make_node
    nodes = [
        node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        node("Div", ["nchw", "c255"], ["unit"]),
        node("Conv", ["unit", "w1", "b1"], ["hidden"], pads=[1, 1, 1, 1]),
        node("Relu", ["hidden"], ["relu"]),
        node("Conv", ["relu", "w2", "b2"], ["logits"], pads=[1, 1, 1, 1]),
        node("Tanh", ["logits"], ["tanh"]),
        node("Mul", ["tanh", "half"], ["scaled"]),
        node("Add", ["scaled", "half"], ["shifted"]),
        node("Transpose", ["shifted"], ["nhwc"], perm=[0, 2, 3, 1]),
        node("Round", ["nhwc"], ["rounded"]),
        node("Clip", ["rounded", "zero", "c255"], ["clipped"]),
        node("Cast", ["clipped"], ["translated"], to=TensorProto.UINT8),
    ]
    output = helper.make_tensor_value_info("translated", TensorProto.UINT8, ["N", "H", "W", 3])
    outputs = [{"name": "translated", "dtype": "uint8", "layout": "NHWC"}]
    return _save(folder, "net", nodes, output, initializers, task="translate", outputs=outputs, size_divisor=4,
                 working_size=SIZE)  # fmt: skip


def _write_segmenter(folder: Path) -> Path:
    """labels = min(max over channels // 14, 18), computed in float: uint8 only at the edges."""
    from uda_trt.runtime.labels import CLASS_NAMES, PALETTE, TRAIN_ID_TO_LABEL_ID

    constants = {"c14": 14.0, "zero": 0.0, "c18": 18.0}
    initializers = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in constants.items()]
    node = helper.make_node
    nodes = [
        node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        node("ReduceMax", ["x"], ["brightest"], axes=[3], keepdims=0),
        node("Div", ["brightest", "c14"], ["ratio"]),
        node("Floor", ["ratio"], ["ids"]),
        node("Clip", ["ids", "zero", "c18"], ["clipped"]),
        node("Cast", ["clipped"], ["labels"], to=TensorProto.UINT8),
    ]
    output = helper.make_tensor_value_info("labels", TensorProto.UINT8, ["N", "H", "W"])
    return _save(folder, "seg", nodes, output, initializers, task="segment",
                 outputs=[{"name": "labels", "dtype": "uint8", "layout": "NHW"}], size_divisor=1, scale=1.0,
                 class_names=list(CLASS_NAMES), train_id_to_label_id=TRAIN_ID_TO_LABEL_ID.tolist(),
                 palette=PALETTE.tolist())  # fmt: skip


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _on_cpu(path: Path, images: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-cpu") as runner:
        return runner.infer({"images": images})["translated"]


def _assert_parity(reference: np.ndarray, candidate: np.ndarray) -> None:
    """The bounds every FP32 export is held to against its reference (export.onnx_export.ONNX_PARITY)."""
    from uda_trt.export.onnx_export import ONNX_PARITY
    from uda_trt.export.parity import compare

    bounds = ONNX_PARITY["translate"]
    report = compare("translate", list(reference), list(candidate), bounds["required"], bounds["tolerance"], "cpu")
    assert report.passed, report.summary()


def _engines(cache: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in cache.glob("*.engine")}


# ------------------------------------------------------------------------------------------- ONNX Runtime providers


def test_the_gpu_install_gives_onnx_runtime_its_gpu_providers():
    if not gpu_present():
        pytest.skip("needs an NVIDIA GPU: none found")
    available = ort.get_available_providers()
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider"} <= set(available), (
        f"onnxruntime has only {available}: make test-gpu replaces onnxruntime with onnxruntime-gpu"
    )


def test_cuda_provider_is_active_and_agrees_with_the_cpu(tmp_path):
    _need("CUDAExecutionProvider")
    path = _write_translator(tmp_path)
    images = _images((3, SIZE[1], SIZE[0], 3))
    with OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-cuda") as runner:
        assert runner.active_providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        out = runner.infer({"images": images})["translated"]
    _assert_parity(_on_cpu(path, images), out)


def test_tensorrt_provider_covers_the_jobs_batches_from_a_fresh_cache(tmp_path, monkeypatch):
    _need("TensorrtExecutionProvider")
    home = tmp_path / "home"  # no ~/.cache: the provider alone would not create its cache folder
    monkeypatch.setenv("HOME", str(home))
    path = _write_translator(tmp_path)
    batches = [_images((12, SIZE[1], SIZE[0], 3), seed=1), _images((3, SIZE[1], SIZE[0], 3), seed=2)]
    runner = OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-tensorrt")
    runner.expect_inputs(12, SIZE)  # above the 8 the provider's profile once stopped at
    with runner:
        assert runner.active_providers[0] == "TensorrtExecutionProvider"
        outputs = [out["translated"] for out in runner.infer_many(batches)]
    for batch, out in zip(batches, outputs, strict=True):
        _assert_parity(_on_cpu(path, batch), out)
    cache = home / ".cache" / "uda-trt" / "onnxruntime-tensorrt" / file_sha256(path)[:16]
    engines = _engines(cache)
    assert engines, f"no engine in {cache}: the TensorRT provider did not build one"
    runner = OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-tensorrt")
    runner.expect_inputs(12, SIZE)
    with runner:  # the same job again starts from the cached engine: nothing rebuilt
        runner.infer({"images": batches[1]})
    assert _engines(cache) == engines


def test_tensorrt_provider_gives_segmenters_one_engine_for_every_size(tmp_path, monkeypatch):
    _need("TensorrtExecutionProvider")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = _write_segmenter(tmp_path)
    small, large = _images((2, 128, 256, 3), seed=3), _images((1, 512, 1024, 3), seed=4)
    runner = OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-tensorrt")
    runner.expect_inputs(2)
    with runner:
        assert runner.active_providers[0] == "TensorrtExecutionProvider"
        first = runner.infer({"images": small})["labels"]
        cache = tmp_path / "home" / ".cache" / "uda-trt" / "onnxruntime-tensorrt" / file_sha256(path)[:16]
        engines = _engines(cache)
        second = runner.infer({"images": large})["labels"]  # larger, inside the profile: no rebuild
        assert engines and _engines(cache) == engines
    for images, labels in ((small, first), (large, second)):
        np.testing.assert_array_equal(labels, np.minimum(images.max(axis=3) // 14, 18))


# --------------------------------------------------------------------------------------------- native TensorRT


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    """STEM.engine built here from the float translator (FP32, batch 1..4 at 64x32), with its sidecar."""
    reason = tensorrt_unavailable_reason(for_running=True)
    if reason is not None:
        pytest.skip(f"needs TensorRT on a GPU: {reason}")
    import tensorrt as trt

    from uda_trt.runtime.gpu import current_gpu

    folder = tmp_path_factory.mktemp("engine")
    onnx_path = _write_translator(folder)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *(tuple(PROFILE[key]) for key in ("min", "opt", "max")))
    assert config.add_optimization_profile(profile) == 0
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    path = onnx_path.with_suffix(".engine")
    path.write_bytes(bytes(plan))
    gpu = current_gpu()
    sidecar = load_sidecar(onnx_path)
    block = {"tensorrt_version": trt.__version__, "gpu_name": gpu.name, "compute_capability": gpu.compute_capability}
    artifacts = {**sidecar.artifacts, "engine": {"file": path.name, "sha256": file_sha256(path)}}
    dataclasses.replace(sidecar, artifacts=artifacts, engine=block | {"profile": PROFILE}).write(sidecar_path(path))
    return path


def test_native_runner_agrees_with_onnx_after_an_abandoned_stream(engine):
    batches = [_images((n, SIZE[1], SIZE[0], 3), seed=n) for n in (4, 2, 3, 1)]
    with open_runner(engine) as runner:
        assert runner.active_providers == ["TensorRT"]
        abandoned = runner.infer_many(iter(batches))
        next(abandoned)  # batch 0 returned, batch 1 still in flight; the stream is then left, not closed
        fresh = [runner.infer({"images": batch})["translated"] for batch in batches]
        streamed = [out["translated"] for out in runner.infer_many(batches)]
    for batch, one, many in zip(batches, fresh, streamed, strict=True):
        np.testing.assert_array_equal(one, many)
        _assert_parity(_on_cpu(engine.with_suffix(".onnx"), batch), one)
    del abandoned


def test_native_runner_is_used_from_the_thread_that_entered_it(engine):
    batch = _images((1, SIZE[1], SIZE[0], 3))
    with open_runner(engine) as runner, ThreadPoolExecutor(1) as pool:
        elsewhere = pool.submit(runner.infer, {"images": batch})
        with pytest.raises(RuntimeError, match="only from the thread that entered it"):
            elsewhere.result()
        assert runner.infer({"images": batch})["translated"].shape == batch.shape


def test_native_runner_names_a_tensor_the_engine_lacks_in_one_line(engine, tmp_path):
    copy = tmp_path / engine.name
    shutil.copy(engine, copy)
    data = json.loads(sidecar_path(engine).read_text())
    data["inputs"][0]["name"] = "frames"
    sidecar_path(copy).write_text(json.dumps(data))
    with pytest.raises(UserError) as info, open_runner(copy):
        pass
    message = info.value.format_message()
    assert "the sidecar names input 'frames'" in message and "images (input)" in message and "\n" not in message
