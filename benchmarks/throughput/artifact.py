"""`bench-throughput ARTIFACT`: the engine-only sweep of one .onnx, .engine or checkpoint, with the same-run
MatMul rate for scale, and optionally an end-to-end batch-translate run on a dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

from uda_trt.benchmarks.throughput.backends import (
    EAGER,
    TENSORRT,
    backend_for_artifact,
    set_torch_threads,
    unavailable_reason,
)
from uda_trt.benchmarks.throughput.endtoend import run_batch_translate
from uda_trt.benchmarks.throughput.matmul import measure_matmul
from uda_trt.benchmarks.throughput.measure import PeakRss, RunPolicy
from uda_trt.benchmarks.throughput.models import macs_per_image
from uda_trt.benchmarks.throughput.records import MatMulRate, SweepRow, TranslateRun, describe_machine, size_label
from uda_trt.benchmarks.throughput.report import write_report
from uda_trt.benchmarks.throughput.results import ArtifactConfig, ArtifactEntry, ArtifactResult, Threads
from uda_trt.benchmarks.throughput.suite import echo
from uda_trt.benchmarks.throughput.sweep import SweepTarget, sample_frames, sweep
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.sidecar import file_sha256, load_sidecar

MATMUL_SHAPE = (2048, 2048, 2048)


def _onnx_for(artifact: Path, backend: str, size: tuple[int, int], work: Path) -> Path | None:
    """An ONNX graph of the same model, for counting MACs: the file itself, the engine's sibling, or an export."""
    if backend == EAGER:
        import onnx

        from uda_trt.export.graphs import TranslatorGraph
        from uda_trt.export.onnx_export import export_graph
        from uda_trt.train.checkpoints import build_translator, require_model_checkpoint

        info = require_model_checkpoint(artifact)
        if info.kind != "translator":
            raise UserError(f"{artifact}: a {info.kind} checkpoint; bench-throughput sweeps translators")
        graph = TranslatorGraph(build_translator(info.architecture, info.args, info.state_dict))
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"{artifact.stem}.macs.onnx"
        onnx.save(export_graph(graph, "translated", (64, 64)), path)
        return path
    if backend == TENSORRT:
        entry = load_sidecar(artifact, verify=False).artifacts.get("onnx")
        sibling = artifact.with_name(entry["file"]) if entry else None
        return sibling if sibling is not None and sibling.is_file() else None
    return artifact


def run_artifact(
    artifact: Path,
    output: Path,
    sizes: tuple[tuple[int, int], ...] | None,
    batch_sizes: tuple[int, ...],
    policy: RunPolicy,
    dataset: Path | None = None,
    png_compression: int = 6,
) -> ArtifactResult:
    """Sweep `artifact` over sizes x batch sizes; with `dataset` (GTA5 layout) also batch-translate it once."""
    artifact = Path(artifact)
    if not artifact.is_file():
        raise UserError(f"{artifact}: no such file")
    try:
        backend = backend_for_artifact(artifact)
    except ValueError as error:
        raise UserError(str(error)) from None
    reason = unavailable_reason(backend)
    if reason is not None:
        raise UserError(f"{artifact}: the {backend} backend cannot run here: {reason}")
    if backend != EAGER:
        sidecar = load_sidecar(artifact)
        if sidecar.task != "translate":
            raise UserError(f"{artifact}: a {sidecar.task} artifact; bench-throughput sweeps translators")
        if not sizes and sidecar.working_size:
            sizes = (tuple(sidecar.working_size),)
    if not sizes:
        raise UserError("--sizes: give at least one WIDTHxHEIGHT (the artifact records no working size)")
    if dataset is not None and backend == EAGER:
        raise UserError("--dataset: end-to-end runs need a .onnx or .engine (batch-translate runs no checkpoints)")
    output = Path(output)
    work = output / "work"
    shutil.rmtree(work, ignore_errors=True)
    threads = default_workers()
    set_torch_threads(threads)
    peak = PeakRss()
    timer = StageTimer(3 if dataset else 2, announce=echo)
    with timer.stage("float32 MatMul rate (ONNX Runtime)"):
        matmul = MatMulRate(**measure_matmul(*MATMUL_SHAPE, RunPolicy(1, 5, 2.0, 50), threads))
    graph = _onnx_for(artifact, backend, sizes[0], work)
    macs = {size: macs_per_image(graph, size) if graph else None for size in sizes}
    entry = ArtifactEntry(artifact.name, file_sha256(artifact), {size_label(size): m for size, m in macs.items()})
    target = SweepTarget(artifact.name, backend, artifact, tuple(sizes), tuple(batch_sizes), policy)
    with timer.stage(f"engine-only sweep on {backend}"):
        measured = sweep(target, macs.__getitem__, lambda size: sample_frames(size, 4), peak, threads)
        rows = [SweepRow(**row) for row in measured]
    end_to_end = None
    if dataset is not None:
        with timer.stage("end to end (batch-translate)"):
            run = run_batch_translate(
                artifact,
                dataset,
                work / "batch_translate",
                sizes[0],
                max(batch_sizes),
                peak,
                png_compression=png_compression,
                backend=backend,
                layout="auto",
            )
            end_to_end = {"batch-translate": TranslateRun(**run)}
    result = ArtifactResult(
        suite=f"artifact {artifact.name}",
        config=ArtifactConfig(artifact, backend, tuple(sizes), tuple(batch_sizes), policy, dataset, png_compression),
        threads=Threads(onnxruntime_intra_op=threads, onnxruntime_inter_op=1, torch=threads),
        skipped=[],
        matmul=matmul,
        artifacts={str(artifact): entry},
        sweeps=rows,
        end_to_end=end_to_end,
        stage_seconds=dict(timer.seconds),
        wall_seconds=timer.total(),
        machine=describe_machine(),
    )
    for row in rows:
        echo(
            f"{row.size[0]}x{row.size[1]} batch {row.batch_size}: {row.images_per_second:.3f} images/s, "
            f"p50 {row.latency_ms['p50']:.1f} ms"
        )
    write_report(output, result)
    return result
