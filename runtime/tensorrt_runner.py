"""Native TensorRT execution of `STEM.engine` files (tensorrt + pycuda, extra `[tensorrt]`), imported lazily.

TensorRT >= 10 name-based API: `set_input_shape`, `set_tensor_address`, `execute_async_v3`. Host buffers are pinned
and sized for the profile maximum, so a batch is one memcpy into pinned memory and one async copy to the device.
Two CUDA streams: a copy stream uploads batch n+1 while the compute stream runs batch n (`infer_many`), with events
ordering the two, so the PCIe transfer hides behind compute. Before deserialising, the engine's recorded TensorRT
version and GPU are compared with this machine's: an engine built elsewhere is refused in one line naming both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import Sidecar


def engine_mismatch(recorded: dict, tensorrt_version: str, gpu_name: str) -> str | None:
    """Why an engine built with `recorded` (the sidecar's `engine` block) cannot run here, or None."""
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
    """An engine deserialised on GPU 0 with its buffers; `close()` frees everything (the runner calls it)."""

    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        import pycuda.driver as cuda
        import tensorrt as trt

        from uda_trt.runtime.gpu import current_gpu

        self.path = Path(path)
        self.sidecar = sidecar
        recorded = sidecar.engine or {}
        mismatch = engine_mismatch(recorded, trt.__version__, current_gpu().name)
        if mismatch is not None:
            raise UserError(f"{self.path}: {mismatch}")
        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(0).make_context()
        try:
            self._load(trt, recorded)
        except BaseException:
            self.close()
            raise

    def _load(self, trt, recorded: dict) -> None:  # trt: the tensorrt module
        cuda = self._cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(self._logger).deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise UserError(f"{self.path}: TensorRT cannot deserialise it (corrupt, or built by another version)")
        self._execution = self._engine.create_execution_context()
        self.input_name = self.sidecar.input_name()
        self.output_name = self.sidecar.output_name()
        self.profile = recorded["profile"]
        max_in = tuple(self.profile["max"])
        self._execution.set_input_shape(self.input_name, max_in)
        max_out = tuple(self._execution.get_tensor_shape(self.output_name))
        out_dtype = trt.nptype(self._engine.get_tensor_dtype(self.output_name))
        self._copy_stream = cuda.Stream()
        self._compute_stream = cuda.Stream()
        self._slots = []
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

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Outputs of `batches` in order; the upload of batch n+1 overlaps the compute of batch n."""
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
        flat_in = slot.host_in.reshape(-1)[: batch.size]
        flat_in[:] = batch.reshape(-1)
        self._copy_stream.wait_for_event(slot.finished)  # the previous batch in this slot has left the device
        cuda.memcpy_htod_async(slot.device_in, flat_in, self._copy_stream)
        slot.uploaded.record(self._copy_stream)
        self._compute_stream.wait_for_event(slot.uploaded)
        self._execution.set_input_shape(self.input_name, tuple(batch.shape))
        self._execution.set_tensor_address(self.input_name, int(slot.device_in))
        self._execution.set_tensor_address(self.output_name, int(slot.device_out))
        if not self._execution.execute_async_v3(self._compute_stream.handle):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        out_shape = tuple(self._execution.get_tensor_shape(self.output_name))
        out_count = int(np.prod(out_shape))
        cuda.memcpy_dtoh_async(slot.host_out.reshape(-1)[:out_count], slot.device_out, self._compute_stream)
        slot.finished.record(self._compute_stream)
        return out_shape

    def _collect(self, slot: _Slot, shape: tuple[int, ...]) -> np.ndarray:
        slot.finished.synchronize()
        count = int(np.prod(shape))
        return slot.host_out.reshape(-1)[:count].reshape(shape).copy()

    def close(self) -> None:
        """Free device memory and pop the CUDA context (safe to call twice)."""
        context = getattr(self, "_context", None)
        if context is None:
            return
        for slot in getattr(self, "_slots", []):
            slot.device_in.free()
            slot.device_out.free()
        self._slots = []
        self._execution = None
        self._engine = None
        context.pop()
        self._context = None
