"""One runner contract for every backend: `with open_runner(path) as r: out = r.infer({"images": batch})`.

Numpy uint8 in, numpy uint8 out; the sidecar says what the tensors are called and what sizes are legal. The
backend follows the artifact's suffix and what the machine has: `.onnx` / `.fp16.onnx` run on ONNX Runtime (its
TensorRT or CUDA execution provider only when an NVIDIA GPU is present, so a CPU box never logs provider errors),
`.engine` runs on native TensorRT (imported lazily: a deployment box without it still imports this module).
No torch here, ever.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.pipeline import prefetch
from uda_trt.runtime.sidecar import Sidecar, load_sidecar

# "onnxruntime" = ONNX Runtime on the best providers this machine has; the suffixed names force one provider set
BACKENDS = ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")
_CPU_RUNS_IN_FLIGHT = 2
_ORT_PROVIDERS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    # the TensorRT EP builds engines on first use; CUDA stays listed after it as the fallback for its gaps
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible: a device node exists and CUDA_VISIBLE_DEVICES does not hide it.

    Cheap and silent, unlike asking a CUDA library (which logs errors on CPU machines).
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")


def tensorrt_unavailable_reason(for_running: bool = False) -> str | None:
    """None when native TensorRT can build (or, `for_running`, also execute) engines here, else a short reason."""
    if not gpu_present():
        return "no NVIDIA GPU found"
    packages = ("tensorrt", "pycuda") if for_running else ("tensorrt",)
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'uda-trt[tensorrt]')"
    return None


class Runner:
    """Base of every backend: validates inputs against the sidecar, holds resources between enter and exit."""

    backend = "none"

    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        self.path = Path(path)
        self.sidecar = sidecar
        self._active = False

    def __enter__(self) -> Runner:
        self._activate()
        self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        self._deactivate()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch: {"images": uint8 N x H x W x 3 RGB} -> {"translated" | "labels": uint8 array}."""
        if not self._active:
            raise RuntimeError("use the runner inside `with open_runner(...) as runner:`")
        images = self.check_input(feeds)
        return self._infer(images)

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """`infer` over a stream of input batches, in order; backends that can overlap transfers do so."""
        for batch in batches:
            yield self.infer({self.sidecar.input_name(): batch})

    def check_input(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The input batch, C-contiguous, after checking name, dtype, layout and (translators) size divisor."""
        name = self.sidecar.input_name()
        if set(feeds) != {name}:
            raise UserError(f"{self.path.name}: expects one input named '{name}', got {sorted(feeds)}")
        images = feeds[name]
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
            raise UserError(f"{self.path.name}: input '{name}' must be a uint8 numpy array, got {kind}")
        if images.ndim != 4 or images.shape[3] != 3:
            raise UserError(
                f"{self.path.name}: input '{name}' must be N x H x W x 3 (RGB, NHWC), got shape {images.shape}"
            )
        n, height, width, _ = images.shape
        if n == 0 or height == 0 or width == 0:
            raise UserError(f"{self.path.name}: input '{name}' is empty, shape {images.shape}")
        divisor = self.sidecar.size_divisor
        if height % divisor or width % divisor:
            raise UserError(
                f"{self.path.name}: image size {width}x{height} is not a multiple of {divisor}; "
                f"resize inputs to the working size {_size_text(self.sidecar.working_size)}"
            )
        return np.ascontiguousarray(images)

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _size_text(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else "(none recorded)"


def session_options(threads: int, memory_patterns: bool = True):
    """ONNX Runtime session options for the jobs: `threads` intra-op threads, full graph optimisation, errors only.

    Intra-op threads do not spin while waiting for work: in batch-translate and evaluate-seg they share the cores
    with the decode and encode threads, and spinning would burn the cycles those need (it slowed a codec-bound job
    with a small generator end to end; the compute-bound ResNet-9 does not notice).

    `memory_patterns=False` is for the CPU provider. With patterns on, every run after the first of a shape gets
    one block sized for all its activations; with two runs in flight, the first runs of a ResNet-9 job at 1024x512
    made the kernel map gigabytes of fresh memory, and the page faults cost seconds of the job's wall time.
    Without them the arena reuses its chunks across tensors: much less system time at start and
    the same rate once warm (README, "Measurements behind design choices").
    Other providers keep ONNX Runtime's default.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = memory_patterns
    options.log_severity_level = 3  # errors only: unused-initializer warnings are noise to a user
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the given execution providers; its sessions live for one `with` block. The one
    `infer_many` uses opens with the block (a model ONNX Runtime cannot load fails there); on the CPU, where
    `infer_many` splits the threads between runs, `infer` gets an all-threads session on first use."""

    def __init__(self, path: Path, sidecar: Sidecar, backend: str = "onnxruntime-cpu", threads: int | None = None):
        super().__init__(path, sidecar)
        if backend not in _ORT_PROVIDERS:
            raise UserError(f"{path}: backend '{backend}' is not an ONNX Runtime backend")
        self.backend = backend
        self.providers = list(_ORT_PROVIDERS[backend])
        self.threads = threads or default_workers()  # ORT's own default ignores CPU affinity and quotas
        self._sessions: dict[int, object] = {}  # by intra-op thread count

    @property
    def runs_in_flight(self) -> int:
        """Batches `infer_many` computes at once: two on the CPU provider with two threads or more, else one.
        Each run holds one batch's activations (large for ResNet-9 at 1024x512), hence the cap."""
        return min(self.threads, _CPU_RUNS_IN_FLIGHT) if self.providers == ["CPUExecutionProvider"] else 1

    def _open_session(self, threads: int):
        import onnxruntime as ort

        providers: list = list(self.providers)
        if providers[0] == "TensorrtExecutionProvider":
            providers[0] = (providers[0], tensorrt_ep_options(self.path, self.sidecar))
        try:
            options = session_options(threads, memory_patterns=self.providers != ["CPUExecutionProvider"])
            return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as error:  # ORT raises its own exception types for unreadable or invalid models
            raise UserError(f"{self.path}: ONNX Runtime cannot load it: {_first_line(error)}") from None

    @property
    def _threads_per_run(self) -> int:
        return self.threads // self.runs_in_flight

    def _session_with(self, threads: int):
        if threads not in self._sessions:
            self._sessions[threads] = self._open_session(threads)
        return self._sessions[threads]

    def _activate(self) -> None:
        self._session_with(self._threads_per_run)

    def _deactivate(self) -> None:
        self._sessions = {}

    def _infer(self, images: np.ndarray, threads: int | None = None) -> dict[str, np.ndarray]:
        names = [tensor["name"] for tensor in self.sidecar.outputs]
        results = self._session_with(threads or self.threads).run(names, {self.sidecar.input_name(): images})
        return dict(zip(names, results, strict=True))

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Outputs in input order. On the CPU, `runs_in_flight` batches run at once on one session whose
        threads are split between them (ONNX Runtime allows concurrent runs of one session), instead of one batch
        at a time over all threads: fewer per-operator barriers, so on 2 cores (two single-threaded runs)
        batch-translate runs faster end to end, small and large generators alike (README, measurements).
        """
        if self.runs_in_flight == 1:
            yield from super().infer_many(batches)
            return
        name, threads = self.sidecar.input_name(), self._threads_per_run

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return self._infer(self.check_input({name: batch}), threads)

        with ThreadPoolExecutor(self.runs_in_flight, thread_name_prefix="onnxruntime-run") as pool:
            for future in prefetch(pool, run, batches, depth=self.runs_in_flight):
                yield future.result()


class TensorRTRunner(Runner):
    """Native TensorRT for `.engine` files (runtime.tensorrt_runner); needs tensorrt, pycuda and an NVIDIA GPU."""

    backend = "tensorrt"

    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        super().__init__(path, sidecar)
        self._native = None

    def _activate(self) -> None:
        reason = tensorrt_unavailable_reason(for_running=True)
        if reason is not None:
            raise UserError(f"{self.path}: running a .engine needs TensorRT and an NVIDIA GPU: {reason}")
        if not self.sidecar.engine:
            raise UserError(f"{self.path}: its sidecar has no 'engine' block; re-run export-trt on a GPU machine")
        from uda_trt.runtime.tensorrt_runner import NativeTensorRT

        self._native = NativeTensorRT(self.path, self.sidecar)

    def _deactivate(self) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None

    def _infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {self.sidecar.output_name(): next(self._native.infer_many([images]))}

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Outputs batch by batch, uploading batch n+1 while batch n computes (two CUDA streams)."""
        name = self.sidecar.input_name()
        checked = (self.check_input({name: batch}) for batch in batches)
        for output in self._native.infer_many(checked):
            yield {self.sidecar.output_name(): output}


ORT_TENSORRT_CACHE = Path.home() / ".cache" / "uda-trt" / "onnxruntime-tensorrt"


def tensorrt_ep_options(path: Path, sidecar: Sidecar, cache_root: Path = ORT_TENSORRT_CACHE) -> dict[str, str]:
    """ONNX Runtime TensorRT execution-provider options for an artifact.

    Engines and timing caches are kept per artifact hash, so a second run starts in seconds. Precision comes from
    the ONNX (a `.fp16.onnx` runs in FP16 with InstanceNorm in FP32); `trt_fp16_enable` would also put the FP32
    model's InstanceNorm in FP16, so it stays off. Translators get a profile over batch 1..8 at the working size.
    """
    from uda_trt.runtime.sidecar import artifact_key

    digest = sidecar.artifacts.get(artifact_key(path), {}).get("sha256", "unlisted")[:16]
    cache = Path(cache_root) / digest
    options = {
        "trt_fp16_enable": "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    }
    if sidecar.task == "translate" and sidecar.working_size is not None:
        width, height = sidecar.working_size
        name = sidecar.input_name()
        for key, batch in (("min", 1), ("opt", 4), ("max", 8)):
            options[f"trt_profile_{key}_shapes"] = f"{name}:{batch}x{height}x{width}x3"
    return options


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def choose_backend(path: Path, backend: str = "auto") -> str:
    """The concrete backend for an artifact: by suffix, then by what the machine has; refuses impossible asks."""
    path = Path(path)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if path.name.endswith(".engine"):
        if backend not in ("auto", "tensorrt"):
            raise UserError(f"{path}: a .engine file runs only on the tensorrt backend, not {backend}")
        return "tensorrt"
    if not path.name.endswith(".onnx"):
        raise UserError(f"{path}: not a model artifact; expected a .onnx, .fp16.onnx or .engine file")
    if backend == "tensorrt":
        raise UserError(f"{path}: the native tensorrt backend runs .engine files; use onnxruntime-tensorrt")
    if backend in ("auto", "onnxruntime"):
        if not gpu_present():
            return "onnxruntime-cpu"
        if _ort_has("TensorrtExecutionProvider") and importlib.util.find_spec("tensorrt") is not None:
            return "onnxruntime-tensorrt"
        return "onnxruntime-cuda" if _ort_has("CUDAExecutionProvider") else "onnxruntime-cpu"
    if backend != "onnxruntime-cpu":
        provider = _ORT_PROVIDERS[backend][0]
        if not gpu_present():
            raise UserError(f"backend {backend} needs an NVIDIA GPU; none found")
        if not _ort_has(provider):
            raise UserError(f"backend {backend} needs onnxruntime-gpu with {provider}; this onnxruntime lacks it")
    return backend


def _ort_has(provider: str) -> bool:
    import onnxruntime as ort

    return provider in ort.get_available_providers()


def open_runner(path: Path, backend: str = "auto", threads: int | None = None) -> Runner:
    """A runner for an artifact, to use as `with open_runner(path) as runner:`.

    Reads and validates the sidecar and checks the artifact's sha256 now, so a bad artifact fails before a job
    starts; the session (or engine) is created on `__enter__` and released on `__exit__`.
    `threads`: ONNX Runtime intra-op threads, all available cores by default.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    chosen = choose_backend(path, backend)
    sidecar = load_sidecar(path)
    if chosen == "tensorrt":
        return TensorRTRunner(path, sidecar)
    return OnnxRuntimeRunner(path, sidecar, chosen, threads)
