"""The INT8 artifact criterion E times: the compute-bound generator quantized once per run by export-trt's own INT8
step (export.int8.export_int8), its speed pass included, its quality gates reported beside the speed rather than
required, so a run always has an INT8 artifact to time and says how good that artifact is."""

from __future__ import annotations

import time
from pathlib import Path

from uda_trt.benchmarks.throughput.records import Int8Gate, SpeedTrial
from uda_trt.benchmarks.throughput.results import Int8Artifact
from uda_trt.runtime.sidecar import file_sha256


def quantize(model: str, onnx_path: Path, calibration_root: Path, images: int, method: str) -> Int8Artifact:
    """Write STEM.int8.onnx beside `onnx_path`, calibrated with `method` on `images` images of the GTA5-layout
    `calibration_root` and gated on its held-out images (both drawn by export.int8.calibration_set); its record."""
    from uda_trt.export.int8 import calibration_set, export_int8

    data = calibration_set(Path(calibration_root), images)
    started = time.perf_counter()
    result = export_int8(Path(onnx_path), data, method, require_gates=False)
    seconds = time.perf_counter() - started
    policy = result.sidecar.int8_policy
    return Int8Artifact(
        model=model,
        path=str(result.path),
        sha256=file_sha256(result.path),
        seconds=seconds,
        method=result.method,
        calibration_images=policy["calibration"]["images"],
        held_out_images=policy["calibration"]["held_out_images"],
        quantized_nodes=list(policy["quantized_nodes"]),
        float_nodes=list(policy["float_nodes"]),
        float_for_speed=[SpeedTrial(**entry) for entry in policy["float_for_speed"]],
        speed_suspects=len(policy["speed"]["trials"]),
        gate=Int8Gate(**result.gate.to_dict()),
    )
