"""Runners on tiny ONNX models built here with onnx.helper: backend choice, input checks, real inference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from uda_trt.runtime import runners
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.runners import OnnxRuntimeRunner, choose_backend, gpu_present, open_runner
from uda_trt.runtime.sidecar import Sidecar, file_sha256, sidecar_path

NO_GPU = pytest.mark.skipif(gpu_present(), reason="checks the CPU-only machine's behaviour")


def _model(task: str) -> onnx.ModelProto:
    """translate: 255 - images (NHWC uint8); segment: labels = max over channels (NHW uint8)."""
    images = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3])
    if task == "translate":
        out = helper.make_tensor_value_info("translated", TensorProto.UINT8, ["batch", "height", "width", 3])
        white = helper.make_tensor("white", TensorProto.UINT8, [], [255])
        nodes = [helper.make_node("Sub", ["white", "images"], ["translated"])]
        graph = helper.make_graph(nodes, "invert", [images], [out], initializer=[white])
    else:
        out = helper.make_tensor_value_info("labels", TensorProto.UINT8, ["batch", "height", "width"])
        nodes = [helper.make_node("ReduceMax", ["images"], ["labels"], axes=[3], keepdims=0)]
        graph = helper.make_graph(nodes, "channel_max", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def write_artifact(folder: Path, task: str = "translate", data: bytes | None = None) -> Path:
    """STEM.onnx (the tiny model, or `data`) plus a matching STEM.json."""
    path = folder / f"{task}.onnx"
    path.write_bytes(data if data is not None else _model(task).SerializeToString())
    segment = task == "segment"
    Sidecar(
        task=task,
        architecture="test",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[
            {"name": "labels" if segment else "translated", "dtype": "uint8", "layout": "NHW" if segment else "NHWC"}
        ],
        size_divisor=1 if segment else 4,
        artifacts={"onnx": {"file": path.name, "sha256": file_sha256(path)}},
        source_checkpoint={"file": "x.pth", "sha256": "0" * 64},
        opset=17,
        ir_version=10,
        exporter_version="test",
        working_size=None if segment else (16, 8),
        scale=0.5 if segment else None,
        class_names=["a"] if segment else None,
        train_id_to_label_id=[7] if segment else None,
        palette=[[1, 2, 3]] if segment else None,
    ).write(sidecar_path(path))
    return path


def test_translator_runs_on_cpu(tmp_path):
    path = write_artifact(tmp_path)
    batch = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    with open_runner(path, threads=1) as runner:
        assert runner.sidecar.task == "translate"
        assert runner.backend == (
            "onnxruntime-cuda" if gpu_present() and runners._ort_has("CUDAExecutionProvider") else "onnxruntime-cpu"
        )
        out = runner.infer({"images": batch})
        again = runner.infer({"images": batch[:, :, ::-1]})  # non-contiguous views are accepted
    assert set(out) == {"translated"}
    np.testing.assert_array_equal(out["translated"], 255 - batch)
    np.testing.assert_array_equal(again["translated"], 255 - batch[:, :, ::-1])


def test_segmenter_any_size(tmp_path):
    path = write_artifact(tmp_path, "segment")
    batch = np.random.default_rng(1).integers(0, 19, (1, 7, 5, 3), dtype=np.uint8)
    with open_runner(path, backend="onnxruntime-cpu") as runner:
        labels = runner.infer({"images": batch})["labels"]
    assert labels.dtype == np.uint8 and labels.shape == (1, 7, 5)
    np.testing.assert_array_equal(labels, batch.max(axis=3))


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"images": np.zeros((1, 8, 8, 3), np.float32)}, "must be a uint8 numpy array"),
        ({"images": [[1]]}, "must be a uint8 numpy array"),
        ({"images": np.zeros((1, 3, 8, 8), np.uint8)}, "N x H x W x 3"),
        ({"images": np.zeros((8, 8, 3), np.uint8)}, "N x H x W x 3"),
        ({"images": np.zeros((1, 8, 10, 3), np.uint8)}, "not a multiple of 4"),
        ({"images": np.zeros((0, 8, 8, 3), np.uint8)}, "empty"),
        ({"input": np.zeros((1, 8, 8, 3), np.uint8)}, "one input named 'images'"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, feeds, message):
    with (
        open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu") as runner,
        pytest.raises(UserError, match=message) as info,
    ):
        runner.infer(feeds)
    assert "translate.onnx" in info.value.format_message()


def test_cpu_stream_keeps_two_batches_in_flight_and_keeps_order(tmp_path):
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (1 + i % 3, 8, 12, 3), dtype=np.uint8) for i in range(7)]
    with open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu", threads=3) as runner:
        assert runner.runs_in_flight == 2
        pulled = []
        stream = runner.infer_many(pulled.append(batch) or batch for batch in batches)
        streamed = [next(stream)["translated"]]
        assert len(pulled) == 2  # the second batch was handed over before the first came back
        streamed += [out["translated"] for out in stream]
        broken = runner.infer_many([batches[0], batches[1].astype(np.float32), batches[2]])
        assert next(broken)["translated"].shape == batches[0].shape
        with pytest.raises(UserError, match="uint8"):
            next(broken)
    assert len(streamed) == len(batches)
    for batch, out in zip(batches, streamed, strict=True):
        np.testing.assert_array_equal(out, 255 - batch)
    assert open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu", threads=1).runs_in_flight == 1


def _conv_translator_bytes() -> bytes:
    """uint8 NHWC -> float, one 3x3 convolution (MLAS's threaded kernels), rounded back to uint8."""
    rng = np.random.default_rng(0)
    node = helper.make_node
    initializers = [
        onnx.numpy_helper.from_array(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32), "w"),
        onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        onnx.numpy_helper.from_array(np.array(255.0, np.float32), "top"),
    ]
    nodes = [
        node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        node("Conv", ["nchw", "w"], ["y"], pads=[1, 1, 1, 1]),
        node("Transpose", ["y"], ["nhwc"], perm=[0, 2, 3, 1]),
        node("Clip", ["nhwc", "zero", "top"], ["clipped"]),
        node("Round", ["clipped"], ["rounded"]),
        node("Cast", ["rounded"], ["translated"], to=TensorProto.UINT8),
    ]
    images = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3])
    out = helper.make_tensor_value_info("translated", TensorProto.UINT8, ["batch", "height", "width", 3])
    model = helper.make_model(
        helper.make_graph(nodes, "conv", [images], [out], initializer=initializers),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 10
    return model.SerializeToString()


def test_cpu_batches_are_split_between_the_runs_and_a_lone_image_gets_every_thread(tmp_path):
    """Batches of 4, 1, 3, 2 and 5 images on two runs: the same outputs (within 1 grey level) as whole batches on
    one thread, in order; the 1-image batch ran on the all-threads session."""
    artifact = write_artifact(tmp_path, data=_conv_translator_bytes())
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (n, 16, 24, 3), dtype=np.uint8) for n in (4, 1, 3, 2, 5)]
    with open_runner(artifact, backend="onnxruntime-cpu", threads=1) as whole:
        expected = [out["translated"] for out in whole.infer_many(batches)]
    with open_runner(artifact, backend="onnxruntime-cpu", threads=2) as split:
        streamed = [out["translated"] for out in split.infer_many(batches)]
        assert sorted(split._sessions) == [1, 2]  # one-thread runs for the parts, all threads for the lone image
    for want, got in zip(expected, streamed, strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_cpu_job_session_splits_threads_without_memory_patterns(tmp_path):
    with open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu", threads=2) as runner:
        ((threads, session),) = runner._sessions.items()  # only the session infer_many streams through
        options = session.get_session_options()
    assert threads == options.intra_op_num_threads == 1
    assert not options.enable_mem_pattern  # see runners.session_options: first runs mapped ~3 GB with them
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_infer_outside_with_block(tmp_path):
    runner = open_runner(write_artifact(tmp_path))
    with pytest.raises(RuntimeError, match="with open_runner"):
        runner.infer({"images": np.zeros((1, 8, 8, 3), np.uint8)})


def test_threads_default_to_all_cores(tmp_path):
    runner = open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu")
    assert isinstance(runner, OnnxRuntimeRunner) and runner.threads == default_workers() >= 1
    assert open_runner(write_artifact(tmp_path), backend="onnxruntime-cpu", threads=1).threads == 1


def test_unloadable_model_is_one_line(tmp_path):
    path = write_artifact(tmp_path, data=b"\x08garbage")
    runner = open_runner(path, backend="onnxruntime-cpu")
    with pytest.raises(UserError, match="ONNX Runtime cannot load it") as info, runner:
        pass
    assert "\n" not in info.value.format_message()


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(UserError, match="model file not found"):
        open_runner(tmp_path / "nothing.onnx")
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(UserError, match="not a model artifact"):
        open_runner(tmp_path / "model.pth")


def test_backend_choice_by_suffix(tmp_path):
    assert choose_backend(Path("m.engine")) == "tensorrt"
    assert choose_backend(Path("m.fp16.onnx"), "onnxruntime-cpu") == "onnxruntime-cpu"
    with pytest.raises(UserError, match="runs only on the tensorrt backend"):
        choose_backend(Path("m.engine"), "onnxruntime-cpu")
    with pytest.raises(UserError, match="runs .engine files"):
        choose_backend(Path("m.onnx"), "tensorrt")
    with pytest.raises(UserError, match="unknown backend"):
        choose_backend(Path("m.onnx"), "cuda")


@NO_GPU
def test_cpu_machine_never_asks_for_gpu_providers(tmp_path):
    assert choose_backend(Path("m.onnx")) == "onnxruntime-cpu"
    assert choose_backend(Path("m.onnx"), "onnxruntime") == "onnxruntime-cpu"
    for backend in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        with pytest.raises(UserError, match="needs an NVIDIA GPU"):
            choose_backend(Path("m.onnx"), backend)
    assert runners.tensorrt_unavailable_reason() == "no NVIDIA GPU found"


def test_hidden_gpu_counts_as_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu_present()
    assert choose_backend(Path("m.onnx")) == "onnxruntime-cpu"


def test_engine_without_tensorrt_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    onnx_path = write_artifact(tmp_path)
    engine = tmp_path / "translate.engine"
    engine.write_bytes(b"serialized plan")
    sidecar = runners.load_sidecar(onnx_path)
    artifacts = {**sidecar.artifacts, "engine": {"file": engine.name, "sha256": file_sha256(engine)}}
    dataclasses.replace(sidecar, artifacts=artifacts, engine=ENGINE_FIELDS).write(sidecar_path(engine))
    runner = open_runner(engine)
    assert runner.backend == "tensorrt"
    with pytest.raises(UserError, match="needs TensorRT and an NVIDIA GPU: no NVIDIA GPU found") as info, runner:
        pass
    assert "\n" not in info.value.format_message()


ENGINE_FIELDS = {
    "tensorrt_version": "10.13.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "profile": {"min": [1, 16, 32, 3], "opt": [4, 16, 32, 3], "max": [8, 16, 32, 3]},
}


def test_engine_artifact_needs_its_engine_block(tmp_path):
    onnx_path = write_artifact(tmp_path)
    engine = tmp_path / "translate.engine"
    engine.write_bytes(b"serialized plan")
    sidecar = runners.load_sidecar(onnx_path)
    artifacts = {**sidecar.artifacts, "engine": {"file": engine.name, "sha256": file_sha256(engine)}}
    dataclasses.replace(sidecar, artifacts=artifacts).write(sidecar_path(engine))
    with pytest.raises(UserError, match="field 'engine' is missing"):
        open_runner(engine)
    broken = {**ENGINE_FIELDS, "profile": {"min": [1, 16, 32], "opt": [4, 16, 32, 3], "max": [8, 16, 32, 3]}}
    dataclasses.replace(sidecar, artifacts=artifacts, engine=broken).write(sidecar_path(engine))
    with pytest.raises(UserError, match=r"engine.profile.min' must be \[batch, height, width, 3\]"):
        open_runner(engine)


def test_int8_engine_runs_on_tensorrt_with_its_own_sidecar_block(tmp_path):
    """STEM.int8.engine goes to the native TensorRT runner, which takes its profile from the `int8_engine` block,
    not the FP16 engine's: checked before `with`, where no GPU is needed."""
    assert choose_backend(Path("m.int8.engine")) == "tensorrt"
    with pytest.raises(UserError, match="runs only on the tensorrt backend"):
        choose_backend(Path("m.int8.engine"), "onnxruntime-cpu")
    onnx_path = write_artifact(tmp_path)
    engine, int8_engine = tmp_path / "translate.engine", tmp_path / "translate.int8.engine"
    engine.write_bytes(b"fp16 plan")
    int8_engine.write_bytes(b"int8 plan")
    sidecar = runners.load_sidecar(onnx_path)
    files = {"engine": engine, "int8_engine": int8_engine}
    artifacts = {**sidecar.artifacts, **{key: {"file": f.name, "sha256": file_sha256(f)} for key, f in files.items()}}
    narrow = {**ENGINE_FIELDS, "profile": {"min": [1, 16, 32, 3], "opt": [2, 16, 32, 3], "max": [2, 16, 32, 3]}}
    listed = dataclasses.replace(sidecar, artifacts=artifacts, engine=ENGINE_FIELDS, int8_engine=narrow)
    listed.write(sidecar_path(engine))
    fp16, int8 = open_runner(engine), open_runner(int8_engine)
    assert fp16.backend == int8.backend == "tensorrt"
    assert (fp16.default_batch_size, int8.default_batch_size) == (4, 2)
    fp16.expect_inputs(4, (32, 16))
    with pytest.raises(UserError, match=r"translate.int8.engine: the job's batch size 4 is outside .* 1..2"):
        int8.expect_inputs(4, (32, 16))


def _machine(monkeypatch, gpu: bool, providers: tuple[str, ...], tensorrt: bool) -> None:
    """Describe a machine to the backend choice: its GPU, onnxruntime's providers, the tensorrt package."""
    monkeypatch.setattr(runners, "gpu_present", lambda: gpu)
    monkeypatch.setattr(runners, "_ort_has", lambda provider: provider in providers)
    real_find_spec = runners.importlib.util.find_spec

    def find_spec(name: str, *args):
        if name in ("tensorrt", "pycuda"):
            return object() if tensorrt else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(runners.importlib.util, "find_spec", find_spec)


CPU_ONLY = ("CPUExecutionProvider",)
ALL_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@pytest.mark.parametrize(
    ("gpu", "providers", "tensorrt", "expected"),
    [
        (False, CPU_ONLY, False, "onnxruntime-cpu"),
        (False, ALL_PROVIDERS, True, "onnxruntime-cpu"),
        (True, CPU_ONLY, False, "onnxruntime-cpu"),
        (True, ALL_PROVIDERS[1:], False, "onnxruntime-cuda"),
        (True, ALL_PROVIDERS, False, "onnxruntime-cuda"),
        (True, ALL_PROVIDERS, True, "onnxruntime-tensorrt"),
    ],
)
def test_auto_backend_follows_suffix_and_machine(monkeypatch, gpu, providers, tensorrt, expected):
    _machine(monkeypatch, gpu, providers, tensorrt)
    assert choose_backend(Path("m.onnx")) == expected
    assert choose_backend(Path("m.fp16.onnx")) == expected
    assert choose_backend(Path("m.engine")) == "tensorrt"
    reason = runners.tensorrt_unavailable_reason(for_running=True)
    assert (reason is None) == (gpu and tensorrt)


def test_gpu_machine_without_the_provider_refuses_in_one_line(monkeypatch):
    _machine(monkeypatch, True, ("CUDAExecutionProvider", "CPUExecutionProvider"), False)
    with pytest.raises(UserError, match="needs onnxruntime-gpu with TensorrtExecutionProvider"):
        choose_backend(Path("m.onnx"), "onnxruntime-tensorrt")
    assert choose_backend(Path("m.onnx"), "onnxruntime-cuda") == "onnxruntime-cuda"
    assert runners.tensorrt_unavailable_reason() == "tensorrt not installed (pip install 'uda-trt[tensorrt]')"
    both = "tensorrt and pycuda not installed (pip install 'uda-trt[tensorrt]')"
    assert runners.tensorrt_unavailable_reason(True) == both


def test_tensorrt_provider_options_cache_per_artifact_and_profile_the_working_size(tmp_path):
    onnx_path = write_artifact(tmp_path)
    sidecar = runners.load_sidecar(onnx_path)
    options = runners.tensorrt_ep_options(onnx_path, sidecar, cache_root=tmp_path / "cache")
    digest = sidecar.artifacts["onnx"]["sha256"][:16]
    assert options["trt_engine_cache_path"] == str(tmp_path / "cache" / digest)
    assert options["trt_engine_cache_enable"] == "True" and options["trt_fp16_enable"] == "False"
    width, height = sidecar.working_size
    assert options["trt_profile_min_shapes"] == f"images:1x{height}x{width}x3"
    assert options["trt_profile_max_shapes"] == f"images:8x{height}x{width}x3"
