"""ONNX Runtime providers that do not start: refused in one line for an explicit backend, recorded for auto; the
TensorRT provider's cache folder and explicit profile; a native engine's profile checked before a job starts.

Real sessions of the CPU build of ONNX Runtime, which cannot give the CUDA or TensorRT provider: asked for them, it
logs a warning and runs on the CPU, the silent fallback these checks exist for. On a GPU build the refusal tests
skip (tests/test_runtime/test_gpu_providers.py covers that build).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnxruntime as ort
import pytest

from helpers import write_cityscapes, write_gta5, write_invert_translator, write_red_over_14_segmenter
from uda_trt.runtime import runners
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.runners import OnnxRuntimeRunner, open_runner, provider_problem, tensorrt_ep_profile
from uda_trt.runtime.sidecar import file_sha256, load_sidecar, sidecar_path

GPU_BACKENDS = {"onnxruntime-cuda": "CUDAExecutionProvider", "onnxruntime-tensorrt": "TensorrtExecutionProvider"}
LACKING = [b for b, provider in GPU_BACKENDS.items() if provider not in ort.get_available_providers()]
CPU_BUILD = pytest.mark.skipif(not LACKING, reason="this onnxruntime has the GPU providers (the GPU tests cover it)")


@CPU_BUILD
@pytest.mark.parametrize("backend", LACKING)
def test_a_requested_provider_that_did_not_start_is_refused_in_one_line(tmp_path, monkeypatch, backend):
    home = tmp_path / "fresh-home"  # no ~/.cache yet, as on a fresh machine
    monkeypatch.setenv("HOME", str(home))
    path = _translator(tmp_path)
    runner = OnnxRuntimeRunner(path, load_sidecar(path), backend)  # as export builds them: no backend choice
    with pytest.raises(UserError) as info, runner:
        pass
    message = info.value.format_message()
    assert f"backend {backend} needs {GPU_BACKENDS[backend]}, which this onnxruntime lacks" in message
    assert str(path) in message and "onnxruntime-gpu" in message and "\n" not in message
    if backend == "onnxruntime-tensorrt":  # made with its parents, before the session (the provider would not)
        digest = file_sha256(path)[:16]
        assert (home / ".cache" / "uda-trt" / "onnxruntime-tensorrt" / digest).is_dir()


def test_auto_runs_on_what_started_and_says_so(tmp_path, caplog):
    path = _translator(tmp_path)
    runner = OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-cuda", threads=2, fallback=True)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    batch = np.random.default_rng(0).integers(0, 256, (2, 16, 32, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING), runner:
        assert runner.backend == "onnxruntime-cpu" and runner.active_providers == ["CPUExecutionProvider"]
        assert runner.runs_in_flight == 2  # the CPU settings, now that it runs there
        np.testing.assert_array_equal(next(runner.infer_many([batch]))["translated"], 255 - batch)
    assert "running on onnxruntime-cpu instead" in caplog.text and "CUDAExecutionProvider" in caplog.text


def test_provider_problem_tells_a_missing_build_from_a_provider_that_did_not_start():
    requested = runners._ORT_PROVIDERS["onnxruntime-tensorrt"]
    assert provider_problem("onnxruntime-tensorrt", requested, requested, requested) is None
    assert provider_problem("onnxruntime-cpu", ["CPUExecutionProvider"], ["CPUExecutionProvider"], []) is None
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    failed = provider_problem("onnxruntime-tensorrt", requested, requested[1:], gpu_build)
    assert failed.startswith("backend onnxruntime-tensorrt: ONNX Runtime could not start TensorrtExecutionProvider")
    assert "fell back to CUDAExecutionProvider, CPUExecutionProvider" in failed and "libnvinfer" in failed
    lacking = provider_problem("onnxruntime-cuda", requested[1:], ["CPUExecutionProvider"], ["CPUExecutionProvider"])
    assert "needs CUDAExecutionProvider, which this onnxruntime lacks (it has CPUExecutionProvider)" in lacking


def test_an_engine_cache_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file where the home folder should be")
    monkeypatch.setenv("HOME", str(home))
    path = _translator(tmp_path)
    runner = OnnxRuntimeRunner(path, load_sidecar(path), "onnxruntime-tensorrt")
    with pytest.raises(UserError, match="cannot create the TensorRT engine cache") as info, runner:
        pass
    assert str(home / ".cache") in info.value.format_message() and "\n" not in info.value.format_message()


def test_tensorrt_provider_profile_covers_the_job(tmp_path):
    translator = load_sidecar(_translator(tmp_path))
    width, height = translator.working_size
    assert tensorrt_ep_profile(translator) == {
        "trt_profile_min_shapes": f"images:1x{height}x{width}x3",
        "trt_profile_opt_shapes": f"images:4x{height}x{width}x3",
        "trt_profile_max_shapes": f"images:8x{height}x{width}x3",
    }
    # the job's batch size (any, not only up to 8) and its --size; down to 1 for the short last batch
    renamed = dataclasses.replace(translator, inputs=[{"name": "frames", "dtype": "uint8", "layout": "NHWC"}])
    assert list(tensorrt_ep_profile(renamed, 12, (64, 48)).values()) == [
        "frames:1x48x64x3",
        "frames:12x48x64x3",
        "frames:12x48x64x3",
    ]
    assert tensorrt_ep_profile(dataclasses.replace(translator, working_size=None)) == {}
    segmenter = load_sidecar(_segmenter(tmp_path))  # full-resolution images of any size in SEGMENTER_SIZES
    assert list(tensorrt_ep_profile(segmenter, 2).values()) == [
        "images:1x128x256x3",
        "images:2x1024x2048x3",
        "images:2x1024x2048x3",
    ]


def test_a_native_engine_whose_profile_cannot_take_the_job_is_refused_before_it_starts(tmp_path):
    path = _translator(tmp_path)
    engine = tmp_path / "invert.engine"
    engine.write_bytes(b"serialized plan")  # never deserialised: the check needs the sidecar only
    sidecar = load_sidecar(path)
    profile = {"min": [1, 16, 32, 3], "opt": [4, 16, 32, 3], "max": [8, 16, 32, 3]}
    fields = {"tensorrt_version": "10.13.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0", "profile": profile}
    artifacts = {**sidecar.artifacts, "engine": {"file": engine.name, "sha256": file_sha256(engine)}}
    dataclasses.replace(sidecar, artifacts=artifacts, engine=fields).write(sidecar_path(engine))
    open_runner(engine).expect_inputs(8, (32, 16))
    with pytest.raises(UserError, match="batch size 12 is outside the engine's profile range 1..8"):
        open_runner(engine).expect_inputs(12, (32, 16))
    with pytest.raises(UserError, match="width 64 is outside the engine's profile range 32..32"):
        open_runner(engine).expect_inputs(4, (64, 16))


@CPU_BUILD
def test_clis_refuse_a_provider_onnx_runtime_cannot_give_and_write_nothing(tmp_path, cli, user_error):
    translator = _translator(tmp_path)
    gta5 = write_gta5(tmp_path / "gta5", count=1)
    out = tmp_path / "translated"
    backend = LACKING[0]
    result = cli("batch-translate", "--engine", translator, "--input", gta5, "--output", out, "--backend", backend)
    user_error(result, names=backend)
    assert not out.exists()

    segmenter = _segmenter(tmp_path)
    cityscapes = tmp_path / "cityscapes"
    write_cityscapes(cityscapes, cities={"aachen": 1})
    out = tmp_path / "scored"
    args = ["--engine", segmenter, "--cityscapes", cityscapes, "--output", out, "--backend", LACKING[-1]]
    user_error(cli("evaluate-seg", *args), names=LACKING[-1])
    assert not out.exists()


def _translator(tmp_path):
    return write_invert_translator(tmp_path / "translator")  # 255 - image, working size 32x16


def _segmenter(tmp_path):
    return write_red_over_14_segmenter(tmp_path / "segmenter")
