"""What each stage of a benchmark run returns, and the whole run's result: typed, one dataclass per stage.

Field names are report.json's key names and field order is its key order: report.json is `to_json()` of a result
(plus the figures written beside it), so the JSON is never assembled by hand and a renamed field renames its key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uda_trt.benchmarks.throughput.config import SuiteConfig
from uda_trt.benchmarks.throughput.criteria import Criterion
from uda_trt.benchmarks.throughput.measure import RunPolicy
from uda_trt.benchmarks.throughput.models import ModelArtifacts
from uda_trt.benchmarks.throughput.records import (
    CodecLimit,
    EvaluateSegRun,
    FileComparison,
    Int8Gate,
    IouComparison,
    Machine,
    MatMulRate,
    MemoryRun,
    OfficialRun,
    OutputComparison,
    ScriptRun,
    SpeedTrial,
    SweepRow,
    TranslateRun,
)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Skipped:
    """A part of a run that cannot run on this machine, and why (one line)."""

    what: str
    reason: str


@dataclass(frozen=True)
class Threads:
    """The thread counts every measurement of a run used."""

    onnxruntime_intra_op: int
    onnxruntime_inter_op: int
    torch: int


@dataclass(frozen=True)
class SuiteThreads(Threads):
    """A suite's thread counts, the codec workers, and whether each stage got its own peak RSS."""

    codec_workers: int
    peak_rss_resettable: bool


# ---------------------------------------------------------------- stages 1-3: data, models and the INT8 artifact


@dataclass(frozen=True)
class SuiteData:
    """The synthetic datasets of one suite (GTA5 layout unless named otherwise)."""

    codec: Path  # codec_images at GTA5 size
    compute: Path  # the first compute_images of `codec`
    cityscapes: Path  # Cityscapes layout, val split, ground truth only
    memory_small: Path  # the first memory_counts[0] of `memory_large`
    memory_large: Path


@dataclass(frozen=True)
class SuiteModels:
    """Both generators, the pass-through artifacts and the TensorRT engines the suite runs."""

    compute: ModelArtifacts
    codec: ModelArtifacts
    passthrough: Path  # at the working size
    passthrough_memory: Path  # at the memory-check size
    engines: dict[str, Path]  # model name -> STEM.engine, where TensorRT runs


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact a run measured: which model, its hash, and its MACs per image by "WIDTHxHEIGHT"."""

    model: str
    sha256: str
    macs_per_image: dict[str, int | None]


@dataclass(frozen=True)
class GeneratorOnnxEntry(ArtifactEntry):
    """A generator's ONNX export, with the architecture it was built with."""

    architecture: dict[str, int]  # ngf, n_blocks


ArtifactTable = dict[str, ArtifactEntry]  # artifact path -> entry


# ----------------------------------------------------------------------------------------- stage 5: codec limits


@dataclass(frozen=True)
class CodecLimits:
    """The codec limit at the suite's PNG level (criterion B's format), at the faster PNG level, and as JPEG."""

    png: CodecLimit
    png_fast: CodecLimit
    jpg: CodecLimit


# ----------------------------------------------------------------------------------- stages 7-11: end to end


@dataclass(frozen=True)
class ComputeBound:
    """Criterion A's runs: engine-only, batch-translate and the reference way, repeated; the median run of each."""

    model: str
    input_size: tuple[int, int]
    working_size: tuple[int, int]
    repeats: int
    engine_only_runs: list[SweepRow]
    engine_only: SweepRow
    batch_translate_runs: list[TranslateRun]
    batch_translate: TranslateRun
    reference_runs: list[ScriptRun]
    reference: ScriptRun
    output_comparison: OutputComparison
    # A5/A6: the first small_job_images images alone, batch-translate with its default batch size, and the reference
    small_job_runs: list[TranslateRun]
    small_job: TranslateRun
    small_reference_runs: list[ScriptRun]
    small_reference: ScriptRun


@dataclass(frozen=True)
class Int8Artifact:
    """The INT8 artifact the suite timed (export.int8.export_int8, gates reported but not required): how it was
    made, what stayed float and why, and its quality gate against the FP32 ONNX on held-out images."""

    model: str
    path: str
    sha256: str
    seconds: float  # export_int8's wall time: calibration, speed pass, gate
    method: str  # calibration method (SuiteConfig.int8_method: fixed, not measured, to keep the run short)
    calibration_images: int
    held_out_images: int
    quantized_nodes: list[str]
    float_nodes: list[str]  # kept float for quality: none here (no sensitivity pass without required gates)
    float_for_speed: list[SpeedTrial]  # kept float by the speed pass, with its confirmation runs
    speed_suspects: int  # layers the speed pass profiled in both forms (float_for_speed: those confirmed)
    gate: Int8Gate


@dataclass(frozen=True)
class Int8Compute:
    """Criterion E's runs (issue 21): the INT8 artifact of the compute-bound model against its FP32 ONNX, timed
    inside criterion A's repeat loop (engine-only on the same preloaded frames, batch and policy as the FP32
    engine-only stream; batch-translate of the same job), so each ratio's FP32 operand is the same-run median
    `ComputeBound` holds."""

    model: str
    working_size: tuple[int, int]
    repeats: int
    artifact: Int8Artifact
    engine_only_runs: list[SweepRow]
    engine_only: SweepRow  # median
    batch_translate_runs: list[TranslateRun]
    batch_translate: TranslateRun  # median
    engine_only_vs_fp32: float  # E1's value: INT8 engine-only images/s / FP32 engine-only (medians)
    end_to_end_vs_fp32: float  # E2's value: INT8 batch-translate images/s / FP32 batch-translate (medians)
    output_comparison: OutputComparison  # INT8 against FP32 batch-translate PNGs of the last repeat


@dataclass(frozen=True)
class CodecBound:
    """Criterion B's runs (codec limit, pass-through, the small generator, the reference way), repeated, with their
    medians; PyTorch eager batched once; the faster output formats once each."""

    model: str
    input_size: tuple[int, int]
    working_size: tuple[int, int]
    images: int
    repeats: int
    codec_limit_runs: list[CodecLimit]
    codec_limit: CodecLimit
    passthrough_runs: list[TranslateRun]
    passthrough: TranslateRun
    batch_translate_runs: list[TranslateRun]
    batch_translate: TranslateRun
    reference_runs: list[ScriptRun]
    reference: ScriptRun
    eager_batched: ScriptRun
    output_comparison: OutputComparison
    formats: dict[str, dict[str, TranslateRun]]  # "png_fast" | "jpg" -> "passthrough" | model name -> run


@dataclass(frozen=True)
class RayLocal:
    """`batch-translate --ray local` against the same job in one process (the codec-bound job), repeated and
    interleaved, with the medians and their ratio; and Ray's fixed start-up cost: on the job's first images alone
    (one batch), Ray's wall time less the single process's, per repeat, and their median. A figure, not a
    criterion: on a machine whose cores one process already keeps busy, Ray can only add its own costs."""

    model: str
    working_size: tuple[int, int]
    images: int
    batch_size: int
    repeats: int
    cluster: dict[str, Any]  # the job report's "ray": target, nodes, cpus, gpus, actors, actor_resources
    single_process_runs: list[TranslateRun]
    single_process: TranslateRun
    ray_runs: list[TranslateRun]
    ray: TranslateRun
    ray_vs_single_process: float  # Ray's images/s / the single process's (medians)
    small_job_images: int
    small_single_process_runs: list[TranslateRun]
    small_ray_runs: list[TranslateRun]
    startup_overhead_runs: list[float]  # seconds: Ray's wall time less the single process's on the small job
    startup_overhead_seconds: float  # their median
    output_comparison: FileComparison  # every run's outputs against the single process's of the same repeat


@dataclass(frozen=True)
class Evaluation:
    """Criterion C: the same prediction files scored by evaluate-seg, the official evaluator (twice) and the peer."""

    images: int
    size: tuple[int, int]
    ours: EvaluateSegRun
    official: OfficialRun
    official_pixel_only: OfficialRun
    comparison: IouComparison
    comparison_pixel_only: IouComparison
    speedup_vs_pixel_only: float
    peer: EvaluateSegRun  # the straightforward NumPy evaluator (peer_eval), criterion C3
    comparison_peer: IouComparison


@dataclass(frozen=True)
class Memory:
    """Criterion D: batch-translate's peak RSS on the small and on the large dataset."""

    size: tuple[int, int]
    batch_size: int
    small: MemoryRun
    large: MemoryRun


# ------------------------------------------------------------------------------------------- whole runs


@dataclass(frozen=True)
class SuiteResult:
    """A whole suite: every stage's result, the criteria judged from them, what was skipped, the wall times."""

    schema_version: int = field(default=SCHEMA_VERSION, init=False)
    suite: str
    config: SuiteConfig
    threads: SuiteThreads
    skipped: list[Skipped]
    artifacts: ArtifactTable
    matmul: MatMulRate
    codec: CodecLimits
    sweeps: list[SweepRow]
    compute_bound: ComputeBound
    int8: Int8Compute
    codec_bound: CodecBound
    ray_local: RayLocal | None  # None: skipped (see `skipped`)
    evaluation: Evaluation | None  # None: skipped (see `skipped`)
    memory: Memory
    criteria: list[Criterion]
    stage_seconds: dict[str, float]
    wall_seconds: float
    machine: Machine

    def to_json(self) -> dict:
        """report.json's content, less the figures: every field under its own name."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ArtifactConfig:
    """What `bench-throughput ARTIFACT` was asked to measure."""

    artifact: Path
    backend: str
    sizes: tuple[tuple[int, int], ...]
    batch_sizes: tuple[int, ...]
    policy: RunPolicy
    dataset: Path | None
    png_compression: int


@dataclass(frozen=True)
class ArtifactResult:
    """One artifact's engine-only sweep, the same-run MatMul rate, and optionally one batch-translate run."""

    schema_version: int = field(default=SCHEMA_VERSION, init=False)
    suite: str
    config: ArtifactConfig
    threads: Threads
    skipped: list[Skipped]
    matmul: MatMulRate
    artifacts: ArtifactTable
    sweeps: list[SweepRow]
    end_to_end: dict[str, TranslateRun] | None  # None: no --dataset; the key is then left out of report.json
    stage_seconds: dict[str, float]
    wall_seconds: float
    machine: Machine

    def to_json(self) -> dict:
        """report.json's content, less the figures: every field under its own name, end_to_end only if run."""
        plain = dataclasses.asdict(self)
        if self.end_to_end is None:
            del plain["end_to_end"]
        return plain
