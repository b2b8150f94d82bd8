"""Typed records of the single measurements the stages combine: a sweep point, a run, a codec limit, the machine.

The measuring modules (sweep, matmul, codec, endtoend, baselines, official_eval, memory) return plain dicts; each
stage turns them into these records right where it measures, with `Record(**measured)`, so a key renamed on either
side fails at that line (a missing or unexpected keyword) rather than when the report is rendered. Field names and
order are the dicts' keys: report.json is `dataclasses.asdict` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from uda_trt.benchmarks.report import machine_info

# beyond benchmarks.report.machine_info's list: what the codecs, the official evaluator and the figures ran on
EXTRA_PACKAGES = ("pillow", "cityscapesScripts", "matplotlib", "tensorrt", "pycuda")


def size_label(size: tuple[int, int]) -> str:
    """ "WIDTHxHEIGHT", the key of a per-size figure (MACs per image)."""
    return f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class Machine:
    """Where the numbers were measured, and with which library versions (None: not installed)."""

    platform: str
    processor: str
    cpu_count: int | None
    python: str
    versions: dict[str, str | None]


def describe_machine() -> Machine:
    """This machine, with the versions of benchmarks.report's packages and of EXTRA_PACKAGES."""
    info = machine_info()
    versions = dict(info.pop("versions"))
    for package in EXTRA_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return Machine(**info, versions=versions)


@dataclass(frozen=True)
class SweepRow:
    """One engine-only sweep point (sweep.point): a backend at one size and batch size."""

    model: str
    backend: str
    artifact: str
    size: list[int]
    batch_size: int
    warmup_runs: int
    runs: int
    images: int
    seconds: float
    images_per_second: float
    latency_ms: dict[str, float]  # p50, p90, p99, mean, min, max
    macs_per_image: int | None
    gflops: float | None
    peak_rss_mb: float


@dataclass(frozen=True)
class MatMulRate:
    """The machine's float32 MatMul rate on ONNX Runtime (matmul.measure_matmul)."""

    shape: dict[str, int]  # m, k, n
    macs: int
    intra_op_threads: int
    inter_op_threads: int
    warmup_runs: int
    runs: int
    seconds: float
    runs_per_second: float
    gflops: float
    latency_ms: dict[str, float]


@dataclass(frozen=True)
class CodecLimit:
    """Decode + resize + encode seconds per image on one thread, and the images/s they allow (codec)."""

    images: int
    working_size: list[int]
    format: str
    png_compression: int | None
    jpeg_quality: int | None
    per_image_seconds: dict[str, float]  # decode, resize, encode
    seconds_per_image: float
    single_thread_images_per_second: float
    workers: int
    limit_images_per_second: float
    label_seconds_per_image: float | None


@dataclass(frozen=True)
class TranslateRun:
    """One batch-translate run end to end (endtoend.run_batch_translate)."""

    way: str
    config: dict[str, Any]  # the TranslateJob
    output: str
    images: int
    wall_seconds: float
    images_per_second: float
    stage_seconds: dict[str, float]
    job_report: dict[str, Any]
    batch_size: int
    png_compression: int | None
    image_format: str
    output_kib_per_image: float | None
    peak_rss_mb: float


@dataclass(frozen=True)
class ScriptRun:
    """One run of a way without the runtime: the reference script or PyTorch eager batched (baselines)."""

    way: str
    output: str
    images: int
    wall_seconds: float
    images_per_second: float
    stage_seconds: dict[str, float]
    batch_size: int
    png_compression: int
    torch_threads: int
    output_kib_per_image: float | None
    peak_rss_mb: float


EndToEndRun = TranslateRun | ScriptRun


@dataclass(frozen=True)
class OutputComparison:
    """Pixel differences between what two ways wrote (endtoend.compare_outputs)."""

    images: int
    max_abs_diff: int
    mean_abs_diff: float
    fraction_within_1: float
    psnr_db: float | None  # over every value of every image; None: identical (infinite)


@dataclass(frozen=True)
class FileComparison:
    """Whether two runs wrote the same files, byte for byte (endtoend.compare_files)."""

    files: int  # output files either run wrote
    identical: bool
    differing: list[str]  # relative paths that differ or that one run lacks


@dataclass(frozen=True)
class OfficialRun:
    """The official Cityscapes evaluator as a child process (official_eval.run_official)."""

    command: str
    seconds: float
    peak_rss_mb: float
    peak_rss_method: str
    cython_fast_path: bool
    instance_level_scores: bool
    class_iou: dict[str, float]


@dataclass(frozen=True)
class EvaluateSegRun:
    """`evaluate-seg --predictions` as a child process (official_eval.run_ours)."""

    command: str
    seconds: float
    peak_rss_mb: float
    peak_rss_method: str
    images_scored: int
    class_iou: dict[str, float]


@dataclass(frozen=True)
class IouComparison:
    """Per-class IoU of two evaluators, class by class (official_eval.compare_iou)."""

    identical: bool
    max_abs_diff: float
    differing_classes: list[str]


@dataclass(frozen=True)
class MemoryRun:
    """One batch-translate child process and its own peak RSS (memory.peak_rss_run)."""

    input: str
    images: int
    seconds: float
    images_per_second: float
    peak_rss_mb: float
    peak_rss_method: str


@dataclass(frozen=True)
class Int8Gate:
    """The INT8 artifact's quality gate against the FP32 ONNX on held-out images (export.int8.GateReport.to_dict):
    the share of pixels within `tolerance` grey levels in every channel and the PSNR, with what the gates require."""

    task: str
    reference: str
    images: int
    pixels: int
    fraction: float
    required: float
    tolerance: int
    max_abs_diff: int
    mean_abs_diff: float
    near_ties: float
    psnr_db: float | None  # None: identical outputs (infinite PSNR)
    required_psnr_db: float | None
    passed: bool


@dataclass(frozen=True)
class SpeedTrial:
    """One layer the INT8 speed pass kept float (export.int8_speed): the model with it quantized and with it float,
    profiled alternately: whole-model seconds and the milliseconds of the kernels that differ, per run; the saving
    (fraction of the quantized model's faster run) and the whole-model speed-up it makes."""

    node: str
    quantized_seconds: list[float]
    float_seconds: list[float]
    quantized_kernel_ms: list[float]
    float_kernel_ms: list[float]
    saving: float
    speedup: float
