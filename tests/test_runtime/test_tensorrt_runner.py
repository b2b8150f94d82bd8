"""The TensorRT runner's checks that need no GPU: engine/machine mismatch and profile ranges, in one line."""

from __future__ import annotations

from uda_trt.runtime.tensorrt_runner import engine_mismatch, io_problem, profile_violation

RECORDED = {"tensorrt_version": "10.13.0", "gpu_name": "NVIDIA H100 80GB HBM3"}
PROFILE = {"min": [1, 256, 512, 3], "opt": [4, 512, 1024, 3], "max": [8, 512, 1024, 3]}


def test_same_version_and_gpu_runs():
    assert engine_mismatch(RECORDED, "10.13.0", "NVIDIA H100 80GB HBM3") is None


def test_mismatch_names_both_sides():
    other_version = engine_mismatch(RECORDED, "11.4.0", "NVIDIA H100 80GB HBM3")
    assert other_version == "built for TensorRT 10.13.0 (this machine has 11.4.0); rebuild it here with export-trt"
    both = engine_mismatch(RECORDED, "11.4.0", "NVIDIA L4")
    assert "TensorRT 10.13.0 (this machine has 11.4.0)" in both
    assert "GPU NVIDIA H100 80GB HBM3 (this machine has NVIDIA L4)" in both and "\n" not in both


def test_profile_ranges():
    assert profile_violation(PROFILE, (1, 256, 512, 3)) is None
    assert profile_violation(PROFILE, (8, 512, 1024, 3)) is None
    assert profile_violation(PROFILE, (9, 512, 1024, 3)) == "batch size 9 is outside the engine's profile range 1..8"
    assert profile_violation(PROFILE, (1, 128, 512, 3)) == "height 128 is outside the engine's profile range 256..512"
    assert profile_violation(PROFILE, (1, 512, 2048, 3)) == "width 2048 is outside the engine's profile range 512..1024"


def test_tensor_names_are_checked_against_the_engine_before_any_shape():
    engine = {"images": "input", "translated": "output"}
    assert io_problem(engine, "images", "translated") is None
    wrong_input = io_problem(engine, "frames", "translated")
    assert wrong_input == (
        "the sidecar names input 'frames', the engine's tensors are images (input), translated (output); "
        "re-export the pair"
    )
    assert "names input 'translated'" in io_problem(engine, "translated", "images")  # roles swapped
    assert "tensors are none" in io_problem({}, "images", "translated")
