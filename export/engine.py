"""FP16 ONNX -> TensorRT engine (`STEM.engine`), one code path for TensorRT 10 and 11.

The network is strongly typed: every layer runs in the type the FP16 ONNX gives it (FP16, with InstanceNorm and
the other ops export.fp16 keeps in FP32). TensorRT 11 removed `BuilderFlag.FP16`, so precision must come from the
ONNX; TensorRT 10 honours the same graph the same way, so the flag is never set on either. One optimisation
profile covers the batch sizes and image sizes the runtime will feed; a timing cache shared across builds makes a
rebuild seconds instead of minutes (one file per TensorRT version and GPU generation: a cache is only valid for the
version and device that wrote it). Needs an NVIDIA GPU and the `tensorrt` package (extra `[tensorrt]`); checking the
engine also needs `pycuda`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import atomic_write_bytes
from uda_trt.runtime.runners import SEGMENTER_SIZES

if TYPE_CHECKING:
    import numpy as np

    from uda_trt.export.onnx_export import ExportResult
    from uda_trt.export.parity import ParityReport

log = logging.getLogger(__name__)

DEFAULT_BATCH = (1, 4, 8)  # min, opt, max
DEFAULT_WORKSPACE_GIB = 4.0
TIMING_CACHE_DIR = Path.home() / ".cache" / "uda-trt"
# build_engine's timing_cache: a file, None (no cache), or "default" (default_timing_cache for this TensorRT and GPU)
TimingCache = Path | Literal["default"] | None


def default_timing_cache(tensorrt_version: str, compute_capability: str) -> Path:
    """`~/.cache/uda-trt/tensorrt-<version>-sm<cc>.timing-cache`: TensorRT rejects a timing cache written by another
    version or device, so one shared file would be thrown away and overwritten whenever the two alternate."""
    version = re.sub(r"[^0-9A-Za-z.+_-]", "_", tensorrt_version)
    return TIMING_CACHE_DIR / f"tensorrt-{version}-sm{compute_capability.replace('.', '')}.timing-cache"


@dataclass(frozen=True)
class Profile:
    """Optimisation-profile ranges of the NHWC uint8 input `images`: (N, H, W, 3) at min, opt and max."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def batch_range(self) -> tuple[int, int]:
        return self.min[0], self.max[0]

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((w, h) smallest, (w, h) largest) image the profile accepts."""
        return (self.min[2], self.min[1]), (self.max[2], self.max[1])

    def describe(self) -> str:
        """e.g. 'batch 1..8, 256x128..2048x1024'."""
        (low_w, low_h), (high_w, high_h) = self.size_range()
        return f"batch {self.min[0]}..{self.max[0]}, {low_w}x{low_h}..{high_w}x{high_h}"

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


def fit_parity_to_profile(task: str, images: list[np.ndarray], profile: Profile, divisor: int) -> list[np.ndarray]:
    """The parity images at sizes the engine accepts, checked before the build (minutes) rather than after it.

    Translators: an image outside the profile's sizes is resized to the nearest size inside it that is a multiple of
    `divisor` (the check compares the engine with the FP32 ONNX on the same input, so any input is a fair one).
    Segmenters: their images must already fit (export-trt draws or resizes them before the export, see
    export.parity.segmenter_parity_images), because the near-tie masks were measured at their size. UserError
    (one line) when a profile holds no acceptable size or a segmenter image lies outside it.
    """
    from uda_trt.export.parity import size_in_range
    from uda_trt.runtime.imageio import resize_rgb

    low, high = profile.size_range()
    if size_in_range(low, low, high, divisor) is None:
        raise UserError(
            f"engine profile {profile.describe()}: no width and height in it is a multiple of {divisor}, "
            "the model's size divisor; choose --profile-sizes that include one"
        )
    fitted = []
    for image in images:
        size = (image.shape[1], image.shape[0])
        target = size_in_range(size, low, high, divisor)
        if target == size:
            fitted.append(image)
        elif task == "segment":
            raise UserError(
                f"parity image {size[0]}x{size[1]} is outside the engine profile {profile.describe()}; "
                "give --parity-images inside it or widen --profile-sizes"
            )
        else:
            log.info("engine check on the parity images resized to %dx%d, inside the profile", *target)
            fitted.append(resize_rgb(image, target))
    return fitted


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: Profile,
    workspace_bytes: int = int(DEFAULT_WORKSPACE_GIB * 2**30),
    timing_cache: TimingCache = "default",
    label: Path | str | None = None,
) -> EngineBuild:
    """Parse `onnx_path` (the FP16 ONNX, or the TensorRT form of the INT8 one) into a strongly typed network, build,
    write the plan atomically.

    timing_cache: a file to read and update, "default" (default_timing_cache), or None. Layer details are kept in
    the plan (ProfilingVerbosity.DETAILED) so the engine inspector can show each layer's precision. Raises
    UserError, one line naming `label` (default `onnx_path`; a temporary file names the artifact it came from), when
    TensorRT cannot start, rejects the profile, or cannot parse or build the network.
    """
    import time

    import tensorrt as trt

    from uda_trt.runtime.gpu import current_gpu

    started = time.perf_counter()
    gpu = current_gpu()
    if timing_cache == "default":
        timing_cache = default_timing_cache(trt.__version__, gpu.compute_capability)
    label = label or onnx_path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = _new_builder(trt, logger, label)
    network = builder.create_network(_strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"{label}: TensorRT cannot parse it: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    _add_profile(builder, config, profile, label)
    cache = _load_timing_cache(config, timing_cache)

    log.info("building the TensorRT engine (minutes on a first build; the timing cache makes rebuilds fast)")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserError(f"{label}: TensorRT could not build an engine (see the TensorRT messages above)")
    atomic_write_bytes(engine_path, bytes(plan))
    if cache is not None and timing_cache is not None:
        _save_timing_cache(cache, timing_cache)
    return EngineBuild(
        path=engine_path,
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        profile=profile,
        workspace_bytes=workspace_bytes,
        seconds=time.perf_counter() - started,
    )


def _new_builder(trt, logger, onnx_path: Path | str):  # trt: the tensorrt module
    """trt.Builder, or a UserError when TensorRT cannot start CUDA: the binding then raises TypeError
    ("factory function returned nullptr", NVIDIA/TensorRT#2913) after logging the CUDA error."""
    try:
        builder = trt.Builder(logger)
    except TypeError:
        builder = None
    if builder is None:
        raise UserError(
            f"{onnx_path}: TensorRT could not start a builder: CUDA failed to initialise (a driver older than this "
            "TensorRT needs, or no usable GPU; see the TensorRT message above)"
        )
    return builder


def _add_profile(builder, config, profile: Profile, onnx_path: Path | str) -> None:
    """Add the optimisation profile for `images`; UserError when TensorRT rejects it (set_shape raises
    RuntimeError on inconsistent shapes; add_optimization_profile returns -1 for an invalid profile)."""
    optimization = builder.create_optimization_profile()
    try:
        optimization.set_shape("images", profile.min, profile.opt, profile.max)
    except RuntimeError as error:
        raise UserError(f"{onnx_path}: TensorRT rejects the engine profile {profile.describe()}: {error}") from None
    if config.add_optimization_profile(optimization) < 0:
        raise UserError(f"{onnx_path}: TensorRT rejects the engine profile {profile.describe()} as invalid")


def _strongly_typed_flags(trt) -> int:  # trt: the tensorrt module
    """Network flags: STRONGLY_TYPED where the flag exists (TensorRT 10); TensorRT 11 networks are strongly typed."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _load_timing_cache(config, path: Path | None):
    """Attach the timing cache at `path` to the builder config; an empty one when the file is missing, unreadable,
    corrupt or from another TensorRT or device (create_timing_cache then returns None, or set_timing_cache False).
    Returns the attached cache, or None when TensorRT cannot create even an empty one (the build goes on without)."""
    data = b""
    if path is not None and path.is_file():
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("timing cache %s unreadable (%s); starting an empty one", path, error.strerror)
    if data:
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
        log.warning("timing cache %s is corrupt or from another TensorRT or GPU; starting an empty one", path)
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("TensorRT could not create a timing cache; building without one")
        return None
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
    timing_cache: TimingCache = "default",
    verify: bool = True,
) -> tuple[EngineBuild, ParityReport | None]:
    """Build `STEM.engine` from the export's FP16 ONNX, check it against the FP32 ONNX, extend the sidecar.

    The check uses the export's parity images, fitted to the profile before the build (fit_parity_to_profile) and
    fed in batches the profile accepts, with the FP16 bounds (translators: 2 grey levels on >= 99.5% of pixels;
    segmenters: >= 99.5% identical labels); the sidecar lists the engine only once it passed.
    """
    from uda_trt.export.onnx_export import FP16_PARITY, near_ties
    from uda_trt.export.parity import require, run_parity
    from uda_trt.runtime.runners import OnnxRuntimeRunner, TensorRTRunner
    from uda_trt.runtime.sidecar import file_sha256

    if result.fp16_path is None:
        raise UserError("the engine is built from STEM.fp16.onnx; export without --no-fp16")
    sidecar = result.sidecar
    images = fit_parity_to_profile(sidecar.task, result.parity_images, profile, sidecar.size_divisor) if verify else []
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
                images,
                lambda batch: fp32.infer({"images": batch})[name],
                lambda batch: engine.infer({"images": batch})[name],
                bounds["required"],
                bounds["tolerance"],
                "onnx",
                near_ties(result.parity_margins, bounds),
                batch=profile.batch_range(),
            )
        require(report, engine_path, f"; {engine_path.name} kept for inspection and not listed in the sidecar")
        sidecar = dataclasses.replace(sidecar, validation={**(sidecar.validation or {}), "engine": report.to_dict()})
    sidecar.write(result.sidecar_path)
    return build, report
