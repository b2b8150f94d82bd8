"""`bench-throughput ARTIFACT`: the engine-only sweep of one .onnx, .engine or checkpoint, with the same-run
MatMul rate for scale, and optionally an end-to-end batch-translate run on a dataset."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.throughput.backends import EAGER, TENSORRT, backend_for_artifact, set_torch_threads, unavailable_reason
from benchmarks.throughput.endtoend import run_batch_translate
from benchmarks.throughput.matmul import measure_matmul
from benchmarks.throughput.measure import PeakRss, RunPolicy
from benchmarks.throughput.models import macs_per_image
from benchmarks.throughput.report import write_report
from benchmarks.throughput.suite import Progress, echo
from benchmarks.throughput.sweep import SweepTarget, sample_frames, sweep
from runtime.errors import UserError
from runtime.runners import default_threads
from runtime.sidecar import file_sha256, load_sidecar

MATMUL_SHAPE = (2048, 2048, 2048)


def _onnx_for(artifact: Path, backend: str, size: tuple[int, int], work: Path) -> Path | None:
    """An ONNX graph of the same model, for counting MACs: the file itself, the engine's sibling, or an export."""
    if backend == EAGER:
        import onnx

        from export.graphs import TranslatorGraph
        from export.onnx_export import export_graph
        from train.checkpoints import build_translator, require_model_checkpoint

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
) -> dict:
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
    threads = default_threads()
    set_torch_threads(threads)
    peak = PeakRss()
    progress = Progress(3 if dataset else 2)
    report: dict = {
        "schema_version": 1,
        "suite": f"artifact {artifact.name}",
        "config": {
            "artifact": str(artifact),
            "backend": backend,
            "sizes": [list(s) for s in sizes],
            "batch_sizes": list(batch_sizes),
            "policy": policy.__dict__,
            "dataset": str(dataset) if dataset else None,
            "png_compression": png_compression,
        },
        "threads": {"onnxruntime_intra_op": threads, "onnxruntime_inter_op": 1, "torch": threads},
        "skipped": [],
    }
    with progress.stage("float32 MatMul rate (ONNX Runtime)"):
        report["matmul"] = measure_matmul(*MATMUL_SHAPE, RunPolicy(1, 5, 2.0, 50), threads)
    graph = _onnx_for(artifact, backend, sizes[0], work)
    macs = {size: macs_per_image(graph, size) if graph else None for size in sizes}
    report["artifacts"] = {
        str(artifact): {
            "model": artifact.name,
            "sha256": file_sha256(artifact),
            "macs_per_image": {f"{w}x{h}": m for (w, h), m in macs.items()},
        }
    }
    target = SweepTarget(artifact.name, backend, artifact, tuple(sizes), tuple(batch_sizes), policy)
    with progress.stage(f"engine-only sweep on {backend}"):
        report["sweeps"] = sweep(target, macs.__getitem__, lambda size: sample_frames(size, 4), peak, threads)
    if dataset is not None:
        with progress.stage("end to end (batch-translate)"):
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
            report["end_to_end"] = {"batch-translate": run}
    report["stage_seconds"] = progress.seconds
    report["wall_seconds"] = time.perf_counter() - progress.started
    for row in report["sweeps"]:
        echo(
            f"{row['size'][0]}x{row['size'][1]} batch {row['batch_size']}: {row['images_per_second']:.3f} images/s, "
            f"p50 {row['latency_ms']['p50']:.1f} ms"
        )
    return write_report(output, report)
