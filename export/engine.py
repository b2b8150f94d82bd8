"""FP16 ONNX -> TensorRT engine (`STEM.engine`), one code path for TensorRT 10 and 11.

The network is strongly typed: every layer runs in the type the FP16 ONNX gives it (FP16, with InstanceNorm and
the other ops export.fp16 keeps in FP32). TensorRT 11 removed `BuilderFlag.FP16`, so precision must come from the
ONNX; TensorRT 10 honours the same graph the same way, so the flag is never set on either. One optimisation
profile covers the batch sizes and image sizes the runtime will feed; a timing cache shared across builds makes a
rebuild seconds instead of minutes. Needs an NVIDIA GPU and the `tensorrt` package (extra `[tensorrt]`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import atomic_write_bytes

if TYPE_CHECKING:
    from uda_trt.export.onnx_export import ExportResult
    from uda_trt.export.parity import ParityReport

log = logging.getLogger(__name__)

DEFAULT_BATCH = (1, 4, 8)  # min, opt, max
DEFAULT_WORKSPACE_GIB = 4.0
# Segmenters take full-resolution images: from small crops up to Cityscapes' 2048x1024, tuned for the latter.
SEGMENTER_SIZES = ((256, 128), (2048, 1024), (2048, 1024))  # (w, h) min, opt, max
DEFAULT_TIMING_CACHE = Path.home() / ".cache" / "uda-trt" / "tensorrt.timing-cache"


@dataclass(frozen=True)
class Profile:
    """Optimisation-profile ranges of the NHWC uint8 input `images`: (N, H, W, 3) at min, opt and max."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def check(self) -> None:
        """Refuse ranges TensorRT would reject, in one line: min <= opt <= max in every dimension, all >= 1."""
        for axis, name in enumerate(("batch", "height", "width")):
            low, mid, high = self.min[axis], self.opt[axis], self.max[axis]
            if not 1 <= low <= mid <= high:
                raise UserError(f"engine profile {name}: need 1 <= min <= opt <= max, got {low}, {mid}, {high}")


def default_profile(
    task: str,
    working_size: tuple[int, int] | None,
    batch: tuple[int, int, int] = DEFAULT_BATCH,
    sizes: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
) -> Profile:
    """The profile for a translator (its working size at every point) or a segmenter (SEGMENTER_SIZES).

    batch: (min, opt, max); sizes: ((w, h) min, opt, max) to override the image-size ranges.
    """
    if sizes is None:
        if task == "translate":
            if working_size is None:
                raise UserError("a translator sidecar must record its working size")
            sizes = (working_size, working_size, working_size)
        else:
            sizes = SEGMENTER_SIZES
    profile = Profile(*((n, h, w, 3) for n, (w, h) in zip(batch, sizes, strict=True)))
    profile.check()
    return profile


@dataclass(frozen=True)
class EngineBuild:
    """What a build wrote and the facts the sidecar records about it."""

    path: Path
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    profile: Profile
    workspace_bytes: int
    seconds: float

    def sidecar_fields(self) -> dict:
        return {
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "profile": self.profile.to_dict(),
            "input": "images",
            "strongly_typed": True,
            "built_from": "fp16_onnx",
            "workspace_bytes": self.workspace_bytes,
            "build_seconds": round(self.seconds, 1),
        }


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: Profile,
    workspace_bytes: int = int(DEFAULT_WORKSPACE_GIB * 2**30),
    timing_cache: Path | None = DEFAULT_TIMING_CACHE,
) -> EngineBuild:
    """Parse `onnx_path` (the FP16 ONNX) into a strongly typed network, build, write the plan atomically.

    Raises UserError when TensorRT cannot parse or build the network (the parser's errors, one line each).
    """
    import time

    import tensorrt as trt

    from uda_trt.runtime.gpu import current_gpu

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"{onnx_path}: TensorRT cannot parse it: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    optimization = builder.create_optimization_profile()
    optimization.set_shape("images", profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimization)
    cache = _load_timing_cache(config, timing_cache)

    log.info("building the TensorRT engine (minutes on a first build; the timing cache makes rebuilds fast)")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT messages above)")
    atomic_write_bytes(engine_path, bytes(plan))
    if timing_cache is not None:
        _save_timing_cache(cache, timing_cache)
    gpu = current_gpu()
    return EngineBuild(
        path=engine_path,
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        profile=profile,
        workspace_bytes=workspace_bytes,
        seconds=time.perf_counter() - started,
    )


def _strongly_typed_flags(trt) -> int:  # trt: the tensorrt module
    """Network flags: STRONGLY_TYPED where the flag exists (TensorRT 10); TensorRT 11 networks are strongly typed."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _load_timing_cache(config, path: Path | None):
    """Attach the timing cache at `path` (an empty one when missing or unreadable) to the builder config."""
    data = b""
    if path is not None and path.is_file():
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("timing cache %s unreadable (%s); starting an empty one", path, error.strerror)
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s was made for another TensorRT or GPU; starting an empty one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _save_timing_cache(cache, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, bytes(cache.serialize()))
    except OSError as error:
        log.warning("could not save the timing cache to %s (%s)", path, error.strerror)


def export_engine(
    result: ExportResult,
    profile: Profile,
    workspace_bytes: int = int(DEFAULT_WORKSPACE_GIB * 2**30),
    timing_cache: Path | None = DEFAULT_TIMING_CACHE,
    verify: bool = True,
) -> tuple[EngineBuild, ParityReport | None]:
    """Build `STEM.engine` from the export's FP16 ONNX, check it against the FP32 ONNX, extend the sidecar.

    The check uses the export's parity images and the FP16 bounds (translators: 2 grey levels on >= 99.5% of
    pixels; segmenters: >= 99.5% identical labels); the sidecar lists the engine only once it passed.
    """
    from uda_trt.export.onnx_export import FP16_PARITY, near_ties
    from uda_trt.export.parity import require, run_parity
    from uda_trt.runtime.runners import OnnxRuntimeRunner, TensorRTRunner
    from uda_trt.runtime.sidecar import file_sha256

    if result.fp16_path is None:
        raise UserError("the engine is built from STEM.fp16.onnx; export without --no-fp16")
    sidecar = result.sidecar
    engine_path = result.onnx_path.with_name(result.onnx_path.name[: -len(".onnx")] + ".engine")
    engine_path.unlink(missing_ok=True)  # the sidecar on disk does not list an engine yet
    build = build_engine(result.fp16_path, engine_path, profile, workspace_bytes, timing_cache)
    sidecar = dataclasses.replace(
        sidecar,
        artifacts={**sidecar.artifacts, "engine": {"file": engine_path.name, "sha256": file_sha256(engine_path)}},
        engine=build.sidecar_fields(),
    )
    report = None
    if verify:
        bounds = FP16_PARITY[sidecar.task]
        name = sidecar.output_name()
        with (
            OnnxRuntimeRunner(result.onnx_path, sidecar, "onnxruntime-cpu") as fp32,
            TensorRTRunner(engine_path, sidecar) as engine,
        ):
            report = run_parity(
                sidecar.task,
                result.parity_images,
                lambda batch: fp32.infer({"images": batch})[name],
                lambda batch: engine.infer({"images": batch})[name],
                bounds["required"],
                bounds["tolerance"],
                "onnx",
                near_ties(result.parity_margins, bounds),
            )
        require(report, engine_path, f"; {engine_path.name} kept for inspection and not listed in the sidecar")
        sidecar = dataclasses.replace(sidecar, validation={**(sidecar.validation or {}), "engine": report.to_dict()})
    sidecar.write(result.sidecar_path)
    return build, report
