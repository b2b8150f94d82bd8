"""A whole benchmark suite in one run: data, models, every measurement, the criteria, the report.

Stages run one after another on an otherwise idle machine and print their progress; every ratio the criteria
judge has both operands measured in this run, on the same files, with the same thread settings. Each stage returns
its own typed result (results.py). What cannot run on this machine is decided once, before the first stage, and
recorded in the result's `skipped`; stages are then only asked to run what can.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from uda_trt.benchmarks.throughput import data as bench_data
from uda_trt.benchmarks.throughput.backends import (
    BACKEND_NAMES,
    EAGER,
    FDA,
    ORT_CPU,
    TENSORRT,
    set_torch_threads,
    unavailable_reason,
)
from uda_trt.benchmarks.throughput.baselines import eager_batched, reference_way
from uda_trt.benchmarks.throughput.codec import measure_codec_limit
from uda_trt.benchmarks.throughput.config import SuiteConfig
from uda_trt.benchmarks.throughput.criteria import suite_criteria
from uda_trt.benchmarks.throughput.endtoend import (
    compare_files,
    compare_outputs,
    ray_unavailable_reason,
    run_batch_translate,
)
from uda_trt.benchmarks.throughput.int8 import quantize
from uda_trt.benchmarks.throughput.matmul import measure_matmul
from uda_trt.benchmarks.throughput.measure import PeakRss, RunPolicy
from uda_trt.benchmarks.throughput.memory import peak_rss_run
from uda_trt.benchmarks.throughput.models import build_engine_for, macs_per_image, make_generator
from uda_trt.benchmarks.throughput.official_eval import (
    compare_iou,
    make_predictions,
    official_unavailable_reason,
    run_official,
    run_ours,
)
from uda_trt.benchmarks.throughput.passthrough import write_passthrough
from uda_trt.benchmarks.throughput.peer_eval import run_peer
from uda_trt.benchmarks.throughput.records import (
    CodecLimit,
    EvaluateSegRun,
    FileComparison,
    IouComparison,
    MatMulRate,
    MemoryRun,
    OfficialRun,
    OutputComparison,
    ScriptRun,
    SweepRow,
    TranslateRun,
    describe_machine,
    size_label,
)
from uda_trt.benchmarks.throughput.report import write_report
from uda_trt.benchmarks.throughput.results import (
    ArtifactEntry,
    ArtifactTable,
    CodecBound,
    CodecLimits,
    ComputeBound,
    Evaluation,
    GeneratorOnnxEntry,
    Int8Artifact,
    Int8Compute,
    Memory,
    RayLocal,
    Skipped,
    SuiteData,
    SuiteModels,
    SuiteResult,
    SuiteThreads,
)
from uda_trt.benchmarks.throughput.sweep import SweepTarget, sample_frames, sweep
from uda_trt.runtime.imageio import read_rgb, resize_rgb
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.sidecar import file_sha256

STAGE_COUNT = 11
OFFICIAL_EVALUATOR = "official Cityscapes evaluator"
RAY_LOCAL = "Ray local"
Run = TypeVar("Run")


def echo(message: str) -> None:
    """Progress on stderr, flushed at once (the suite runs for minutes)."""
    print(message, file=sys.stderr, flush=True)


def run_suite(config: SuiteConfig, output: Path) -> SuiteResult:
    """Run every stage of `config` and write report.json, report.md and the figures into `output`."""
    output = Path(output)
    work = output / "work"
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # outputs of an earlier run; the data and models are kept
    peak = PeakRss()
    threads = default_workers()
    set_torch_threads(threads)
    timer = StageTimer(STAGE_COUNT, announce=echo)
    skipped = unavailable_parts()
    cannot_run = {entry.what for entry in skipped}
    with timer.stage("synthetic data"):
        data = prepare_data(config, work / "data")
    with timer.stage("models (random-init generators, ONNX export with parity check)"):
        models = prepare_models(config, work / "artifacts", data, engines=TENSORRT not in cannot_run)
    with timer.stage("INT8 artifact of the compute-bound generator (calibration, speed pass, gates)"):
        int8 = int8_artifact(config, models, data)
    artifacts = artifact_table(config, models, int8)
    with timer.stage("float32 MatMul rate (ONNX Runtime)"):
        matmul = MatMulRate(**measure_matmul(*config.matmul_shape, config.matmul_policy, threads))
    with timer.stage("codec limits"):
        codec = codec_limits(config, data)
    with timer.stage("engine-only sweeps"):
        sweeps = run_sweeps(config, models, data, artifacts, peak, threads, cannot_run)
    with timer.stage("compute-bound end to end (ResNet generator)"):
        compute, int8_runs = compute_bound(config, models, data, artifacts, int8, runs / "compute", peak, threads)
    with timer.stage("codec-bound end to end (pass-through, small generator, formats)"):
        codec_runs = codec_bound(config, models, data, runs / "codec", peak, threads)
    with timer.stage("batch-translate --ray local against one process (codec-bound job)"):
        ray_runs = None if RAY_LOCAL in cannot_run else ray_local(config, models, data, runs / "ray", peak)
    with timer.stage("evaluate-seg vs the official Cityscapes evaluator"):
        scores = None if OFFICIAL_EVALUATOR in cannot_run else evaluation(config, data, runs / "eval")
    with timer.stage("peak memory against dataset size"):
        peaks = memory(config, models, data, runs / "memory")
    result = SuiteResult(
        suite=config.name,
        config=config,
        threads=SuiteThreads(
            onnxruntime_intra_op=threads,
            onnxruntime_inter_op=1,
            torch=threads,
            codec_workers=default_workers(),
            peak_rss_resettable=peak.resettable,
        ),
        skipped=skipped,
        artifacts=artifacts,
        matmul=matmul,
        codec=codec,
        sweeps=sweeps,
        compute_bound=compute,
        int8=int8_runs,
        codec_bound=codec_runs,
        ray_local=ray_runs,
        evaluation=scores,
        memory=peaks,
        criteria=suite_criteria(matmul, compute, codec_runs, scores, peaks, int8_runs),
        stage_seconds=dict(timer.seconds),
        wall_seconds=timer.total(),
        machine=describe_machine(),
    )
    write_report(output, result)
    return result


def unavailable_parts() -> list[Skipped]:
    """The parts of a suite this machine cannot run (backends, the official evaluator, Ray), each printed once.

    The suite asks this before its first stage and runs only the rest: a missing TensorRT means no engines and no
    TensorRT sweeps, a missing official evaluator no criterion C, a missing Ray no Ray-against-one-process figure.
    """
    reasons = {backend: unavailable_reason(backend) for backend in BACKEND_NAMES}
    reasons[OFFICIAL_EVALUATOR] = official_unavailable_reason()
    reasons[RAY_LOCAL] = ray_unavailable_reason()
    skipped = [Skipped(what, reason) for what, reason in reasons.items() if reason is not None]
    for entry in skipped:
        echo(f"skipped {entry.what}: {entry.reason}")
    return skipped


def median(runs: Sequence[Run], value: Callable[[Run], float]) -> Run:
    """The run with the median `value` (the lower middle one for an even count), for repeated runs."""
    return sorted(runs, key=value)[(len(runs) - 1) // 2]


def prepare_data(config: SuiteConfig, root: Path) -> SuiteData:
    """Generate (or reuse) the suite's datasets under `root`."""
    codec = root / f"gta5_{config.gta5_size[0]}x{config.gta5_size[1]}"
    bench_data.gta5(codec, config.codec_images, config.gta5_size, config.seed)
    compute = bench_data.gta5_prefix(codec, root / "gta5_compute", config.compute_images)
    width, height = config.cityscapes_size
    cityscapes = root / f"cityscapes_gt_{width}x{height}"
    bench_data.cityscapes_ground_truth(cityscapes, config.eval_images, config.cityscapes_size, config.seed)
    small, large = config.memory_counts
    memory_large = root / f"memory_{large}"
    bench_data.gta5(memory_large, large, config.memory_size, config.seed)
    memory_small = bench_data.gta5_prefix(memory_large, root / f"memory_{small}", small)
    return SuiteData(codec, compute, cityscapes, memory_small, memory_large)


def prepare_models(config: SuiteConfig, root: Path, data: SuiteData, engines: bool) -> SuiteModels:
    """Both generators (checkpoint + parity-checked ONNX), the pass-through artifacts, and with `engines` a
    TensorRT engine of each generator."""
    parity = resize_rgb(read_rgb(bench_data.image_paths(data.codec)[0]), config.working_size)
    compute = make_generator(config.compute_model, root, config.working_size, parity, config.seed)
    codec = make_generator(config.codec_model, root, config.working_size, parity, config.seed)
    passthrough = write_passthrough(root, config.working_size, config.size_divisor)
    passthrough_memory = write_passthrough(root, config.memory_size, config.size_divisor, stem="passthrough_memory")
    built = {}
    if engines:
        largest = max(config.compute_sweep_batches + config.codec_sweep_batches)
        for model in (compute, codec):
            built[model.spec.name] = build_engine_for(model, root / "tensorrt", parity, largest)
    return SuiteModels(compute, codec, passthrough, passthrough_memory, built)


def int8_artifact(config: SuiteConfig, models: SuiteModels, data: SuiteData) -> Int8Artifact:
    """The compute-bound generator's INT8 artifact (benchmarks.throughput.int8), calibrated on the codec job's
    images (the compute-bound job's and more), with what it kept float and its gate printed."""
    model = models.compute
    int8 = quantize(model.spec.name, model.onnx, data.codec, config.int8_calibration_images, config.int8_method)
    gate = int8.gate
    psnr = "identical" if gate.psnr_db is None else f"PSNR {gate.psnr_db:.2f} dB"
    speed = ", ".join(f"{trial.node} ({100 * trial.saving:.1f} % saved)" for trial in int8.float_for_speed) or "none"
    echo(
        f"  {int8.method} on {int8.calibration_images} images; kept float for speed: {speed} of "
        f"{int8.speed_suspects} timed; gate on {gate.images} held-out images: {psnr}, "
        f"{100 * gate.fraction:.2f} % within {gate.tolerance} grey levels ({'passed' if gate.passed else 'FAILED'})"
    )
    return int8


def artifact_table(config: SuiteConfig, models: SuiteModels, int8: Int8Artifact) -> ArtifactTable:
    """Every artifact the suite ran: path, sha256, and MACs per image at each size it ran at (the INT8 artifact's:
    its FP32 graph's, the same arithmetic, mostly in int8)."""
    sizes = [config.working_size, *config.full_sizes]
    table: ArtifactTable = {}
    for model in (models.compute, models.codec):
        name = model.spec.name
        macs = {size_label(size): macs_per_image(model.onnx, size) for size in sizes}
        table[str(model.checkpoint)] = ArtifactEntry(name, file_sha256(model.checkpoint), macs)
        architecture = {"ngf": model.spec.ngf, "n_blocks": model.spec.n_blocks}
        table[str(model.onnx)] = GeneratorOnnxEntry(name, file_sha256(model.onnx), macs, architecture)
        engine = models.engines.get(name)
        if engine is not None:
            table[str(engine)] = ArtifactEntry(name, file_sha256(engine), macs)
        if name == int8.model:
            table[int8.path] = ArtifactEntry(name, int8.sha256, macs)
    for path, size in ((models.passthrough, config.working_size), (models.passthrough_memory, config.memory_size)):
        table[str(path)] = ArtifactEntry(path.stem, file_sha256(path), {size_label(size): macs_per_image(path, size)})
    return table


def codec_limits(config: SuiteConfig, data: SuiteData) -> CodecLimits:
    """The codec limit at the suite's PNG level (criterion B), and at the faster level and JPEG (separately)."""
    images = bench_data.image_paths(data.codec)
    labels = bench_data.label_paths(data.codec)
    size = config.working_size
    return CodecLimits(
        png=CodecLimit(**measure_codec_limit(images, size, "png", config.png_compression, labels=labels)),
        png_fast=CodecLimit(**measure_codec_limit(images, size, "png", config.fast_png_compression)),
        jpg=CodecLimit(**measure_codec_limit(images, size, "jpg", jpeg_quality=config.jpeg_quality)),
    )


def run_sweeps(
    config: SuiteConfig,
    models: SuiteModels,
    data: SuiteData,
    artifacts: ArtifactTable,
    peak: PeakRss,
    threads: int,
    cannot_run: set[str],
) -> list[SweepRow]:
    """Engine-only sweeps of both generators on every backend that runs here, of the pass-through on ONNX
    Runtime, and of FDA (numpy, not an engine); MACs per image come from each model's ONNX graph in `artifacts`."""
    targets: list[tuple[SweepTarget, Path | None]] = []  # with the ONNX graph whose MACs count (None: no graph)
    for model, batches, policy in (
        (models.compute, config.compute_sweep_batches, config.compute_policy),
        (models.codec, config.codec_sweep_batches, config.codec_policy),
    ):
        sizes = (config.working_size,)
        name = model.spec.name
        targets.append((SweepTarget(name, ORT_CPU, model.onnx, sizes, batches, policy), model.onnx))
        targets.append((SweepTarget(name, EAGER, model.checkpoint, sizes, batches, policy), model.onnx))
        if name in models.engines:
            targets.append((SweepTarget(name, TENSORRT, models.engines[name], sizes, batches, policy), model.onnx))
    passthrough = SweepTarget(
        "passthrough",
        ORT_CPU,
        models.passthrough,
        (config.working_size,),
        config.codec_sweep_batches,
        config.codec_policy,
    )
    targets.append((passthrough, models.passthrough))
    # FDA (not an engine, no MACs) at the engines' sizes, donors from the suite's images: their content does not
    # change the cost
    fda_sizes = (config.working_size, *config.full_sizes)
    fda = SweepTarget("fda", FDA, data.codec / "images", fda_sizes, config.codec_sweep_batches, config.codec_policy)
    targets.append((fda, None))
    if config.full_sizes:
        for model in (models.compute, models.codec):
            for backend, artifact in ((ORT_CPU, model.onnx), (EAGER, model.checkpoint)):
                target = SweepTarget(
                    model.spec.name, backend, artifact, config.full_sizes, config.full_batches, config.full_policy
                )
                targets.append((target, model.onnx))
    paths = bench_data.image_paths(data.codec)
    frames: dict[tuple[int, int], list[np.ndarray]] = {}

    def frames_for(size: tuple[int, int]) -> list[np.ndarray]:
        if size not in frames:
            frames[size] = sample_frames(size, 4, paths)
        return frames[size]

    rows = []
    for target, onnx in targets:
        if target.backend in cannot_run:
            continue
        echo(f"  sweep {target.model} on {target.backend}: batch {list(target.batch_sizes)}")
        macs = artifacts[str(onnx)].macs_per_image if onnx is not None else {}
        measured = sweep(target, lambda size, macs=macs: macs.get(size_label(size)), frames_for, peak, threads)
        rows += [SweepRow(**row) for row in measured]
    return rows


def compute_bound(
    config: SuiteConfig,
    models: SuiteModels,
    data: SuiteData,
    artifacts: ArtifactTable,
    int8: Int8Artifact,
    runs: Path,
    peak: PeakRss,
    threads: int,
) -> tuple[ComputeBound, Int8Compute]:
    """Criteria A's and E's runs, repeated and interleaved (the median run of each counts). Per repeat: ONNX
    Runtime engine-only of the INT8 and then the FP32 artifact on as many preloaded images as the job translates,
    batch-translate with FP32 and then INT8, the reference way, and the small job both ways. Each ratio's two
    operands run next to each other (E1: the two engine streams, A2: FP32 engine and job, E2: the two jobs), so a
    slow drift of a shared machine falls on both sides. Outputs of the last runs are compared."""
    model = models.compute
    images = bench_data.image_paths(data.compute)
    size, png, batch = config.working_size, config.png_compression, config.compute_batch
    engine = _job_engine(config, model.spec.name, len(images), artifacts[str(model.onnx)].macs_per_image, peak, threads)
    frames = sample_frames(size, batch, images)

    def translate(artifact: Path, root: Path, folder: str, batch_size: int | None) -> TranslateRun:
        return TranslateRun(
            **run_batch_translate(artifact, root, runs / folder, size, batch_size, peak, png_compression=png)
        )

    def reference_run(paths: list[Path], folder: str) -> ScriptRun:
        return ScriptRun(**reference_way(model.checkpoint, paths, runs / folder, size, png, peak, threads))

    int8_path = Path(int8.path)
    small_root = first_images(data.compute, runs / "small_input", config.small_job_images)
    small_images = bench_data.image_paths(small_root)
    done: dict[str, list] = {
        way: [] for way in ("int8_engine", "engine", "ours", "int8", "reference", "small", "small_reference")
    }
    for repeat in range(config.compute_repeats):
        done["int8_engine"].append(engine(int8_path, frames))
        done["engine"].append(engine(model.onnx, frames))
        done["ours"].append(translate(model.onnx, data.compute, "ours", batch))
        done["int8"].append(translate(int8_path, data.compute, "int8", batch))
        done["reference"].append(reference_run(images, "reference"))
        done["small"].append(translate(model.onnx, small_root, "small", None))
        done["small_reference"].append(reference_run(small_images, "small_reference"))
        rates = {way: f"{runs_[-1].images_per_second:.3f}" for way, runs_ in done.items()}
        echo(
            f"  repeat {repeat + 1}/{config.compute_repeats} (images/s): engine-only FP32 {rates['engine']}, "
            f"INT8 {rates['int8_engine']}; batch-translate FP32 {rates['ours']}, INT8 {rates['int8']}; reference "
            f"{rates['reference']}; {len(small_images)} images alone: batch-translate {rates['small']}, reference "
            f"{rates['small_reference']}"
        )

    def middle(way: str):
        return median(done[way], lambda run: run.images_per_second)

    stems = [path.stem for path in images]
    compute = ComputeBound(
        model=model.spec.name,
        input_size=config.gta5_size,
        working_size=config.working_size,
        repeats=config.compute_repeats,
        engine_only_runs=done["engine"],
        engine_only=middle("engine"),
        batch_translate_runs=done["ours"],
        batch_translate=middle("ours"),
        reference_runs=done["reference"],
        reference=middle("reference"),
        output_comparison=OutputComparison(**compare_outputs(runs / "ours" / "images", runs / "reference", stems)),
        small_job_runs=done["small"],
        small_job=middle("small"),
        small_reference_runs=done["small_reference"],
        small_reference=middle("small_reference"),
    )
    int8_engine, int8_job = middle("int8_engine"), middle("int8")
    int8_compute = Int8Compute(
        model=model.spec.name,
        working_size=config.working_size,
        repeats=config.compute_repeats,
        artifact=int8,
        engine_only_runs=done["int8_engine"],
        engine_only=int8_engine,
        batch_translate_runs=done["int8"],
        batch_translate=int8_job,
        engine_only_vs_fp32=int8_engine.images_per_second / compute.engine_only.images_per_second,
        end_to_end_vs_fp32=int8_job.images_per_second / compute.batch_translate.images_per_second,
        output_comparison=OutputComparison(
            **compare_outputs(runs / "int8" / "images", runs / "ours" / "images", stems)
        ),
    )
    return compute, int8_compute


def _job_engine(
    config: SuiteConfig, name: str, images: int, macs: dict[str, int | None], peak: PeakRss, threads: int
) -> Callable[[Path, list[np.ndarray]], SweepRow]:
    """(artifact, frames) -> one engine-only stream of an ONNX artifact: as many preloaded images as the
    compute-bound job translates, at its batch size and size, after the compute policy's warm-up batches."""
    size, batch = config.working_size, config.compute_batch
    batches = -(-images // batch)
    same_work = RunPolicy(warmup=config.compute_policy.warmup, min_runs=batches, min_seconds=0.0, max_runs=batches)

    def run(artifact: Path, frames: list[np.ndarray]) -> SweepRow:
        target = SweepTarget(name, ORT_CPU, artifact, (size,), (batch,), same_work)
        (row,) = sweep(target, lambda s: macs[size_label(s)], lambda _: frames, peak, threads)
        return SweepRow(**row)

    return run


def first_images(root: Path, out: Path, count: int) -> Path:
    """OUT as a GTA5-layout root holding the first `count` images of ROOT and their labels (copies)."""
    shutil.rmtree(out, ignore_errors=True)
    for kind, paths in (("images", bench_data.image_paths(root)), ("labels", bench_data.label_paths(root))):
        (out / kind).mkdir(parents=True)
        for path in paths[:count]:
            shutil.copy2(path, out / kind / path.name)
    return out


def codec_bound(
    config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path, peak: PeakRss, threads: int
) -> CodecBound:
    """Criterion B's runs, repeated and interleaved (median run counts): the codec limit right before each
    pass-through run (as for A2, a slow drift of a shared machine then falls on both sides of B1), then the faster
    formats, once each."""
    model = models.codec
    images = bench_data.image_paths(data.codec)
    labels = bench_data.label_paths(data.codec)
    size, batch, png = config.working_size, config.codec_batch, config.png_compression

    def translate(artifact: Path, folder: str) -> TranslateRun:
        return TranslateRun(
            **run_batch_translate(artifact, data.codec, runs / folder, size, batch, peak, png_compression=png)
        )

    def translate_as(artifact: Path, folder: str, fmt: str, level: int) -> TranslateRun:
        return TranslateRun(
            **run_batch_translate(
                artifact, data.codec, runs / folder, size, batch, peak, fmt, level, config.jpeg_quality
            )
        )

    limits: list[CodecLimit] = []
    passthrough: list[TranslateRun] = []
    ours: list[TranslateRun] = []
    reference: list[ScriptRun] = []
    for repeat in range(config.codec_repeats):
        limits.append(CodecLimit(**measure_codec_limit(images, size, "png", png, labels=labels)))
        passthrough.append(translate(models.passthrough, "passthrough"))
        ours.append(translate(model.onnx, "ours"))
        reference.append(
            ScriptRun(**reference_way(model.checkpoint, images, runs / "reference", size, png, peak, threads))
        )
        rates = ", ".join(
            f"{name} {runs_[-1].images_per_second:.2f}"
            for name, runs_ in (("pass-through", passthrough), (model.spec.name, ours), ("reference", reference))
        )
        rates = f"codec limit {limits[-1].limit_images_per_second:.2f}, {rates}"
        echo(f"  repeat {repeat + 1}/{config.codec_repeats} (images/s): {rates}")
    eager = ScriptRun(
        **eager_batched(model.checkpoint, images, runs / "eager_batched", size, png, batch, peak, threads)
    )
    stems = [path.stem for path in images]
    formats = {}
    for label, fmt, level in (("png_fast", "png", config.fast_png_compression), ("jpg", "jpg", png)):
        formats[label] = {
            "passthrough": translate_as(models.passthrough, f"passthrough_{label}", fmt, level),
            model.spec.name: translate_as(model.onnx, f"ours_{label}", fmt, level),
        }
    return CodecBound(
        model=model.spec.name,
        input_size=config.gta5_size,
        working_size=config.working_size,
        images=len(images),
        repeats=config.codec_repeats,
        codec_limit_runs=limits,
        codec_limit=median(limits, lambda limit: limit.limit_images_per_second),
        passthrough_runs=passthrough,
        passthrough=median(passthrough, lambda run: run.images_per_second),
        batch_translate_runs=ours,
        batch_translate=median(ours, lambda run: run.images_per_second),
        reference_runs=reference,
        reference=median(reference, lambda run: run.images_per_second),
        eager_batched=eager,
        output_comparison=OutputComparison(**compare_outputs(runs / "ours" / "images", runs / "reference", stems)),
        formats=formats,
    )


def ray_local(config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path, peak: PeakRss) -> RayLocal:
    """The codec-bound job with the small generator in one process and with `--ray local`, repeated and
    interleaved (median run of each counts), then its first images alone both ways: Ray's wall time less the
    single process's on that one-batch job is its fixed start-up cost (starting the local cluster and the actor,
    stopping them). Each repeat compares what Ray wrote with what the single process wrote, byte for byte."""
    model = models.codec
    size, batch, png = config.working_size, config.codec_batch, config.png_compression
    # a suite whose whole job is small (quick) times it once each way: every Ray run starts a cluster (~10 s)
    whole_is_small = config.ray_small_job_images == config.codec_images
    small_root = None if whole_is_small else first_images(data.codec, runs / "small_input", config.ray_small_job_images)

    def translate(root: Path, folder: str, ray: str | None = None) -> TranslateRun:
        return TranslateRun(
            **run_batch_translate(model.onnx, root, runs / folder, size, batch, peak, png_compression=png, ray=ray)
        )

    single: list[TranslateRun] = []
    on_ray: list[TranslateRun] = []
    small_single: list[TranslateRun] = []
    small_ray: list[TranslateRun] = []
    overheads: list[float] = []
    comparisons: list[tuple[str, dict]] = []
    for repeat in range(config.ray_repeats):
        single.append(translate(data.codec, "single"))
        on_ray.append(translate(data.codec, "ray", ray="local"))
        jobs = [("whole job", "")]
        if whole_is_small:
            small_single.append(single[-1])
            small_ray.append(on_ray[-1])
        else:
            small_single.append(translate(small_root, "small_single"))
            small_ray.append(translate(small_root, "small_ray", ray="local"))
            jobs.append(("first images alone", "small_"))
        overheads.append(small_ray[-1].wall_seconds - small_single[-1].wall_seconds)
        for label, prefix in jobs:
            compared = compare_files(runs / f"{prefix}single", runs / f"{prefix}ray")
            comparisons.append((f"repeat {repeat + 1}, {label}", compared))
        identical = all(compared["identical"] for _, compared in comparisons[-len(jobs) :])
        echo(
            f"  repeat {repeat + 1}/{config.ray_repeats} (images/s): one process {single[-1].images_per_second:.2f}, "
            f"Ray local {on_ray[-1].images_per_second:.2f}; {config.ray_small_job_images} images alone: Ray "
            f"{overheads[-1]:.1f} s slower; outputs identical: {identical}"
        )
    median_single = median(single, lambda run: run.images_per_second)
    median_ray = median(on_ray, lambda run: run.images_per_second)
    return RayLocal(
        model=model.spec.name,
        working_size=size,
        images=median_single.images,
        batch_size=batch,
        repeats=config.ray_repeats,
        cluster=median_ray.job_report["ray"],
        single_process_runs=single,
        single_process=median_single,
        ray_runs=on_ray,
        ray=median_ray,
        ray_vs_single_process=median_ray.images_per_second / median_single.images_per_second,
        small_job_images=config.ray_small_job_images,
        small_single_process_runs=small_single,
        small_ray_runs=small_ray,
        startup_overhead_runs=overheads,
        startup_overhead_seconds=median(overheads, lambda seconds: seconds),
        output_comparison=FileComparison(
            files=sum(compared["files"] for _, compared in comparisons),
            identical=all(compared["identical"] for _, compared in comparisons),
            differing=[f"{label}: {name}" for label, compared in comparisons for name in compared["differing"]],
        ),
    )


def evaluation(config: SuiteConfig, data: SuiteData, runs: Path) -> Evaluation:
    """Criterion C: the same prediction files scored by evaluate-seg, the official evaluator and the peer."""
    predictions = runs / "predictions"
    count = make_predictions(data.cityscapes, "val", predictions)
    ours = EvaluateSegRun(**run_ours(data.cityscapes, predictions, runs / "ours"))
    echo(f"  evaluate-seg: {ours.seconds:.1f} s")
    official = OfficialRun(**run_official(data.cityscapes, predictions, runs / "official"))
    echo(f"  official evaluator: {official.seconds:.1f} s (Cython fast path: {official.cython_fast_path})")
    pixel_only = OfficialRun(
        **run_official(data.cityscapes, predictions, runs / "official_pixel_only", instance_level=False)
    )
    echo(f"  official evaluator, pixel-level scores only: {pixel_only.seconds:.1f} s")
    peer = EvaluateSegRun(**run_peer(data.cityscapes, predictions))
    echo(f"  peer evaluator (NumPy, one process per core): {peer.seconds:.1f} s")
    return Evaluation(
        images=count,
        size=config.cityscapes_size,
        ours=ours,
        official=official,
        official_pixel_only=pixel_only,
        comparison=IouComparison(**compare_iou(official.class_iou, ours.class_iou)),
        comparison_pixel_only=IouComparison(**compare_iou(pixel_only.class_iou, ours.class_iou)),
        speedup_vs_pixel_only=pixel_only.seconds / ours.seconds,
        peer=peer,
        comparison_peer=IouComparison(**compare_iou(peer.class_iou, ours.class_iou)),
    )


def memory(config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path) -> Memory:
    """Criterion D: batch-translate's peak RSS on the small and the large dataset (child processes)."""
    small = MemoryRun(**peak_rss_run(models.passthrough_memory, data.memory_small, runs / "small", config.memory_batch))
    large = MemoryRun(**peak_rss_run(models.passthrough_memory, data.memory_large, runs / "large", config.memory_batch))
    for run in (small, large):
        echo(f"  peak RSS with {run.images} images: {run.peak_rss_mb:.0f} MiB")
    return Memory(size=config.memory_size, batch_size=config.memory_batch, small=small, large=large)
