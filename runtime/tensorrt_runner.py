"""Native TensorRT execution of `STEM.engine` / `STEM.int8.engine` files (tensorrt + pycuda, extra `[tensorrt]`),
imported lazily.

TensorRT >= 10 name-based API: `set_input_shape`, `set_tensor_address`, `execute_async_v3`. Host buffers are pinned
and sized for the profile maximum, so a batch is one memcpy into pinned memory and one async copy to the device.
Two CUDA streams: a copy stream uploads batch n+1 while the compute stream runs batch n (`infer_many`), with events
ordering the two, so the PCIe transfer hides behind compute. Before deserialising, the engine's recorded TensorRT
version and GPU (the sidecar block of that file, Sidecar.engine_facts) are compared with this machine's: an engine
built elsewhere is refused in one line naming both.

CUDA context: the device's primary context, the one the CUDA runtime API (which TensorRT calls) and every other
CUDA library in the process use, so TensorRT's memory and pycuda's live in one context. It is made current only
around this module's own calls (push ... pop), never left current on the thread between batches, and released
once `close()` has freed what was made in it. One thread: pycuda ties a context object to the thread that retained
it (its context stack is per thread, and it refuses to activate the context from another thread to free buffers),
and an execution context runs one batch at a time; so every call must come from the thread that opened the engine,
and another thread gets a RuntimeError saying so rather than a crash in a CUDA call. Pushing the context per call
from any thread would work for the calls but not for pycuda's cleanup, hence the check.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import Sidecar


def engine_mismatch(recorded: dict, tensorrt_version: str, gpu_name: str) -> str | None:
    """Why an engine built with `recorded` (its sidecar block, `engine` or `int8_engine`) cannot run here, or None."""
    problems = []
    if recorded.get("tensorrt_version") != tensorrt_version:
        problems.append(f"TensorRT {recorded.get('tensorrt_version')} (this machine has {tensorrt_version})")
    if recorded.get("gpu_name") != gpu_name:
        problems.append(f"GPU {recorded.get('gpu_name')} (this machine has {gpu_name})")
    if not problems:
        return None
    return "built for " + " and ".join(problems) + "; rebuild it here with export-trt"


def profile_violation(profile: dict, shape: tuple[int, ...]) -> str | None:
    """Why an N x H x W x 3 batch is outside the engine's profile ranges, or None."""
    low, high = profile["min"], profile["max"]
    for axis, name in enumerate(("batch size", "height", "width")):
        if not low[axis] <= shape[axis] <= high[axis]:
            return f"{name} {shape[axis]} is outside the engine's profile range {low[axis]}..{high[axis]}"
    return None


def io_problem(engine_tensors: dict[str, str], input_name: str, output_name: str) -> str | None:
    """Why the sidecar's tensor names do not fit the engine's I/O tensors ({name: "input" | "output"}), or None.

    Checked before any shape is set: TensorRT answers an unknown name with False and a shape of -1s, which would
    surface later as a negative buffer size.
    """
    for name, mode in ((input_name, "input"), (output_name, "output")):
        if engine_tensors.get(name) != mode:
            found = ", ".join(f"{tensor} ({kind})" for tensor, kind in engine_tensors.items()) or "none"
            return f"the sidecar names {mode} '{name}', the engine's tensors are {found}; re-export the pair"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass
class _Slot:
    """One in-flight batch: pinned host and device buffers for input and output, and the events that order it."""

    host_in: np.ndarray
    host_out: np.ndarray
    device_in: object
    device_out: object
    uploaded: object  # event: input copy finished (copy stream)
    finished: object  # event: compute and output copy finished (compute stream)


class NativeTensorRT:
    """An engine deserialised on GPU 0 (primary context) with its buffers; `close()` frees everything (the runner
    calls it). Use it from the thread that created it (module docstring)."""

    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        self.path = Path(path)
        self.sidecar = sidecar
        self._thread = threading.get_ident()
        self._context = None
        self._slots: list[_Slot] = []
        trt, self._cuda = self._import()
        self._context = self._retain_primary_context()
        try:
            from uda_trt.runtime.gpu import current_gpu

            recorded = sidecar.engine_facts(self.path) or {}
            mismatch = engine_mismatch(recorded, trt.__version__, current_gpu().name)
            if mismatch is not None:
                raise UserError(f"{self.path}: {mismatch}")
            with self._current():
                self._load(trt, recorded)
        except BaseException:
            self.close()
            raise

    def _import(self):
        try:
            import pycuda.driver as cuda
            import tensorrt as trt
        except (ImportError, OSError) as error:  # OSError: a shared library (libnvinfer, libcuda) did not load
            raise UserError(f"{self.path}: cannot load TensorRT and pycuda: {_first_line(error)}") from None
        return trt, cuda

    def _retain_primary_context(self):
        cuda = self._cuda
        try:
            cuda.init()
            return cuda.Device(0).retain_primary_context()
        except cuda.Error as error:
            raise UserError(
                f"{self.path}: CUDA cannot start on GPU 0 (driver, or CUDA_VISIBLE_DEVICES?): {_first_line(error)}"
            ) from None

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        """The primary context current on this thread for the block; refuses another thread than the opener's."""
        if threading.get_ident() != self._thread:
            raise RuntimeError(f"{self.path}: a TensorRT runner is used only from the thread that entered it")
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _load(self, trt, recorded: dict) -> None:  # trt: the tensorrt module
        cuda = self._cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            self._runtime = trt.Runtime(self._logger)  # kept: the engine must not outlive its runtime
        except Exception as error:  # the bindings raise their own types when the C++ factory returns null
            self._runtime, cause = None, _first_line(error)
        else:
            cause = "it returned null"
        if self._runtime is None:
            raise UserError(f"{self.path}: TensorRT cannot start a runtime on this GPU (driver too old?): {cause}")
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise UserError(f"{self.path}: TensorRT cannot deserialise it (corrupt, or built by another version)")
        self.input_name = self.sidecar.input_name()
        self.output_name = self.sidecar.output_name()
        tensors = {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            tensors[name] = "input" if is_input else "output"
        problem = io_problem(tensors, self.input_name, self.output_name)
        if problem is not None:
            raise UserError(f"{self.path}: {problem}")
        self._execution = self._engine.create_execution_context()
        if self._execution is None:
            raise UserError(f"{self.path}: TensorRT cannot create an execution context (out of GPU memory?)")
        self.profile = recorded["profile"]
        max_in = tuple(self.profile["max"])
        max_out = self._set_input_shape(max_in)
        out_dtype = trt.nptype(self._engine.get_tensor_dtype(self.output_name))
        self._copy_stream = cuda.Stream()
        self._compute_stream = cuda.Stream()
        for _ in range(2):
            host_in = cuda.pagelocked_empty(max_in, np.uint8)
            host_out = cuda.pagelocked_empty(max_out, out_dtype)
            self._slots.append(
                _Slot(
                    host_in=host_in,
                    host_out=host_out,
                    device_in=cuda.mem_alloc(host_in.nbytes),
                    device_out=cuda.mem_alloc(host_out.nbytes),
                    uploaded=cuda.Event(),
                    finished=cuda.Event(),
                )
            )

    def _set_input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Set the input shape; returns the output shape. TensorRT answers a refused shape with False."""
        if not self._execution.set_input_shape(self.input_name, shape):
            raise UserError(
                f"{self.path}: TensorRT refused input shape {list(shape)} for '{self.input_name}' "
                "(the sidecar's profile does not match the engine's; re-export the pair)"
            )
        out_shape = tuple(self._execution.get_tensor_shape(self.output_name))
        if any(size < 0 for size in out_shape):
            raise UserError(f"{self.path}: TensorRT gives output '{self.output_name}' the shape {list(out_shape)}")
        return out_shape

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Outputs of `batches` in order; the upload of batch n+1 overlaps the compute of batch n."""
        with self._current():  # an earlier, abandoned stream may still be copying from or into the buffers
            self._synchronize()
        pending: list[tuple[_Slot, tuple[int, ...]]] = []
        for index, batch in enumerate(batches):
            slot = self._slots[index % 2]
            if len(pending) == 2:  # the slot is about to be reused: hand out its previous result first
                yield self._collect(*pending.pop(0))
            pending.append((slot, self._launch(slot, batch)))
        for slot, shape in pending:
            yield self._collect(slot, shape)

    def _launch(self, slot: _Slot, batch: np.ndarray) -> tuple[int, ...]:
        """Enqueue one batch in `slot` (upload, compute, download); returns the output shape."""
        violation = profile_violation(self.profile, batch.shape)
        if violation is not None:
            raise UserError(f"{self.path}: {violation}; rebuild the engine with wider ranges (export-trt --help)")
        cuda = self._cuda
        with self._current():
            slot.uploaded.synchronize()  # the pinned input is free once its last upload is done
            flat_in = slot.host_in.reshape(-1)[: batch.size]
            flat_in[:] = batch.reshape(-1)
            self._copy_stream.wait_for_event(slot.finished)  # the previous batch in this slot has left the device
            cuda.memcpy_htod_async(slot.device_in, flat_in, self._copy_stream)
            slot.uploaded.record(self._copy_stream)
            self._compute_stream.wait_for_event(slot.uploaded)
            out_shape = self._set_input_shape(tuple(batch.shape))
            self._execution.set_tensor_address(self.input_name, int(slot.device_in))
            self._execution.set_tensor_address(self.output_name, int(slot.device_out))
            if not self._execution.execute_async_v3(self._compute_stream.handle):
                raise RuntimeError(f"{self.path}: TensorRT execution failed")
            out_count = int(np.prod(out_shape))
            cuda.memcpy_dtoh_async(slot.host_out.reshape(-1)[:out_count], slot.device_out, self._compute_stream)
            slot.finished.record(self._compute_stream)
        return out_shape

    def _collect(self, slot: _Slot, shape: tuple[int, ...]) -> np.ndarray:
        with self._current():
            slot.finished.synchronize()
        count = int(np.prod(shape))
        return slot.host_out.reshape(-1)[:count].reshape(shape).copy()

    def _synchronize(self) -> None:
        for stream in (getattr(self, "_copy_stream", None), getattr(self, "_compute_stream", None)):
            if stream is not None:
                stream.synchronize()

    def close(self) -> None:
        """Wait for both streams, free the buffers, drop the primary context (safe to call twice).

        pycuda releases the context (cuDevicePrimaryCtxRelease) when the last object made in it is gone, as its
        own `pycuda.autoprimaryctx` does: normally right here; an explicit `detach()` would instead leave an
        abandoned generator's buffers to be freed in a dead context.
        """
        if self._context is None:
            return
        with self._current():
            self._synchronize()  # an abandoned stream may still be copying into the buffers about to be freed
            for slot in self._slots:
                slot.device_in.free()
                slot.device_out.free()
            self._slots = []
            self._execution = None  # TensorRT objects go in reverse order of creation
            self._engine = None
            self._runtime = None
            self._copy_stream = self._compute_stream = None
        self._context = None
