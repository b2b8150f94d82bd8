"""Engine profile ranges, the checks that run before a build, and the build helpers' refusals (the build itself
runs only on a GPU: test_engine_gpu.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from uda_trt.export.engine import (
    SEGMENTER_SIZES,
    TIMING_CACHE_DIR,
    Profile,
    _add_profile,
    _load_timing_cache,
    _new_builder,
    default_profile,
    default_timing_cache,
    fit_parity_to_profile,
)
from uda_trt.runtime.errors import UserError


def test_translator_profile_is_the_working_size_at_every_point():
    profile = default_profile("translate", (1024, 512))
    assert profile == Profile(min=(1, 512, 1024, 3), opt=(4, 512, 1024, 3), max=(8, 512, 1024, 3))
    assert profile.to_dict() == {"min": [1, 512, 1024, 3], "opt": [4, 512, 1024, 3], "max": [8, 512, 1024, 3]}


def test_segmenter_profile_spans_full_resolution_inputs():
    profile = default_profile("segment", None, batch=(1, 1, 2))
    (min_w, min_h), (opt_w, opt_h), (max_w, max_h) = SEGMENTER_SIZES
    assert profile.min == (1, min_h, min_w, 3) and profile.opt == (1, opt_h, opt_w, 3)
    assert profile.max == (2, max_h, max_w, 3) and profile.max[1:3] == (1024, 2048)


def test_explicit_sizes_and_bad_ranges():
    sizes = ((512, 256), (1024, 512), (2048, 1024))
    assert default_profile("translate", (1024, 512), (1, 2, 4), sizes).max == (4, 1024, 2048, 3)
    with pytest.raises(UserError, match="engine profile width: need 1 <= min <= opt <= max, got 1024, 512, 2048"):
        default_profile("segment", None, (1, 1, 1), ((1024, 256), (512, 512), (2048, 1024)))
    with pytest.raises(UserError, match="engine profile batch"):
        default_profile("translate", (64, 32), (4, 2, 8))


def test_bad_batch_flag_is_one_line(tmp_path, cli):
    checkpoint = tmp_path / "latest_net_G_A.pth"
    checkpoint.write_bytes(b"unused: the flag is refused before the checkpoint is read")
    for value in ("1,4", "8,4,1", "a,b,c"):
        result = cli("export-trt", checkpoint, "--batch", value)
        assert result.returncode == 2 and "--batch" in result.stderr and "Traceback" not in result.stderr


def test_default_timing_cache_is_one_file_per_tensorrt_version_and_gpu_generation():
    path = default_timing_cache("10.3.0", "8.6")
    assert path == TIMING_CACHE_DIR / "tensorrt-10.3.0-sm86.timing-cache"
    others = {default_timing_cache("10.3.0", "9.0"), default_timing_cache("11.4.0", "8.6")}
    assert path not in others and len(others) == 2
    assert default_timing_cache("10.3/0", "8.6").parent == TIMING_CACHE_DIR  # a version string never makes a folder


def test_translator_parity_images_are_resized_into_the_profile_before_the_build():
    profile = default_profile("translate", (64, 32), (2, 2, 4), ((96, 48), (128, 64), (160, 80)))
    small, inside = np.zeros((32, 64, 3), np.uint8), np.full((64, 128, 3), 7, np.uint8)
    fitted = fit_parity_to_profile("translate", [small, inside], profile, divisor=4)
    assert [image.shape for image in fitted] == [(48, 96, 3), (64, 128, 3)] and fitted[1] is inside
    odd = default_profile("translate", (64, 32), (1, 1, 1), ((90, 45), (93, 46), (95, 47)))
    assert fit_parity_to_profile("translate", [small], odd, divisor=2)[0].shape == (46, 90, 3)
    with pytest.raises(UserError, match=r"engine profile batch 1\.\.1, 90x45\.\.95x47: no width and height .* 4"):
        fit_parity_to_profile("translate", [small], odd, divisor=4)


def test_segmenter_parity_image_outside_the_profile_is_refused_before_the_build():
    profile = default_profile("segment", None, (1, 1, 2), ((128, 64), (256, 128), (320, 160)))
    inside = np.zeros((160, 320, 3), np.uint8)
    assert fit_parity_to_profile("segment", [inside], profile, divisor=1) == [inside]
    with pytest.raises(UserError, match=r"parity image 512x256 is outside the engine profile .*128x64\.\.320x160"):
        fit_parity_to_profile("segment", [inside, np.zeros((256, 512, 3), np.uint8)], profile, divisor=1)


# TensorRT is not installed here. The stand-ins below play its part in the build helpers, with the behaviour its
# Python binding documents (NVIDIA/TensorRT python/src/infer/pyCore.cpp): create_timing_cache returns None when the
# C++ call returns nullptr (corrupt data, or a cache from another version); set_timing_cache(None, ...) raises
# TypeError; set_shape raises RuntimeError("Shape provided for ... is inconsistent with other shapes.");
# add_optimization_profile returns -1 for an invalid profile; trt.Builder raises TypeError("pybind11::init():
# factory function returned nullptr") when CUDA cannot start (NVIDIA/TensorRT#2913).
class _Cache:
    def __init__(self, data: bytes) -> None:
        self.data = data


class _Config:
    def __init__(self, valid: bytes = b"TRT-CACHE", profile_index: int = 0) -> None:
        self.valid, self.profile_index, self.attached = valid, profile_index, None

    def create_timing_cache(self, data: bytes) -> _Cache | None:
        return _Cache(data) if data in (b"", self.valid) else None

    def set_timing_cache(self, cache: _Cache, ignore_mismatch: bool) -> bool:
        if not isinstance(cache, _Cache):
            raise TypeError("set_timing_cache(): incompatible function arguments")
        self.attached = cache
        return True

    def add_optimization_profile(self, profile) -> int:
        return self.profile_index


class _Shapes:
    def set_shape(self, name, low, opt, high) -> None:
        if not low <= opt <= high:
            raise RuntimeError("Shape provided for opt is inconsistent with other shapes.")


class _Builder:
    def create_optimization_profile(self) -> _Shapes:
        return _Shapes()


def test_corrupt_or_foreign_timing_cache_falls_back_to_an_empty_one(tmp_path, caplog):
    path = tmp_path / "tensorrt-10.3.0-sm86.timing-cache"
    path.write_bytes(b"TRT-CACHE")
    config = _Config()
    assert _load_timing_cache(config, path).data == b"TRT-CACHE" and config.attached.data == b"TRT-CACHE"
    path.write_bytes(b"\x00garbage from another TensorRT")
    with caplog.at_level(logging.WARNING):
        cache = _load_timing_cache(config, path)
    assert cache.data == b"" and config.attached is cache
    assert f"timing cache {path} is corrupt or from another TensorRT or GPU" in caplog.text
    assert _load_timing_cache(config, None).data == b"" and _load_timing_cache(config, tmp_path / "none").data == b""


def test_builder_failures_are_one_line_errors_naming_the_artifact():
    onnx_path = Path("run/latest_net_G_A.fp16.onnx")

    class NoCuda:
        class Builder:
            def __init__(self, logger) -> None:
                raise TypeError("pybind11::init(): factory function returned nullptr")

    with pytest.raises(UserError, match=r"latest_net_G_A.fp16.onnx: TensorRT could not start a builder: CUDA failed"):
        _new_builder(NoCuda, None, onnx_path)
    profile = default_profile("translate", (64, 32))
    _add_profile(_Builder(), _Config(), profile, onnx_path)  # accepted: no error
    inconsistent = Profile(min=(1, 32, 64, 3), opt=(4, 32, 64, 3), max=(2, 32, 64, 3))  # bypasses Profile.check
    with pytest.raises(UserError, match=r"fp16.onnx: TensorRT rejects the engine profile batch 1\.\.2.*opt is incon"):
        _add_profile(_Builder(), _Config(), inconsistent, onnx_path)
    with pytest.raises(UserError, match=r"fp16.onnx: TensorRT rejects the engine profile batch 1\.\.8, .* as invalid"):
        _add_profile(_Builder(), _Config(profile_index=-1), profile, onnx_path)
