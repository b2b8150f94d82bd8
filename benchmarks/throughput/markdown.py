"""report.md: one renderer per section, each taking the typed result of its section and returning its lines.

`markdown` joins the sections of a suite or of one artifact's sweep; it adds nothing that report.json lacks.
"""

from __future__ import annotations

import math

from uda_trt.benchmarks.throughput.backends import EAGER, FDA, FDA_BETA, ORT_CPU, TENSORRT
from uda_trt.benchmarks.throughput.criteria import Criterion, RatioCriterion
from uda_trt.benchmarks.throughput.records import (
    EndToEndRun,
    Machine,
    MatMulRate,
    ScriptRun,
    SweepRow,
    TranslateRun,
)
from uda_trt.benchmarks.throughput.results import (
    ArtifactResult,
    CodecBound,
    CodecLimits,
    ComputeBound,
    Evaluation,
    Int8Compute,
    Memory,
    RayLocal,
    Skipped,
    SuiteResult,
    Threads,
)


def markdown(result: SuiteResult | ArtifactResult, figures: list[str]) -> str:
    """report.md of a suite or of one artifact's sweep; `figures`: the figure files written beside it."""
    if isinstance(result, ArtifactResult):
        sections = [
            header(result.suite, result.machine, result.threads, None),
            skipped_section(result.skipped),
            matmul_section(result.matmul),
            end_to_end_section(result.end_to_end or {}),
            sweeps_section(result.sweeps),
            figures_section(figures),
            timing_section(result.stage_seconds, result.wall_seconds),
        ]
    else:
        sections = [
            header(result.suite, result.machine, result.threads, result.threads.codec_workers),
            skipped_section(result.skipped),
            criteria_section(result.criteria, result.config.judge_criteria),
            matmul_section(result.matmul),
            compute_section(result.compute_bound, result.sweeps, result.skipped),
            int8_section(result.int8, result.compute_bound),
            codec_section(result.codec_bound, result.codec, result.sweeps, result.skipped),
            ray_section(result.ray_local),
            evaluation_section(result.evaluation),
            memory_section(result.memory),
            sweeps_section(result.sweeps),
            figures_section(figures),
            timing_section(result.stage_seconds, result.wall_seconds),
        ]
    return "\n".join(line for section in sections for line in section)


# ------------------------------------------------------------------------------------------------- formatting


def _known(value: float | None) -> float | None:
    """None for a missing or non-finite figure (what report.json holds for it)."""
    return value if value is not None and math.isfinite(value) else None


def _num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _kib(run: EndToEndRun) -> str:
    """Mean output file size of a run."""
    return _num(run.output_kib_per_image, 0)


def _stages_line(label: str, run: EndToEndRun) -> str:
    stages = ", ".join(f"{k} {_num(v / run.images, 3)}" for k, v in run.stage_seconds.items())
    return f"- {label}: {_num(run.wall_seconds / run.images, 3)} s/image wall; per image by stage (s): {stages}"


# ---------------------------------------------------------------------------------------------------- sections


def header(title: str, machine: Machine, threads: Threads, codec_workers: int | None) -> list[str]:
    """Title, machine and thread counts, and what every ratio below is."""
    return [
        f"# Throughput benchmark: {title}",
        "",
        f"Machine: {machine.platform}, {machine.processor}, {machine.cpu_count} CPUs "
        f"({_num(codec_workers)} usable); ONNX Runtime intra-op threads "
        f"{threads.onnxruntime_intra_op}, PyTorch threads {threads.torch}. "
        "Versions, artifact hashes and the resolved config are in report.json.",
        "",
        "Every ratio below has both operands measured in this run, on the same files, with the same thread "
        "settings. Timings on a shared machine are noisy; the ratios are what the criteria judge.",
        "",
    ]


def skipped_section(skipped: list[Skipped]) -> list[str]:
    """One line per part of the run that could not run here."""
    lines = [f"Skipped {entry.what}: {entry.reason}." for entry in skipped]
    return [*lines, ""] if lines else []


NOT_JUDGED = "not judged (--quick)"


def criteria_section(criteria: list[Criterion], judged: bool = True) -> list[str]:
    """Each criterion with its operands, threshold and verdict; without `judged` (the quick suite, whose tiny sizes
    only check the harness) the verdict column says so instead of pass or FAIL."""
    if not criteria:
        return []
    lines = ["## Criteria", ""]
    if not judged:
        lines += [
            "The quick suite checks that the harness runs end to end: its sizes are too small for the ratios to "
            "mean anything, so no criterion is judged. `make bench` (--suite standard) judges them.",
            "",
        ]
    lines += ["| id | criterion | measured | threshold | result |", "|---|---|---|---|---|"]
    for c in criteria:
        if isinstance(c, RatioCriterion):
            measured = (
                f"{_num(c.value, 3)} ({c.numerator_label} {_num(c.numerator, 3)} / "
                f"{c.denominator_label} {_num(c.denominator, 3)})"
            )
        else:
            measured = f"{_num(c.value, 6)} ({c.value_label})"
        verdict = ("**pass**" if c.passed else "**FAIL**") if judged else NOT_JUDGED
        lines.append(f"| {c.id} | {c.name} | {measured} | {c.op} {c.threshold} | {verdict} |")
    return [*lines, ""]


def matmul_section(matmul: MatMulRate) -> list[str]:
    """The machine's float32 MatMul rate, the yardstick of A1."""
    shape = matmul.shape
    return [
        f"Float32 MatMul on ONNX Runtime ({shape['m']}x{shape['k']} @ {shape['k']}x{shape['n']}, "
        f"{matmul.intra_op_threads} threads, {matmul.runs} runs): {_num(matmul.gflops, 1)} GFLOP/s.",
        "",
    ]


def compute_section(compute: ComputeBound, sweeps: list[SweepRow], skipped: list[Skipped]) -> list[str]:
    """Criterion A's ways side by side, the engine-only figure A1 and A2 use, the output comparison, the stages."""
    comparison = compute.output_comparison
    ours = compute.batch_translate
    return [
        f"## Compute-bound: {compute.model} at {compute.working_size[0]}x{compute.working_size[1]}",
        "",
        f"{ours.images} synthetic GTA5-layout images of {compute.input_size[0]}x{compute.input_size[1]}, written as "
        f"PNG level {ours.png_compression} by every way; median of {compute.repeats} interleaved runs per way.",
        "",
        *_side_by_side(compute.model, compute.working_size, ours, compute.reference, None, sweeps, skipped),
        "",
        *_interleaved_engine_line(compute),
        f"Outputs of batch-translate and the reference script: max difference {comparison.max_abs_diff} grey "
        f"levels, {_num(100 * comparison.fraction_within_1, 3)} % of values within 1 (the reference truncates "
        "to uint8, the exported graph rounds).",
        "",
        f"The first {compute.small_job.images} images alone (A5, A6), batch-translate with its default options "
        f"(batch {compute.small_job.batch_size}): {_num(compute.small_job.images_per_second, 3)} images/s "
        f"({_num(compute.small_job.wall_seconds, 1)} s), the reference script "
        f"{_num(compute.small_reference.images_per_second, 3)} images/s "
        f"({_num(compute.small_reference.wall_seconds, 1)} s); median of {compute.repeats} runs each.",
        "",
        _stages_line("reference script", compute.reference),
        _stages_line("batch-translate", ours),
        "",
    ]


def _side_by_side(
    model: str,
    working_size: tuple[int, int],
    ours: TranslateRun,
    reference: ScriptRun,
    eager: ScriptRun | None,
    sweeps: list[SweepRow],
    skipped: list[Skipped],
) -> list[str]:
    """Every way of one section: its best engine-only rate beside its end-to-end rate, file size and memory."""

    def engine(backend: str, batch: int | None = None) -> str:
        rows = [r for r in sweeps if r.model == model and r.backend == backend and tuple(r.size) == working_size]
        if batch is not None:
            rows = [r for r in rows if r.batch_size == batch]
        if not rows:
            return "n/a"
        best = max(rows, key=lambda r: _known(r.images_per_second) or 0)
        return f"{_num(best.images_per_second, 3)} (batch {best.batch_size})"

    lines = [
        "| way | engine-only images/s | end-to-end images/s | KiB per output image | peak RSS MiB |",
        "|---|---|---|---|---|",
        f"| reference script (Pillow decode, eager, batch 1, serial, Pillow PNG) | {engine(EAGER, 1)} | "
        f"{_num(reference.images_per_second, 3)} | {_kib(reference)} | {_num(reference.peak_rss_mb, 0)} |",
        f"| PyTorch eager batched | {engine(EAGER)} | "
        f"{_num(eager.images_per_second, 3) if eager else 'not run (engine-only only)'} | "
        f"{_kib(eager) if eager else 'n/a'} | {_num(eager.peak_rss_mb, 0) if eager else 'n/a'} |",
        f"| ONNX Runtime CPU (batch-translate, batch {ours.batch_size}) | {engine(ORT_CPU)} | "
        f"{_num(ours.images_per_second, 3)} | {_kib(ours)} | {_num(ours.peak_rss_mb, 0)} |",
    ]
    tensorrt_skip = next((entry for entry in skipped if entry.what == TENSORRT), None)
    if tensorrt_skip:
        lines.append(f"| TensorRT | skipped: {tensorrt_skip.reason} | | | |")
    else:
        lines.append(f"| TensorRT (engine only) | {engine(TENSORRT)} | not run | | |")
    return lines


def _interleaved_engine_line(compute: ComputeBound) -> list[str]:
    """The engine-only figure A1 and A2 use, with the runs its median comes from."""
    engine = compute.engine_only
    rates = ", ".join(_num(run.images_per_second, 3) for run in compute.engine_only_runs)
    return [
        f"ONNX Runtime engine-only for A1 and A2: {engine.images} preloaded images at batch "
        f"{engine.batch_size} streamed as batch-translate streams them, timed right before each batch-translate "
        f"run ({rates} images/s); median {_num(engine.images_per_second, 3)} images/s, "
        f"{_num(engine.gflops, 1)} GFLOP/s.",
        "",
    ]


def int8_section(int8: Int8Compute, compute: ComputeBound) -> list[str]:
    """Criterion E: INT8 beside FP32 for the compute-bound model, engine-only and end to end, the quality figures of
    the artifact timed (its gate against the FP32 ONNX, its PNGs against FP32's) and how it was made."""
    artifact, gate = int8.artifact, int8.artifact.gate
    fp32_job, int8_job = compute.batch_translate, int8.batch_translate
    comparison = int8.output_comparison
    verdict = "**passed**" if gate.passed else "**failed**"
    psnr = "identical" if gate.psnr_db is None else f"{_num(gate.psnr_db, 2)} dB"
    speed = ", ".join(
        f"`{trial.node}` (its kernels {_num(min(trial.quantized_kernel_ms), 1)} ms -> "
        f"{_num(min(trial.float_kernel_ms), 1)} ms, {_num(100 * trial.saving, 1)} % of the whole model's "
        f"{_num(min(trial.quantized_seconds), 3)} s)"
        for trial in artifact.float_for_speed
    )
    quality_float = ", ".join(f"`{node}`" for node in artifact.float_nodes) or "none (no sensitivity pass)"

    def rates(runs: list) -> str:
        return ", ".join(_num(run.images_per_second, 3) for run in runs)

    return [
        f"## INT8 against FP32: {int8.model} at {int8.working_size[0]}x{int8.working_size[1]} (issue 21)",
        "",
        f"The FP32 ONNX quantized in this run by export-trt's INT8 step ({_num(artifact.seconds, 1)} s): QDQ, "
        f"symmetric int8 activations, per-channel int8 weights, {artifact.method} calibration on "
        f"{artifact.calibration_images} of the codec job's images. A fixed method keeps the run short (`auto` "
        "calibrates three methods on up to 32 images each) and changes the ranges, not the speed. Its gates are "
        "reported, not required: the artifact is timed whatever its quality, and no sensitivity pass ran. The "
        "generator has random weights, as everywhere in this suite; export-trt's own gates judge a trained one.",
        "",
        "| way | engine-only images/s | end-to-end images/s | KiB per output image | peak RSS MiB |",
        "|---|---|---|---|---|",
        f"| FP32 ONNX (ONNX Runtime CPU) | {_num(compute.engine_only.images_per_second, 3)} | "
        f"{_num(fp32_job.images_per_second, 3)} | {_kib(fp32_job)} | {_num(fp32_job.peak_rss_mb, 0)} |",
        f"| INT8 ONNX (ONNX Runtime CPU) | {_num(int8.engine_only.images_per_second, 3)} | "
        f"{_num(int8_job.images_per_second, 3)} | {_kib(int8_job)} | {_num(int8_job.peak_rss_mb, 0)} |",
        f"| INT8 / FP32 | {_num(int8.engine_only_vs_fp32, 2)}x (E1) | {_num(int8.end_to_end_vs_fp32, 2)}x (E2) | | |",
        "",
        f"Engine-only: {int8.engine_only.images} preloaded images at batch {int8.engine_only.batch_size}, streamed "
        f"as in A2, the INT8 stream right before the FP32 one in each repeat (INT8 {rates(int8.engine_only_runs)}; "
        f"FP32 {rates(compute.engine_only_runs)} images/s). End to end: the compute-bound job, INT8 right after "
        f"FP32 in each repeat (INT8 {rates(int8.batch_translate_runs)}; FP32 {rates(compute.batch_translate_runs)} "
        f"images/s). Medians of {int8.repeats}.",
        "",
        f"Quality of the timed artifact: against the FP32 ONNX on {gate.images} held-out images (never calibrated "
        f"on), PSNR {psnr} (gate >= {_num(gate.required_psnr_db, 1)} dB), {_num(100 * gate.fraction, 3)} % of "
        f"pixels within {gate.tolerance} grey levels (gate >= {_num(100 * gate.required, 1)} %), max difference "
        f"{gate.max_abs_diff}: {verdict}. The timed job's PNGs, INT8 against FP32: max difference "
        f"{comparison.max_abs_diff} grey levels, mean {_num(comparison.mean_abs_diff, 2)}, PSNR "
        f"{'identical' if comparison.psnr_db is None else _num(comparison.psnr_db, 2) + ' dB'}, "
        f"{comparison.images} images.",
        "",
        f"Layers: {len(artifact.quantized_nodes)} quantized. Kept float for speed (the speed pass profiled "
        f"{artifact.speed_suspects} suspect(s) quantized and float, one image, the threads of one of the runner's "
        f"runs): {speed or 'none'}. Kept float for quality: {quality_float}.",
        "",
        _stages_line("batch-translate FP32", fp32_job),
        _stages_line("batch-translate INT8", int8_job),
        "",
    ]


def codec_section(codec: CodecBound, limits: CodecLimits, sweeps: list[SweepRow], skipped: list[Skipped]) -> list[str]:
    """Criterion B: the codec limit, every way side by side with the pass-through, the stages, the other formats."""
    limit = codec.codec_limit
    per = limit.per_image_seconds
    label_s = _known(limit.label_seconds_per_image)
    passthrough = codec.passthrough
    return [
        f"## Codec-bound: pass-through and {codec.model} at {codec.working_size[0]}x{codec.working_size[1]}",
        "",
        f"{codec.images} images of {codec.input_size[0]}x{codec.input_size[1]}, median of "
        f"{codec.repeats} interleaved runs per way. Codec limit (PNG level {limit.png_compression}, "
        f"measured right before each pass-through run, median of {len(codec.codec_limit_runs)}): "
        f"decode {_num(per['decode'], 4)} + resize {_num(per['resize'], 4)} + encode {_num(per['encode'], 4)} "
        f"= {_num(limit.seconds_per_image, 4)} s per image on one thread, x {limit.workers} workers = "
        f"{_num(limit.limit_images_per_second, 2)} images/s."
        + (
            f" Carrying each label over at the working size (done by batch-translate, left out of the limit) "
            f"costs {_num(label_s, 4)} s per image more."
            if label_s
            else ""
        ),
        "",
        *_side_by_side(
            codec.model,
            codec.working_size,
            codec.batch_translate,
            codec.reference,
            codec.eager_batched,
            sweeps,
            skipped,
        ),
        f"| pass-through (batch-translate) | {_num(_passthrough_engine(sweeps), 1)} | "
        f"{_num(passthrough.images_per_second, 3)} | {_kib(passthrough)} | {_num(passthrough.peak_rss_mb, 0)} |",
        "",
        _stages_line("reference script", codec.reference),
        _stages_line("eager batched", codec.eager_batched),
        _stages_line("batch-translate", codec.batch_translate),
        _stages_line("pass-through", passthrough),
        "",
        "### Faster output formats (reported separately, never folded into a criterion)",
        "",
        *_formats_table(codec, limits),
        "",
    ]


def _passthrough_engine(sweeps: list[SweepRow]) -> float | None:
    rates = [_known(r.images_per_second) for r in sweeps if r.model == "passthrough"]
    return max((rate for rate in rates if rate is not None), default=None)


def _formats_table(codec: CodecBound, limits: CodecLimits) -> list[str]:
    model = codec.model
    headline = f"PNG level {limits.png.png_compression}"
    png_fast, jpg = codec.formats["png_fast"], codec.formats["jpg"]
    rows = [
        # B1's own limit (measured beside the pass-through runs) for the headline format
        (headline, codec.codec_limit, codec.passthrough, codec.batch_translate),
        (f"PNG level {limits.png_fast.png_compression}", limits.png_fast, png_fast["passthrough"], png_fast[model]),
        (f"JPEG quality {limits.jpg.jpeg_quality}", limits.jpg, jpg["passthrough"], jpg[model]),
    ]
    lines = [
        f"| output format | codec limit images/s | pass-through images/s | {model} images/s | {model} vs {headline} "
        f"| {model} KiB per image |",
        "|---|---|---|---|---|---|",
    ]
    base = _known(codec.batch_translate.images_per_second)
    for label, limit, passthrough, ours in rows:
        effect = ours.images_per_second / base if base else None
        lines.append(
            f"| {label} | {_num(limit.limit_images_per_second, 2)} | "
            f"{_num(passthrough.images_per_second, 2)} | {_num(ours.images_per_second, 2)} | {_num(effect, 2)}x "
            f"| {_kib(ours)} |"
        )
    return lines


def ray_section(ray: RayLocal | None) -> list[str]:
    """Ray local against one process: both rates, their ratio, Ray's start-up cost, whether the files are identical
    (none if skipped). Figures, not criteria."""
    if ray is None:
        return []
    single, on_ray, cluster = ray.single_process, ray.ray, ray.cluster
    cpus = _num(cluster.get("cpus"), 0)
    comparison = ray.output_comparison
    identical = "identical" if comparison.identical else f"**not identical** ({len(comparison.differing)} differ)"
    overheads = ", ".join(_num(seconds, 1) for seconds in ray.startup_overhead_runs)
    small_job = (
        "on the whole job (the quick suite's)"
        if ray.small_job_images == ray.images
        else f"on the first {ray.small_job_images} images alone (one batch)"
    )
    return [
        f"## Ray local ({cpus} CPUs) against one process",
        "",
        f"The codec-bound job ({ray.images} images, {ray.model} at {ray.working_size[0]}x{ray.working_size[1]}, "
        f"batch {ray.batch_size}, PNG level {single.png_compression}) as `batch-translate` runs it in one process "
        f"and with `--ray local` ({cluster.get('actors')} runner actor(s); the wall time includes starting and "
        f"stopping the cluster), median of {ray.repeats} interleaved runs each. A figure, not a criterion.",
        "",
        "| way | end-to-end images/s | wall s | vs one process |",
        "|---|---|---|---|",
        f"| one process | {_num(single.images_per_second, 3)} | {_num(single.wall_seconds, 2)} | 1.00x |",
        f"| Ray local | {_num(on_ray.images_per_second, 3)} | {_num(on_ray.wall_seconds, 2)} | "
        f"{_num(ray.ray_vs_single_process, 3)}x |",
        "",
        f"Ray's fixed start-up cost (local cluster and actor start, shutdown): {small_job}, Ray took "
        f"{_num(ray.startup_overhead_seconds, 1)} s longer than one process "
        f"(median; per repeat: {overheads} s). Outputs byte for byte: {identical}, {comparison.files} files "
        "compared.",
        "",
        f"On {cpus} cores no speed-up is expected: one process already keeps every core busy, so this figure is "
        "Ray's overhead on this machine, not a scaling result; Ray pays off with more machines or GPUs.",
        "",
    ]


def evaluation_section(evaluation: Evaluation | None) -> list[str]:
    """Criterion C: both evaluators' times and memory, and whether their per-class IoU agree (none if skipped)."""
    if evaluation is None:
        return []
    official, ours = evaluation.official, evaluation.ours
    return [
        "## evaluate-seg vs the official Cityscapes evaluator",
        "",
        f"{evaluation.images} Cityscapes-layout val ground truths of {evaluation.size[0]}x"
        f"{evaluation.size[1]}, with perturbed copies as predictions (label IDs); every evaluator runs as a "
        "command-line process, timed from start to exit.",
        "",
        f"- official (`{official.command}`; Cython fast path compiled: {official.cython_fast_path}; "
        "instance-level scores on, as by default, with np.in1d restored as np.isin for NumPy 2.4): "
        f"{_num(official.seconds, 2)} s, peak RSS {_num(official.peak_rss_mb, 0)} MiB",
        f"- official, pixel-level scores only (what evaluate-seg computes): "
        f"{_num(evaluation.official_pixel_only.seconds, 2)} s; evaluate-seg is "
        f"{_num(evaluation.speedup_vs_pixel_only, 2)}x faster than that (informational, not a criterion)",
        f"- evaluate-seg: {_num(ours.seconds, 2)} s, peak RSS {_num(ours.peak_rss_mb, 0)} MiB",
        f"- per-class IoU identical: {evaluation.comparison.identical} (max difference "
        f"{_num(evaluation.comparison.max_abs_diff, 12)}); also to the pixel-only run: "
        f"{evaluation.comparison_pixel_only.identical}",
        f"- peer (`{evaluation.peer.command}`): {_num(evaluation.peer.seconds, 2)} s, peak RSS "
        f"{_num(evaluation.peer.peak_rss_mb, 0)} MiB; per-class IoU identical to evaluate-seg's: "
        f"{evaluation.comparison_peer.identical}",
        "",
    ]


def memory_section(memory: Memory) -> list[str]:
    """Criterion D: batch-translate's peak RSS on the small and on the large dataset."""
    small, large = memory.small, memory.large
    return [
        "## Peak memory against dataset size",
        "",
        "batch-translate (pass-through, "
        f"{memory.size[0]}x{memory.size[1]} images, batch {memory.batch_size}) as a child process; its max RSS:",
        "",
        f"- {small.images} images: {_num(small.peak_rss_mb, 1)} MiB ({_num(small.seconds, 1)} s)",
        f"- {large.images} images: {_num(large.peak_rss_mb, 1)} MiB ({_num(large.seconds, 1)} s)",
        "",
    ]


def end_to_end_section(end_to_end: dict[str, TranslateRun]) -> list[str]:
    """One artifact's end-to-end runs, each with its stages."""
    lines = []
    for label, run in end_to_end.items():
        lines += [
            f"## End to end: {label}",
            "",
            f"{run.images} images in {_num(run.wall_seconds, 2)} s: {_num(run.images_per_second, 3)} images/s.",
            "",
            _stages_line(label, run),
            "",
        ]
    return lines


def sweeps_section(sweeps: list[SweepRow]) -> list[str]:
    """Every engine-only sweep point, and how its figures are measured."""
    if not sweeps:
        return []
    lines = [
        "## Engine-only sweep",
        "",
        "Preloaded batches streamed through the runner as batch-translate streams them (ONNX Runtime on the CPU "
        "keeps two batches in flight, the threads split between them); images/s from the wall time of the "
        "stream; latency per batch, from handing it over to its output; GFLOP/s = 2 x MACs per image (counted "
        "on the ONNX graph) x images/s; peak RSS of this process during the point.",
        "",
        "| model | backend | size | batch | runs | images/s | p50 ms | p90 ms | p99 ms | GFLOP/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sweeps:
        lat = r.latency_ms
        lines.append(
            f"| {r.model} | {r.backend} | {r.size[0]}x{r.size[1]} | {r.batch_size} | {r.runs} | "
            f"{_num(r.images_per_second, 3)} | {_num(lat['p50'], 1)} | {_num(lat['p90'], 1)} | "
            f"{_num(lat['p99'], 1)} | {_num(r.gflops, 1)} | {_num(r.peak_rss_mb, 0)} |"
        )
    if any(r.backend == FDA for r in sweeps):
        lines += [
            "",
            f"{FDA} is not an engine: Fourier Domain Adaptation (batch-translate --fda, beta {FDA_BETA}) on the CPU "
            "with numpy, no network and no MACs (GFLOP/s n/a), the same stream and threads as batch-translate gives "
            "it; each image's donor amplitudes are computed once per donor and size and then cached, as in a job.",
        ]
    return [*lines, ""]


def figures_section(figures: list[str]) -> list[str]:
    """The figures written beside report.md, and how to read the stage breakdown."""
    if not figures:
        return []
    return [
        "## Figures",
        "",
        *(f"![{name}]({name})" for name in figures),
        "",
        "Stage breakdown: seconds per image in each stage, summed over threads (batch-translate decodes and "
        "encodes on several at once), against the wall time per image (black bar).",
        "",
    ]


def timing_section(stage_seconds: dict[str, float], wall_seconds: float) -> list[str]:
    """How long each stage of this benchmark run took."""
    if not stage_seconds:
        return []
    return [
        "## Time taken by this benchmark run",
        "",
        "| stage | seconds |",
        "|---|---|",
        *(f"| {name} | {_num(seconds, 1)} |" for name, seconds in stage_seconds.items()),
        f"| total | {_num(wall_seconds, 1)} |",
        "",
    ]
