"""One runner contract for every backend: `with open_runner(path) as r: out = r.infer({"images": batch})`.

Numpy uint8 in, numpy uint8 out; the sidecar says what the tensors are called and what sizes are legal. The
backend follows the artifact's suffix and what the machine has: `.onnx` / `.fp16.onnx` / `.int8.onnx` run on ONNX
Runtime (its TensorRT or CUDA execution provider only when an NVIDIA GPU is present, so a CPU box never logs provider
errors), `.engine` / `.int8.engine` run on native TensorRT (imported lazily: a deployment box without it still
imports this module).
ONNX Runtime does not fail when a requested provider cannot start: it logs a line and runs on what it could start.
So every session's active providers are checked: an explicit `--backend` is refused in one line when its provider
is not active; `auto` runs on what started, with a warning, and records that.
No torch here, ever.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.sidecar import Sidecar, artifact_key, load_sidecar
from uda_trt.runtime.tensorrt_runner import profile_violation

log = logging.getLogger(__name__)

# "onnxruntime" = ONNX Runtime on the best providers this machine has; the suffixed names force one provider set
BACKENDS = ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")
_CPU_RUNS_IN_FLIGHT = 2
# Images per batch on a GPU backend when a job does not say: not yet measured on a GPU (README, "Status").
GPU_BATCH_SIZE = 4
_ORT_PROVIDERS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    # the TensorRT EP builds engines on first use; CUDA stays listed after it as the fallback for its gaps
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
# Why a provider that ONNX Runtime has may still not start (it falls back silently otherwise).
_START_HINTS = {
    "TensorrtExecutionProvider": "is TensorRT's libnvinfer, of the version this onnxruntime-gpu was built for, on "
    "LD_LIBRARY_PATH?",
    "CUDAExecutionProvider": "are the CUDA and cuDNN libraries this onnxruntime-gpu was built for installed?",
}
_GPU_INSTALL = (
    "install the GPU build in its place: pip uninstall -y onnxruntime, then pip install --force-reinstall --no-deps "
    "onnxruntime-gpu (as make test-gpu does)"
)
# ONNX Runtime's TensorRT provider builds one engine per shape range; a runner whose job did not give its batch size
# (`Runner.expect_inputs`) gets this range of batches (min, opt, max).
ORT_TENSORRT_BATCH = (1, 4, 8)
# Segmenters take full-resolution images: from small crops up to Cityscapes' 2048x1024, tuned for the latter.
# The one definition for both engine builders (ONNX Runtime's TensorRT provider here, export's native engines).
SEGMENTER_SIZES = ((256, 128), (2048, 1024), (2048, 1024))  # (w, h) min, opt, max


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
        self.batch_size: int | None = None  # what the job feeds, when it said so (expect_inputs)
        self.image_size: tuple[int, int] | None = None
        self.active_providers: list[str] = []  # what actually runs the model, once entered (job outputs record it)

    @property
    def default_batch_size(self) -> int:
        """Images per batch for a job that does not choose (batch-translate without --batch-size)."""
        return GPU_BATCH_SIZE

    def expect_inputs(self, batch_size: int, image_size: tuple[int, int] | None = None) -> None:
        """Say, before `with`, the largest batch and (for a fixed-size job) the image size (w, h) the job feeds.

        Backends that fix their shape ranges when they start (ONNX Runtime's TensorRT provider) build for exactly
        these, and a native engine whose profile cannot take them is refused now, before the job starts.
        """
        if self._active:
            raise RuntimeError("expect_inputs must come before `with runner:`")
        self.batch_size, self.image_size = batch_size, image_size

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
    `infer_many` splits the threads between runs, `infer` gets an all-threads session on first use.

    Every session's active providers are checked (`provider_problem`): one that did not start is a UserError, or,
    with `fallback` (the `auto` choice), a warning, and `backend` becomes what runs."""

    def __init__(
        self,
        path: Path,
        sidecar: Sidecar,
        backend: str = "onnxruntime-cpu",
        threads: int | None = None,
        fallback: bool = False,
    ) -> None:
        super().__init__(path, sidecar)
        if backend not in _ORT_PROVIDERS:
            raise UserError(f"{path}: backend '{backend}' is not an ONNX Runtime backend")
        self.backend = backend
        self.providers = list(_ORT_PROVIDERS[backend])
        self.threads = threads or default_workers()  # ORT's own default ignores CPU affinity and quotas
        self.fallback = fallback
        self._sessions: dict[int, object] = {}  # by intra-op thread count

    @property
    def runs_in_flight(self) -> int:
        """Batches `infer_many` computes at once: two on the CPU provider with two threads or more, else one.
        Each run holds one batch's activations (large for ResNet-9 at 1024x512), hence the cap."""
        return min(self.threads, _CPU_RUNS_IN_FLIGHT) if self.providers == ["CPUExecutionProvider"] else 1

    @property
    def default_batch_size(self) -> int:
        """On the CPU, one image per run in flight (2 with two threads or more): `make bench` measured a batch of 2
        as fast as 4 in a long job and faster in a short one, where the first batch's runs pay for fresh memory
        (README, "Benchmarks": A6). GPU providers: GPU_BATCH_SIZE."""
        return self.runs_in_flight if self.providers == ["CPUExecutionProvider"] else GPU_BATCH_SIZE

    def _open_session(self, threads: int):
        import onnxruntime as ort

        providers: list = list(self.providers)
        if providers[0] == "TensorrtExecutionProvider":
            options = tensorrt_ep_options(self.path, self.sidecar, None, self.batch_size, self.image_size)
            _make_cache_folder(self.path, Path(options["trt_engine_cache_path"]))
            providers[0] = (providers[0], options)
        try:
            options = session_options(threads, memory_patterns=self.providers != ["CPUExecutionProvider"])
            with warnings.catch_warnings():  # "not in available provider names": provider_problem says it better
                warnings.filterwarnings("ignore", message="Specified provider")
                session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as error:  # ORT raises its own exception types for unreadable or invalid models
            raise UserError(f"{self.path}: ONNX Runtime cannot load it: {_first_line(error)}") from None
        self._check_providers(session.get_providers(), ort.get_available_providers())
        return session

    def _check_providers(self, active: list[str], available: list[str]) -> None:
        problem = provider_problem(self.backend, self.providers, active, available)
        if problem is not None and not self.fallback:
            raise UserError(f"{self.path}: {problem}")
        if problem is not None:
            ran = _backend_running_on(active)
            log.warning("%s: %s; running on %s instead", self.path.name, problem, ran)
            self.backend, self.providers = ran, list(_ORT_PROVIDERS[ran])
        self.active_providers = list(active)

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
        """Outputs in input order. On the CPU each batch is split into `runs_in_flight` contiguous parts that run
        at once on one session, the threads split between them (ONNX Runtime allows concurrent runs of one
        session), instead of one batch over all threads: fewer per-operator barriers, so on 2 cores (two
        single-threaded runs) batch-translate runs faster end to end (README, measurements). A batch of one image
        runs over all threads, so a lone or last image keeps every core busy too. The next batch is taken and
        started before the current one is returned, so the cores do not wait while the job decodes or writes.
        The split is a function of the batch's length alone, never of timing.
        """
        if self.runs_in_flight == 1:
            yield from super().infer_many(batches)
            return
        name = self.sidecar.input_name()
        with ThreadPoolExecutor(self.runs_in_flight, thread_name_prefix="onnxruntime-run") as pool:
            started: list[Future] | None = None
            for batch in batches:
                try:
                    parts = self._start_parts(pool, self.check_input({name: batch}))
                except Exception:
                    if started is not None:  # what is already computing is returned before the error
                        yield _joined(started)
                    raise
                if started is not None:
                    yield _joined(started)
                started = parts
            if started is not None:
                yield _joined(started)

    def _start_parts(self, pool: ThreadPoolExecutor, images: np.ndarray) -> list[Future]:
        """Submit `images` as min(runs_in_flight, N) contiguous parts, each with its share of the threads."""
        count = min(self.runs_in_flight, len(images))
        threads = self.threads // count
        return [pool.submit(self._infer, part, threads) for part in np.array_split(images, count)]


def _joined(parts: list[Future]) -> dict[str, np.ndarray]:
    """The outputs of a batch's parts, concatenated along the batch axis in part order."""
    outputs = [part.result() for part in parts]
    if len(outputs) == 1:
        return outputs[0]
    return {name: np.concatenate([output[name] for output in outputs]) for name in outputs[0]}


class TensorRTRunner(Runner):
    """Native TensorRT for `.engine` and `.int8.engine` files (runtime.tensorrt_runner); needs tensorrt, pycuda and
    an NVIDIA GPU. The engine's facts (versions, profile) are the sidecar block of its file (Sidecar.engine_facts)."""

    backend = "tensorrt"

    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        super().__init__(path, sidecar)
        self._native = None
        self.facts = sidecar.engine_facts(path)

    def _activate(self) -> None:
        reason = tensorrt_unavailable_reason(for_running=True)
        if reason is not None:
            raise UserError(f"{self.path}: running a .engine needs TensorRT and an NVIDIA GPU: {reason}")
        if not self.facts:
            block = artifact_key(self.path)
            raise UserError(f"{self.path}: its sidecar has no '{block}' block; re-run export-trt on a GPU machine")
        from uda_trt.runtime.tensorrt_runner import NativeTensorRT

        self._native = NativeTensorRT(self.path, self.sidecar)
        self.active_providers = ["TensorRT"]

    @property
    def default_batch_size(self) -> int:
        """The batch the engine's profile was optimised for, else GPU_BATCH_SIZE."""
        profile = (self.facts or {}).get("profile")
        return int(profile["opt"][0]) if profile else GPU_BATCH_SIZE

    def expect_inputs(self, batch_size: int, image_size: tuple[int, int] | None = None) -> None:
        """As Runner's, and refuses now a batch size or image size outside the engine's profile."""
        super().expect_inputs(batch_size, image_size)
        profile = (self.facts or {}).get("profile")
        if profile is None:
            return
        height, width = (image_size[1], image_size[0]) if image_size else profile["min"][1:3]
        violation = profile_violation(profile, (batch_size, height, width, 3))
        if violation is not None:
            raise UserError(
                f"{self.path}: the job's {violation}; use --batch-size and --size within it, or rebuild the "
                "engine with wider ranges (export-trt --help)"
            )

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


def ort_tensorrt_cache() -> Path:
    """Where ONNX Runtime's TensorRT provider keeps engines and timing caches: ~/.cache/uda-trt/onnxruntime-tensorrt."""
    return Path.home() / ".cache" / "uda-trt" / "onnxruntime-tensorrt"


def tensorrt_ep_options(
    path: Path,
    sidecar: Sidecar,
    cache_root: Path | None = None,
    batch_size: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> dict[str, str]:
    """ONNX Runtime TensorRT execution-provider options for an artifact.

    Engines and timing caches are kept per artifact hash under `cache_root` (default `ort_tensorrt_cache()`), so a
    second run starts in seconds. Precision comes from the ONNX (a `.fp16.onnx` runs in FP16 with InstanceNorm in
    FP32); `trt_fp16_enable` would also put the FP32 model's InstanceNorm in FP16, so it stays off. The explicit
    profile is `tensorrt_ep_profile`'s.
    """
    digest = sidecar.artifacts.get(artifact_key(path), {}).get("sha256", "unlisted")[:16]
    cache = Path(cache_root or ort_tensorrt_cache()) / digest
    options = {
        "trt_fp16_enable": "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    }
    return options | tensorrt_ep_profile(sidecar, batch_size, image_size)


def tensorrt_ep_profile(
    sidecar: Sidecar, batch_size: int | None = None, image_size: tuple[int, int] | None = None
) -> dict[str, str]:
    """The TensorRT provider's explicit profile, `trt_profile_{min,opt,max}_shapes` = "images:NxHxWx3".

    One engine covers every batch the job feeds, from 1 (its last batch may be short) to `batch_size` (tuned for
    it; without one, ORT_TENSORRT_BATCH), at `image_size` (w, h): the translator's working size by default, the
    segmenter's SEGMENTER_SIZES range (full-resolution images of any size in it). Without an explicit profile
    the provider rebuilds its engine for every larger shape; with one, a shape outside it is an error.
    A translator without any size gets no profile.
    """
    batches = (1, batch_size, batch_size) if batch_size else ORT_TENSORRT_BATCH
    if image_size is not None:
        sizes = (image_size,) * 3
    elif sidecar.task == "translate":
        if sidecar.working_size is None:
            return {}
        sizes = (tuple(sidecar.working_size),) * 3
    else:
        sizes = SEGMENTER_SIZES
    name = sidecar.input_name()
    points = zip(("min", "opt", "max"), batches, sizes, strict=True)
    return {f"trt_profile_{key}_shapes": f"{name}:{n}x{h}x{w}x3" for key, n, (w, h) in points}


def _make_cache_folder(artifact: Path, folder: Path) -> None:
    """The provider creates its cache folder one level deep only (std::filesystem::create_directory) and falls back
    to CUDA when that fails, as on a fresh machine without ~/.cache/uda-trt: make it, parents included."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{artifact}: cannot create the TensorRT engine cache {folder}: {error.strerror}") from None


def provider_problem(backend: str, requested: list[str], active: list[str], available: list[str]) -> str | None:
    """Why a session opened for `backend` (asking for `requested`) does not run on them all, or None.

    `active`: the session's `get_providers()`; `available`: `onnxruntime.get_available_providers()`, to tell a
    build that lacks the provider from one whose provider did not start.
    """
    missing = [name for name in requested if name not in active]
    if not missing:
        return None
    name = missing[0]
    if name not in available:
        return f"backend {backend} needs {name}, which this onnxruntime lacks (it has {', '.join(available)}); " + (
            _GPU_INSTALL
        )
    return (
        f"backend {backend}: ONNX Runtime could not start {name} and fell back to {', '.join(active)}; "
        + _START_HINTS.get(name, "see ONNX Runtime's message above")
    )


def _backend_running_on(active: list[str]) -> str:
    """The backend name for a session's active providers."""
    for backend in ("onnxruntime-tensorrt", "onnxruntime-cuda"):
        if _ORT_PROVIDERS[backend][0] in active:
            return backend
    return "onnxruntime-cpu"


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
        raise UserError(
            f"{path}: not a model artifact; expected a .onnx, .fp16.onnx, .int8.onnx, .engine or .int8.engine file"
        )
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
            raise UserError(
                f"backend {backend} needs onnxruntime-gpu with {provider}; this onnxruntime lacks it: {_GPU_INSTALL}"
            )
    return backend


def _ort_has(provider: str) -> bool:
    import onnxruntime as ort

    return provider in ort.get_available_providers()


def open_runner(path: Path, backend: str = "auto", threads: int | None = None) -> Runner:
    """A runner for an artifact, to use as `with open_runner(path) as runner:`.

    Reads and validates the sidecar and checks the artifact's sha256 now, so a bad artifact fails before a job
    starts; the session (or engine) is created on `__enter__` and released on `__exit__`; a job calls
    `runner.expect_inputs(batch_size, image_size)` in between. `threads`: ONNX Runtime intra-op threads, all
    available cores by default. An explicit ONNX Runtime `backend` is refused (UserError) when its provider does not
    start; "auto" and "onnxruntime" run on what started, with a warning, and `runner.backend` says which.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    chosen = choose_backend(path, backend)
    sidecar = load_sidecar(path)
    if chosen == "tensorrt":
        return TensorRTRunner(path, sidecar)
    return OnnxRuntimeRunner(path, sidecar, chosen, threads, fallback=backend in ("auto", "onnxruntime"))
