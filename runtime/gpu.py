"""Which NVIDIA GPU this process sees, for engine sidecars and the runner's mismatch check.

An engine is specific to the GPU model and TensorRT version it was built with; both are recorded at build time and
compared before an engine is deserialised. pycuda (extra `[tensorrt]`) answers when installed; otherwise
`nvidia-smi`, which ships with the driver. Nothing here runs on a CPU-only machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from uda_trt.runtime.errors import UserError


@dataclass(frozen=True)
class GpuInfo:
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"


def current_gpu() -> GpuInfo:
    """The first visible GPU (CUDA_VISIBLE_DEVICES respected); UserError when none can be queried."""
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError):  # OSError: pycuda is there but libcuda is not
        return _from_nvidia_smi()
    try:
        cuda.init()
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        name = device.name()
    except cuda.Error as error:  # no device, driver too old for this pycuda, ...
        text = str(error).strip().splitlines()
        raise UserError(f"cannot identify the GPU: CUDA does not start: {text[0] if text else error!r}") from None
    return GpuInfo(name=name, compute_capability=f"{major}.{minor}")


def _from_nvidia_smi() -> GpuInfo:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise UserError("cannot identify the GPU: neither pycuda nor nvidia-smi is available")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    query = [smi, "-i", visible, "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        line = subprocess.run(query, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        name, capability = (part.strip() for part in line.splitlines()[0].rsplit(",", 1))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        raise UserError(f"cannot identify the GPU with nvidia-smi: {error}") from None
    return GpuInfo(name=name, compute_capability=capability)
