"""bench-throughput's report folder: report.json (every figure), report.md (for people), PNG figures.

report.json holds every measured number with its operands, the machine and library versions, artifact hashes and
the resolved configs; report.md is derived from it and adds nothing. NaN and infinity are written as null.
"""

from __future__ import annotations

import json
import math
from importlib import metadata
from pathlib import Path

from benchmarks.report import machine_info
from benchmarks.throughput import plots
from runtime.imageio import atomic_write_bytes

FIGURES = {"throughput": "throughput_vs_batch.png", "stages": "stage_breakdown.png"}
# beyond benchmarks.report.machine_info's list: what the codecs, the official evaluator and the figures ran on
EXTRA_PACKAGES = ("pillow", "cityscapesScripts", "matplotlib", "tensorrt", "pycuda")


def _versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def json_safe(value):
    """NaN/inf -> None, numpy scalars -> Python, Paths and tuples -> plain JSON, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(output: Path, report: dict) -> dict:
    """Add machine facts and figures to `report`, then write report.json and report.md into `output`."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    report["machine"] = machine_info()
    report["machine"]["versions"].update(_versions(EXTRA_PACKAGES))
    report["figures"] = write_figures(output, report)
    safe = json_safe(report)
    text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(output / "report.json", text.encode())
    atomic_write_bytes(output / "report.md", markdown(safe).encode())
    return safe


def write_figures(output: Path, report: dict) -> list[str]:
    """The throughput-vs-batch plot (always) and the stage breakdown (when end-to-end runs exist)."""
    names = []
    if report.get("sweeps"):
        plots.throughput_vs_batch(report["sweeps"], output / FIGURES["throughput"])
        names.append(FIGURES["throughput"])
    panels = stage_panels(report)
    if panels:
        plots.stage_breakdown(panels, output / FIGURES["stages"])
        names.append(FIGURES["stages"])
    return names


def stage_panels(report: dict) -> dict[str, list[dict]]:
    """The end-to-end runs to draw, per section, labelled."""
    panels = {}
    compute = report.get("compute_bound")
    if compute:
        panels[f"compute-bound: {compute['model']}"] = [
            _entry("reference script", compute["reference"]),
            _entry("batch-translate", compute["batch_translate"]),
        ]
    codec = report.get("codec_bound")
    if codec:
        panels[f"codec-bound: {codec['model']} and pass-through"] = [
            _entry("reference script", codec["reference"]),
            _entry("eager batched", codec["eager_batched"]),
            _entry("batch-translate", codec["batch_translate"]),
            _entry("pass-through", codec["passthrough"]),
        ]
    for label, run in (report.get("end_to_end") or {}).items():
        panels.setdefault("end to end", []).append(_entry(label, run))
    return panels


def _entry(label: str, run: dict) -> dict:
    return {
        "label": label,
        "images": run["images"],
        "wall_seconds": run["wall_seconds"],
        "stage_seconds": run["stage_seconds"],
    }


# ------------------------------------------------------------------------------------------------------ markdown


def _num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _criteria_table(criteria: list[dict]) -> list[str]:
    lines = ["| id | criterion | measured | threshold | result |", "|---|---|---|---|---|"]
    for c in criteria:
        if c["kind"] == "ratio":
            measured = (
                f"{_num(c['value'], 3)} ({c['numerator_label']} {_num(c['numerator'], 3)} / "
                f"{c['denominator_label']} {_num(c['denominator'], 3)})"
            )
        else:
            measured = f"{_num(c['value'], 6)} ({c['value_label']})"
        verdict = "**pass**" if c["passed"] else "**FAIL**"
        lines.append(f"| {c['id']} | {c['name']} | {measured} | {c['op']} {c['threshold']} | {verdict} |")
    return lines


def _sweep_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | backend | size | batch | runs | images/s | p50 ms | p90 ms | p99 ms | GFLOP/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['size'][0]}x{r['size'][1]} | {r['batch_size']} | {r['runs']} | "
            f"{_num(r['images_per_second'], 3)} | {_num(lat['p50'], 1)} | {_num(lat['p90'], 1)} | "
            f"{_num(lat['p99'], 1)} | {_num(r['gflops'], 1)} | {_num(r['peak_rss_mb'], 0)} |"
        )
    return lines


def _side_by_side(section: dict, sweeps: list[dict], skipped: list[dict], eager_run: dict | None) -> list[str]:
    model = section["model"]
    size = tuple(section["working_size"])

    def engine(backend: str, batch: int | None = None) -> str:
        rows = [r for r in sweeps if r["model"] == model and r["backend"] == backend and tuple(r["size"]) == size]
        if batch is not None:
            rows = [r for r in rows if r["batch_size"] == batch]
        if not rows:
            return "n/a"
        best = max(rows, key=lambda r: r["images_per_second"] or 0)
        return f"{_num(best['images_per_second'], 3)} (batch {best['batch_size']})"

    ours = section["batch_translate"]
    reference = section["reference"]
    lines = [
        "| way | engine-only images/s | end-to-end images/s | KiB per output image | peak RSS MiB |",
        "|---|---|---|---|---|",
        f"| reference script (Pillow decode, eager, batch 1, serial, Pillow PNG) | {engine('pytorch-eager', 1)} | "
        f"{_num(reference['images_per_second'], 3)} | {_kib(reference)} | {_num(reference['peak_rss_mb'], 0)} |",
        f"| PyTorch eager batched | {engine('pytorch-eager')} | "
        f"{_num(eager_run['images_per_second'], 3) if eager_run else 'not run (engine-only only)'} | "
        f"{_kib(eager_run) if eager_run else 'n/a'} | {_num(eager_run['peak_rss_mb'], 0) if eager_run else 'n/a'} |",
        f"| ONNX Runtime CPU (batch-translate, batch {ours['batch_size']}) | {engine('onnxruntime-cpu')} | "
        f"{_num(ours['images_per_second'], 3)} | {_kib(ours)} | {_num(ours['peak_rss_mb'], 0)} |",
    ]
    trt_skip = next((s for s in skipped if s["what"] == "tensorrt"), None)
    if trt_skip:
        lines.append(f"| TensorRT | skipped: {trt_skip['reason']} | | | |")
    else:
        lines.append(f"| TensorRT (engine only) | {engine('tensorrt')} | not run | | |")
    return lines


def _interleaved_engine_line(compute: dict) -> list[str]:
    """The engine-only figure A1 and A2 use, with the runs its median comes from."""
    engine = compute["engine_only"]
    rates = ", ".join(_num(run["images_per_second"], 3) for run in compute["engine_only_runs"])
    return [
        f"ONNX Runtime engine-only for A1 and A2: {engine['images']} preloaded images at batch "
        f"{engine['batch_size']} streamed as batch-translate streams them, timed right before each batch-translate "
        f"run ({rates} images/s); median {_num(engine['images_per_second'], 3)} images/s, "
        f"{_num(engine['gflops'], 1)} GFLOP/s.",
        "",
    ]


def _kib(run: dict) -> str:
    """Mean output file size of a run."""
    return _num(run["output_kib_per_image"], 0)


def _stages_line(label: str, run: dict) -> str:
    stages = ", ".join(f"{k} {_num(v / run['images'], 3)}" for k, v in run["stage_seconds"].items())
    return f"- {label}: {_num(run['wall_seconds'] / run['images'], 3)} s/image wall; per image by stage (s): {stages}"


def markdown(report: dict) -> str:
    """report.md from the JSON-safe report."""
    machine = report["machine"]
    threads = report.get("threads", {})
    lines = [f"# Throughput benchmark: {report['suite']}", ""]
    lines += [
        f"Machine: {machine['platform']}, {machine['processor']}, {machine['cpu_count']} CPUs "
        f"({threads.get('codec_workers', 'n/a')} usable); ONNX Runtime intra-op threads "
        f"{threads.get('onnxruntime_intra_op', 'n/a')}, PyTorch threads {threads.get('torch', 'n/a')}. "
        "Versions, artifact hashes and the resolved config are in report.json.",
        "",
        "Every ratio below has both operands measured in this run, on the same files, with the same thread "
        "settings. Timings on a shared machine are noisy; the ratios are what the criteria judge.",
        "",
    ]
    for entry in report.get("skipped", []):
        lines.append(f"Skipped {entry['what']}: {entry['reason']}.")
    if report.get("skipped"):
        lines.append("")
    if report.get("criteria"):
        lines += ["## Criteria", "", *_criteria_table(report["criteria"]), ""]
    if report.get("matmul"):
        m = report["matmul"]
        shape = m["shape"]
        lines += [
            f"Float32 MatMul on ONNX Runtime ({shape['m']}x{shape['k']} @ {shape['k']}x{shape['n']}, "
            f"{m['intra_op_threads']} threads, {m['runs']} runs): {_num(m['gflops'], 1)} GFLOP/s.",
            "",
        ]
    compute = report.get("compute_bound")
    if compute:
        comparison = compute["output_comparison"]
        lines += [
            f"## Compute-bound: {compute['model']} at {compute['working_size'][0]}x{compute['working_size'][1]}",
            "",
            f"{compute['batch_translate']['images']} synthetic GTA5-layout images of "
            f"{compute['input_size'][0]}x{compute['input_size'][1]}, written as PNG level "
            f"{compute['batch_translate']['png_compression']} by every way; median of {compute['repeats']} "
            "interleaved runs per way.",
            "",
            *_side_by_side(compute, report.get("sweeps", []), report.get("skipped", []), None),
            "",
            *_interleaved_engine_line(compute),
            f"Outputs of batch-translate and the reference script: max difference {comparison['max_abs_diff']} grey "
            f"levels, {_num(100 * comparison['fraction_within_1'], 3)} % of values within 1 (the reference truncates "
            "to uint8, the exported graph rounds).",
            "",
            _stages_line("reference script", compute["reference"]),
            _stages_line("batch-translate", compute["batch_translate"]),
            "",
        ]
    codec = report.get("codec_bound")
    if codec:
        limit = codec["codec_limit"]
        per = limit["per_image_seconds"]
        label_s = limit.get("label_seconds_per_image")
        lines += [
            f"## Codec-bound: pass-through and {codec['model']} at "
            f"{codec['working_size'][0]}x{codec['working_size'][1]}",
            "",
            f"{codec['images']} images of {codec['input_size'][0]}x{codec['input_size'][1]}, median of "
            f"{codec['repeats']} interleaved runs per way. Codec limit (PNG level {limit['png_compression']}, "
            f"measured right before each pass-through run, median of {len(codec['codec_limit_runs'])}): "
            f"decode {_num(per['decode'], 4)} + resize {_num(per['resize'], 4)} + encode {_num(per['encode'], 4)} "
            f"= {_num(limit['seconds_per_image'], 4)} s per image on one thread, x {limit['workers']} workers = "
            f"{_num(limit['limit_images_per_second'], 2)} images/s."
            + (
                f" Carrying each label over at the working size (done by batch-translate, left out of the limit) "
                f"costs {_num(label_s, 4)} s per image more."
                if label_s
                else ""
            ),
            "",
            *_side_by_side(codec, report.get("sweeps", []), report.get("skipped", []), codec["eager_batched"]),
            f"| pass-through (batch-translate) | {_num(_passthrough_engine(report), 1)} | "
            f"{_num(codec['passthrough']['images_per_second'], 3)} | {_kib(codec['passthrough'])} | "
            f"{_num(codec['passthrough']['peak_rss_mb'], 0)} |",
            "",
            _stages_line("reference script", codec["reference"]),
            _stages_line("eager batched", codec["eager_batched"]),
            _stages_line("batch-translate", codec["batch_translate"]),
            _stages_line("pass-through", codec["passthrough"]),
            "",
            "### Faster output formats (reported separately, never folded into a criterion)",
            "",
            *_formats_table(report),
            "",
        ]
    evaluation = report.get("evaluation")
    if evaluation:
        official, ours = evaluation["official"], evaluation["ours"]
        lines += [
            "## evaluate-seg vs the official Cityscapes evaluator",
            "",
            f"{evaluation['images']} Cityscapes-layout val ground truths of {evaluation['size'][0]}x"
            f"{evaluation['size'][1]}, with perturbed copies as predictions (label IDs); every evaluator runs as a "
            "command-line process, timed from start to exit.",
            "",
            f"- official (`{official['command']}`; Cython fast path compiled: {official['cython_fast_path']}; "
            "instance-level scores on, as by default, with np.in1d restored as np.isin for NumPy 2.4): "
            f"{_num(official['seconds'], 2)} s, peak RSS {_num(official['peak_rss_mb'], 0)} MiB",
            f"- official, pixel-level scores only (what evaluate-seg computes): "
            f"{_num(evaluation['official_pixel_only']['seconds'], 2)} s; evaluate-seg is "
            f"{_num(evaluation['speedup_vs_pixel_only'], 2)}x faster than that (informational, not a criterion)",
            f"- evaluate-seg: {_num(ours['seconds'], 2)} s, peak RSS {_num(ours['peak_rss_mb'], 0)} MiB",
            f"- per-class IoU identical: {evaluation['comparison']['identical']} (max difference "
            f"{_num(evaluation['comparison']['max_abs_diff'], 12)}); also to the pixel-only run: "
            f"{evaluation['comparison_pixel_only']['identical']}",
            "",
        ]
    mem = report.get("memory")
    if mem:
        lines += [
            "## Peak memory against dataset size",
            "",
            "batch-translate (pass-through, "
            f"{mem['size'][0]}x{mem['size'][1]} images, batch {mem['batch_size']}) as a child process; its max RSS:",
            "",
            f"- {mem['small']['images']} images: {_num(mem['small']['peak_rss_mb'], 1)} MiB "
            f"({_num(mem['small']['seconds'], 1)} s)",
            f"- {mem['large']['images']} images: {_num(mem['large']['peak_rss_mb'], 1)} MiB "
            f"({_num(mem['large']['seconds'], 1)} s)",
            "",
        ]
    for label, run in (report.get("end_to_end") or {}).items():
        lines += [
            f"## End to end: {label}",
            "",
            f"{run['images']} images in {_num(run['wall_seconds'], 2)} s: "
            f"{_num(run['images_per_second'], 3)} images/s.",
            "",
            _stages_line(label, run),
            "",
        ]
    if report.get("sweeps"):
        lines += [
            "## Engine-only sweep",
            "",
            "Preloaded batches streamed through the runner as batch-translate streams them (ONNX Runtime on the CPU "
            "keeps two batches in flight, the threads split between them); images/s from the wall time of the "
            "stream; latency per batch, from handing it over to its output; GFLOP/s = 2 x MACs per image (counted "
            "on the ONNX graph) x images/s; peak RSS of this process during the point.",
            "",
            *_sweep_table(report["sweeps"]),
            "",
        ]
    if report.get("figures"):
        lines += ["## Figures", ""]
        lines += [f"![{name}]({name})" for name in report["figures"]]
        lines += [
            "",
            "Stage breakdown: seconds per image in each stage, summed over threads (batch-translate decodes and "
            "encodes on several at once), against the wall time per image (black bar).",
            "",
        ]
    if report.get("stage_seconds"):
        lines += ["## Time taken by this benchmark run", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {name} | {_num(seconds, 1)} |" for name, seconds in report["stage_seconds"].items()]
        lines += [f"| total | {_num(report.get('wall_seconds'), 1)} |", ""]
    return "\n".join(lines)


def _passthrough_engine(report: dict) -> float | None:
    rows = [r for r in report.get("sweeps", []) if r["model"] == "passthrough"]
    return max((r["images_per_second"] for r in rows), default=None)


def _formats_table(report: dict) -> list[str]:
    codec = report["codec_bound"]
    limits = report["codec"]
    model = codec["model"]
    headline = f"PNG level {limits['png']['png_compression']}"
    rows = [
        ("png", headline, codec["passthrough"], codec["batch_translate"]),
        (
            "png_fast",
            f"PNG level {limits['png_fast']['png_compression']}",
            codec["formats"]["png_fast"]["passthrough"],
            codec["formats"]["png_fast"][model],
        ),
        (
            "jpg",
            f"JPEG quality {limits['jpg']['jpeg_quality']}",
            codec["formats"]["jpg"]["passthrough"],
            codec["formats"]["jpg"][model],
        ),
    ]
    lines = [
        f"| output format | codec limit images/s | pass-through images/s | {model} images/s | {model} vs {headline} "
        f"| {model} KiB per image |",
        "|---|---|---|---|---|---|",
    ]
    base = codec["batch_translate"]["images_per_second"]
    for key, label, passthrough, ours in rows:
        effect = ours["images_per_second"] / base if base else None
        limit = codec["codec_limit"] if key == "png" else limits[key]  # B1's own limit for the headline format
        lines.append(
            f"| {label} | {_num(limit['limit_images_per_second'], 2)} | "
            f"{_num(passthrough['images_per_second'], 2)} | {_num(ours['images_per_second'], 2)} | {_num(effect, 2)}x "
            f"| {_kib(ours)} |"
        )
    return lines
