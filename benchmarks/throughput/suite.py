"""A whole benchmark suite in one run: data, models, every measurement, the criteria, the report.

Stages run one after another on an otherwise idle machine and print their progress; every ratio the criteria
judge has both operands measured in this run, on the same files, with the same thread settings.
"""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.throughput import data as bench_data
from benchmarks.throughput.backends import EAGER, ORT_CPU, TENSORRT, set_torch_threads, unavailable_reason
from benchmarks.throughput.baselines import eager_batched, reference_way
from benchmarks.throughput.codec import available_workers, measure_codec_limit
from benchmarks.throughput.config import SuiteConfig
from benchmarks.throughput.criteria import bound_criterion, ratio_criterion
from benchmarks.throughput.endtoend import compare_outputs, median_run, run_batch_translate
from benchmarks.throughput.matmul import measure_matmul
from benchmarks.throughput.measure import PeakRss, RunPolicy
from benchmarks.throughput.memory import peak_rss_run
from benchmarks.throughput.models import ModelArtifacts, build_engine_for, macs_per_image, make_generator
from benchmarks.throughput.official_eval import (
    compare_iou,
    make_predictions,
    official_unavailable_reason,
    run_official,
    run_ours,
)
from benchmarks.throughput.passthrough import write_passthrough
from benchmarks.throughput.report import write_report
from benchmarks.throughput.sweep import SweepTarget, sample_frames, sweep
from runtime.imageio import read_rgb, resize_rgb
from runtime.runners import default_threads
from runtime.sidecar import file_sha256

STAGE_COUNT = 9


def echo(message: str) -> None:
    """Progress on stderr, flushed at once (the suite runs for minutes)."""
    print(message, file=sys.stderr, flush=True)


class Progress:
    """Numbered stages with their wall time and the running total."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.index = 0
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        self.index += 1
        echo(f"[{self.index}/{self.total}] {name} ...")
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        total = time.perf_counter() - self.started
        echo(f"[{self.index}/{self.total}] {name}: {self.seconds[name]:.1f} s (total {total:.0f} s)")


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
    compute: ModelArtifacts
    codec: ModelArtifacts
    passthrough: Path  # at the working size
    passthrough_memory: Path  # at the memory-check size
    engines: dict[str, Path]  # model name -> STEM.engine, where TensorRT runs


def run_suite(config: SuiteConfig, output: Path) -> dict:
    """Run every stage of `config` and write report.json, report.md and the figures into `output`."""
    output = Path(output)
    work = output / "work"
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # outputs of an earlier run; the data and models are kept
    peak = PeakRss()
    threads = default_threads()
    set_torch_threads(threads)
    progress = Progress(STAGE_COUNT)
    report: dict = {
        "schema_version": 1,
        "suite": config.name,
        "config": config.to_plain(),
        "threads": {
            "onnxruntime_intra_op": threads,
            "onnxruntime_inter_op": 1,
            "torch": threads,
            "codec_workers": available_workers(),
            "peak_rss_resettable": peak.resettable,
        },
        "skipped": [],
    }
    with progress.stage("synthetic data"):
        data = prepare_data(config, work / "data")
    with progress.stage("models (random-init generators, ONNX export with parity check)"):
        models = prepare_models(config, work / "artifacts", data, report)
    report["artifacts"] = artifact_table(config, models)
    with progress.stage("float32 MatMul rate (ONNX Runtime)"):
        report["matmul"] = measure_matmul(*config.matmul_shape, config.matmul_policy, threads)
    with progress.stage("codec limits"):
        report["codec"] = codec_limits(config, data)
    with progress.stage("engine-only sweeps"):
        report["sweeps"] = run_sweeps(config, models, data, peak, threads, report)
    with progress.stage("compute-bound end to end (ResNet generator)"):
        report["compute_bound"] = compute_bound(config, models, data, runs / "compute", peak, threads, report)
    with progress.stage("codec-bound end to end (pass-through, small generator, formats)"):
        report["codec_bound"] = codec_bound(config, models, data, runs / "codec", peak, threads, report)
    with progress.stage("evaluate-seg vs the official Cityscapes evaluator"):
        report["evaluation"] = evaluation(config, data, runs / "eval", report)
    with progress.stage("peak memory against dataset size"):
        report["memory"] = memory(config, models, data, runs / "memory")
    report["criteria"] = criteria(report)
    report["stage_seconds"] = progress.seconds
    report["wall_seconds"] = time.perf_counter() - progress.started
    return write_report(output, report)


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


def prepare_models(config: SuiteConfig, root: Path, data: SuiteData, report: dict) -> SuiteModels:
    """Both generators (checkpoint + parity-checked ONNX), the pass-through artifacts, engines where possible."""
    parity = resize_rgb(read_rgb(bench_data.image_paths(data.codec)[0]), config.working_size)
    compute = make_generator(config.compute_model, root, config.working_size, parity, config.seed)
    codec = make_generator(config.codec_model, root, config.working_size, parity, config.seed)
    passthrough = write_passthrough(root, config.working_size, config.size_divisor)
    passthrough_memory = write_passthrough(root, config.memory_size, config.size_divisor, stem="passthrough_memory")
    engines = {}
    reason = unavailable_reason(TENSORRT)
    if reason is None:
        largest = max(config.compute_sweep_batches + config.codec_sweep_batches)
        for model in (compute, codec):
            engines[model.spec.name] = build_engine_for(model, root / "tensorrt", parity, largest)
    else:
        skip(report, TENSORRT, reason)
    return SuiteModels(compute, codec, passthrough, passthrough_memory, engines)


def skip(report: dict, what: str, reason: str) -> None:
    """Record (and print, one line) a part of the suite that cannot run here."""
    if not any(entry["what"] == what for entry in report["skipped"]):
        report["skipped"].append({"what": what, "reason": reason})
        echo(f"skipped {what}: {reason}")


def artifact_table(config: SuiteConfig, models: SuiteModels) -> dict:
    """Every artifact the suite ran: path, sha256, and MACs per image at each size it ran at."""
    sizes = [config.working_size, *config.full_sizes]
    table = {}
    for model in (models.compute, models.codec):
        macs = {f"{w}x{h}": macs_per_image(model.onnx, (w, h)) for w, h in sizes}
        for path in (model.checkpoint, model.onnx, models.engines.get(model.spec.name)):
            if path is not None:
                table[str(path)] = {"model": model.spec.name, "sha256": file_sha256(path), "macs_per_image": macs}
        table[str(model.onnx)]["architecture"] = {"ngf": model.spec.ngf, "n_blocks": model.spec.n_blocks}
    for path, size in ((models.passthrough, config.working_size), (models.passthrough_memory, config.memory_size)):
        table[str(path)] = {
            "model": path.stem,
            "sha256": file_sha256(path),
            "macs_per_image": {f"{size[0]}x{size[1]}": macs_per_image(path, size)},
        }
    return table


def codec_limits(config: SuiteConfig, data: SuiteData) -> dict:
    """The codec limit at the suite's PNG level (criterion B), and at the faster level and JPEG (separately)."""
    images = bench_data.image_paths(data.codec)
    labels = bench_data.label_paths(data.codec)
    size = config.working_size
    return {
        "png": measure_codec_limit(images, size, "png", config.png_compression, labels=labels),
        "png_fast": measure_codec_limit(images, size, "png", config.fast_png_compression),
        "jpg": measure_codec_limit(images, size, "jpg", jpeg_quality=config.jpeg_quality),
    }


def run_sweeps(
    config: SuiteConfig, models: SuiteModels, data: SuiteData, peak: PeakRss, threads: int, report: dict
) -> list[dict]:
    """Engine-only sweeps of both generators on every backend and of the pass-through on ONNX Runtime."""
    targets = []
    for model, batches, policy in (
        (models.compute, config.compute_sweep_batches, config.compute_policy),
        (models.codec, config.codec_sweep_batches, config.codec_policy),
    ):
        sizes = (config.working_size,)
        targets.append(SweepTarget(model.spec.name, ORT_CPU, model.onnx, sizes, batches, policy))
        targets.append(SweepTarget(model.spec.name, EAGER, model.checkpoint, sizes, batches, policy))
        if model.spec.name in models.engines:
            targets.append(
                SweepTarget(model.spec.name, TENSORRT, models.engines[model.spec.name], sizes, batches, policy)
            )
    targets.append(
        SweepTarget(
            "passthrough",
            ORT_CPU,
            models.passthrough,
            (config.working_size,),
            config.codec_sweep_batches,
            config.codec_policy,
        )
    )
    if config.full_sizes:
        for model in (models.compute, models.codec):
            for backend, artifact in ((ORT_CPU, model.onnx), (EAGER, model.checkpoint)):
                targets.append(
                    SweepTarget(
                        model.spec.name, backend, artifact, config.full_sizes, config.full_batches, config.full_policy
                    )
                )
    paths = bench_data.image_paths(data.codec)
    frames: dict[tuple[int, int], list[np.ndarray]] = {}

    def frames_for(size: tuple[int, int]) -> list[np.ndarray]:
        if size not in frames:
            frames[size] = sample_frames(size, 4, paths)
        return frames[size]

    def macs_for(target: SweepTarget):
        onnx = next(
            (a for a, entry in report["artifacts"].items() if entry["model"] == target.model and a.endswith(".onnx")),
            None,
        )
        return lambda size: report["artifacts"][onnx]["macs_per_image"][f"{size[0]}x{size[1]}"]

    rows = []
    for target in targets:
        reason = unavailable_reason(target.backend)
        if reason is not None:
            skip(report, target.backend, reason)
            continue
        echo(f"  sweep {target.model} on {target.backend}: batch {list(target.batch_sizes)}")
        rows += sweep(target, macs_for(target), frames_for, peak, threads)
    return rows


def compute_bound(
    config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path, peak: PeakRss, threads: int, report: dict
) -> dict:
    """Criterion A's runs, repeated and interleaved (the median run of each counts): ONNX Runtime engine-only on
    as many preloaded images as the job translates, then batch-translate, then the reference way. Measuring the
    engine right before each job puts a slow drift of a shared machine on both sides of the A2 ratio. Outputs
    of the last runs are compared."""
    model = models.compute
    images = bench_data.image_paths(data.compute)
    size, png, batch = config.working_size, config.png_compression, config.compute_batch
    batches = -(-len(images) // batch)
    same_work = RunPolicy(warmup=config.compute_policy.warmup, min_runs=batches, min_seconds=0.0, max_runs=batches)
    engine_target = SweepTarget(model.spec.name, ORT_CPU, model.onnx, (size,), (batch,), same_work)
    frames = sample_frames(size, batch, images)
    macs = report["artifacts"][str(model.onnx)]["macs_per_image"]
    engine, ours, reference = [], [], []
    for repeat in range(config.compute_repeats):
        engine += sweep(engine_target, lambda s: macs[f"{s[0]}x{s[1]}"], lambda _: frames, peak, threads)
        ours.append(
            run_batch_translate(model.onnx, data.compute, runs / "ours", size, batch, peak, png_compression=png)
        )
        reference.append(reference_way(model.checkpoint, images, runs / "reference", size, png, peak, threads))
        echo(
            f"  repeat {repeat + 1}/{config.compute_repeats} (images/s): engine-only "
            f"{engine[-1]['images_per_second']:.3f}, batch-translate {ours[-1]['images_per_second']:.3f}, "
            f"reference {reference[-1]['images_per_second']:.3f}"
        )
    stems = [path.stem for path in images]
    return {
        "model": model.spec.name,
        "input_size": list(config.gta5_size),
        "working_size": list(config.working_size),
        "repeats": config.compute_repeats,
        "engine_only_runs": engine,
        "engine_only": median_run(engine),
        "batch_translate_runs": ours,
        "batch_translate": median_run(ours),
        "reference_runs": reference,
        "reference": median_run(reference),
        "output_comparison": compare_outputs(runs / "ours" / "images", runs / "reference", stems),
    }


def codec_bound(
    config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path, peak: PeakRss, threads: int, report: dict
) -> dict:
    """Criterion B's runs, repeated and interleaved (median run counts): the codec limit right before each
    pass-through run (as for A2, a slow drift of a shared machine then falls on both sides of B1), then the faster
    formats, once each."""
    model = models.codec
    images = bench_data.image_paths(data.codec)
    labels = bench_data.label_paths(data.codec)
    size, batch, png = config.working_size, config.codec_batch, config.png_compression
    limits, passthrough, ours, reference = [], [], [], []
    for repeat in range(config.codec_repeats):
        limits.append(measure_codec_limit(images, size, "png", png, labels=labels))
        passthrough.append(
            run_batch_translate(
                models.passthrough, data.codec, runs / "passthrough", size, batch, peak, png_compression=png
            )
        )
        ours.append(run_batch_translate(model.onnx, data.codec, runs / "ours", size, batch, peak, png_compression=png))
        reference.append(reference_way(model.checkpoint, images, runs / "reference", size, png, peak, threads))
        rates = ", ".join(
            f"{name} {runs_[-1]['images_per_second']:.2f}"
            for name, runs_ in (("pass-through", passthrough), (model.spec.name, ours), ("reference", reference))
        )
        rates = f"codec limit {limits[-1]['limit_images_per_second']:.2f}, {rates}"
        echo(f"  repeat {repeat + 1}/{config.codec_repeats} (images/s): {rates}")
    eager = eager_batched(model.checkpoint, images, runs / "eager_batched", size, png, batch, peak, threads)
    stems = [path.stem for path in images]
    formats = {}
    for label, fmt, level in (("png_fast", "png", config.fast_png_compression), ("jpg", "jpg", png)):
        formats[label] = {
            "passthrough": run_batch_translate(
                models.passthrough,
                data.codec,
                runs / f"passthrough_{label}",
                size,
                batch,
                peak,
                fmt,
                level,
                config.jpeg_quality,
            ),
            model.spec.name: run_batch_translate(
                model.onnx, data.codec, runs / f"ours_{label}", size, batch, peak, fmt, level, config.jpeg_quality
            ),
        }
    return {
        "model": model.spec.name,
        "input_size": list(config.gta5_size),
        "working_size": list(config.working_size),
        "images": len(images),
        "repeats": config.codec_repeats,
        "codec_limit_runs": limits,
        "codec_limit": median_run(limits, key="limit_images_per_second"),
        "passthrough_runs": passthrough,
        "passthrough": median_run(passthrough),
        "batch_translate_runs": ours,
        "batch_translate": median_run(ours),
        "reference_runs": reference,
        "reference": median_run(reference),
        "eager_batched": eager,
        "output_comparison": compare_outputs(runs / "ours" / "images", runs / "reference", stems),
        "formats": formats,
    }


def evaluation(config: SuiteConfig, data: SuiteData, runs: Path, report: dict) -> dict | None:
    """Criterion C: the same prediction files scored by evaluate-seg and by the official evaluator."""
    reason = official_unavailable_reason()
    if reason is not None:
        skip(report, "official Cityscapes evaluator", reason)
        return None
    predictions = runs / "predictions"
    count = make_predictions(data.cityscapes, "val", predictions)
    ours = run_ours(data.cityscapes, predictions, runs / "ours")
    echo(f"  evaluate-seg: {ours['seconds']:.1f} s")
    official = run_official(data.cityscapes, predictions, runs / "official")
    echo(f"  official evaluator: {official['seconds']:.1f} s (Cython fast path: {official['cython_fast_path']})")
    pixel_only = run_official(data.cityscapes, predictions, runs / "official_pixel_only", instance_level=False)
    echo(f"  official evaluator, pixel-level scores only: {pixel_only['seconds']:.1f} s")
    return {
        "images": count,
        "size": list(config.cityscapes_size),
        "ours": ours,
        "official": official,
        "official_pixel_only": pixel_only,
        "comparison": compare_iou(official["class_iou"], ours["class_iou"]),
        "comparison_pixel_only": compare_iou(pixel_only["class_iou"], ours["class_iou"]),
        "speedup_vs_pixel_only": pixel_only["seconds"] / ours["seconds"],
    }


def memory(config: SuiteConfig, models: SuiteModels, data: SuiteData, runs: Path) -> dict:
    """Criterion D: batch-translate's peak RSS on the small and the large dataset (child processes)."""
    small = peak_rss_run(models.passthrough_memory, data.memory_small, runs / "small", config.memory_batch)
    large = peak_rss_run(models.passthrough_memory, data.memory_large, runs / "large", config.memory_batch)
    for run in (small, large):
        echo(f"  peak RSS with {run['images']} images: {run['peak_rss_mb']:.0f} MiB")
    return {"size": list(config.memory_size), "batch_size": config.memory_batch, "small": small, "large": large}


def criteria(report: dict) -> list[dict]:
    """Every criterion of the suite from the figures already in `report`."""
    compute = report["compute_bound"]
    codec = report["codec_bound"]
    engine = compute["engine_only"]
    found = [
        ratio_criterion(
            "A1",
            "compute-bound: ONNX Runtime generator GFLOP/s vs float32 MatMul GFLOP/s",
            engine["gflops"],
            report["matmul"]["gflops"],
            "generator GFLOP/s (engine only)",
            "MatMul GFLOP/s",
        ),
        ratio_criterion(
            "A2",
            "compute-bound: end-to-end batch-translate vs engine-only images/s",
            compute["batch_translate"]["images_per_second"],
            engine["images_per_second"],
            "end-to-end images/s",
            "engine-only images/s",
        ),
        ratio_criterion(
            "A3",
            "compute-bound: end-to-end batch-translate vs the reference script",
            compute["batch_translate"]["images_per_second"],
            compute["reference"]["images_per_second"],
            "batch-translate images/s",
            "reference images/s",
        ),
        bound_criterion(
            "A4",
            "compute-bound: outputs of both ways within 1 grey level",
            compute["output_comparison"]["max_abs_diff"],
            "max |difference| (grey levels)",
        ),
        ratio_criterion(
            "B1",
            "codec-bound: pass-through end-to-end vs the codec limit",
            codec["passthrough"]["images_per_second"],
            codec["codec_limit"]["limit_images_per_second"],
            "pass-through images/s",
            "codec limit images/s",
        ),
        ratio_criterion(
            "B2",
            f"codec-bound: {codec['model']} end-to-end vs the reference script",
            codec["batch_translate"]["images_per_second"],
            codec["reference"]["images_per_second"],
            "batch-translate images/s",
            "reference images/s",
        ),
    ]
    evaluation = report.get("evaluation")
    if evaluation is not None:
        found += [
            ratio_criterion(
                "C1",
                "evaluate-seg --predictions vs the official evaluator (speed-up)",
                evaluation["official"]["seconds"],
                evaluation["ours"]["seconds"],
                "official seconds",
                "evaluate-seg seconds",
            ),
            bound_criterion(
                "C2",
                "evaluate-seg per-class IoU identical to the official evaluator's",
                evaluation["comparison"]["max_abs_diff"],
                "max |IoU difference|",
            ),
        ]
    mem = report["memory"]
    found.append(
        ratio_criterion(
            "D1",
            f"batch-translate peak RSS does not grow: {mem['large']['images']} vs {mem['small']['images']} images",
            mem["large"]["peak_rss_mb"],
            mem["small"]["peak_rss_mb"],
            "peak RSS (large) MiB",
            "peak RSS (small) MiB",
        )
    )
    return found
