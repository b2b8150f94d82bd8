"""bench-throughput: the quick suite runs end to end and its report is complete and consistent with itself.

Benchmarks are not timed tests: nothing here asserts that a number beats a threshold, only that every figure is
there, finite, and agrees with the figures it is computed from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import mmap
import shutil
import tempfile
import time
import types
import typing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import processes_left
from uda_trt.benchmarks.throughput import suite
from uda_trt.benchmarks.throughput.criteria import THRESHOLDS, ratio_criterion
from uda_trt.benchmarks.throughput.markdown import NOT_JUDGED, criteria_section
from uda_trt.benchmarks.throughput.measure import (
    PeakRss,
    RunPolicy,
    latency_summary,
    percentiles,
    python_code_command,
    python_entry_command,
    rate,
    run_child,
    time_runs,
    time_stream,
)
from uda_trt.benchmarks.throughput.passthrough import write_passthrough
from uda_trt.benchmarks.throughput.results import ArtifactResult, Skipped, SuiteResult
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.runners import open_runner
from uda_trt.runtime.sidecar import file_sha256, load_sidecar

CRITERIA = ("A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "C1", "C2", "C3", "C4", "D1", "E1", "E2")
SECTIONS = (
    "schema_version",
    "suite",
    "config",
    "threads",
    "skipped",
    "artifacts",
    "matmul",
    "codec",
    "sweeps",
    "compute_bound",
    "int8",
    "codec_bound",
    "ray_local",
    "evaluation",
    "memory",
    "criteria",
    "stage_seconds",
    "wall_seconds",
    "machine",
    "figures",
)


def close(a: float, b: float, rel: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def check_typed_keys(hint, value, where: str = "report") -> None:
    """`value` (parsed report.json) has exactly the fields of the typed result `hint` describes, all the way down.

    A dataclass matches itself or one of its subclasses (an ONNX artifact entry adds `architecture`); of a union
    (the two kinds of criterion) exactly one member must match; None stands for an optional section.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None and (origin in (typing.Union, types.UnionType) and type(None) in args):
        return
    if origin in (typing.Union, types.UnionType):
        classes = [a for a in args if dataclasses.is_dataclass(a)]
        if classes:
            fits = [c for c in classes if {f.name for f in dataclasses.fields(c)} == set(value)]
            assert len(fits) == 1, f"{where}: keys {sorted(value)} fit {fits} of {classes}"
            check_typed_keys(fits[0], value, where)
        return
    if dataclasses.is_dataclass(hint):
        candidates = [hint, *hint.__subclasses__()]
        fits = [c for c in candidates if {f.name for f in dataclasses.fields(c)} == set(value)]
        expected = sorted(f.name for f in dataclasses.fields(hint))
        assert fits, f"{where}: keys {sorted(value)}, fields of {hint.__name__}: {expected}"
        cls = fits[0]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            check_typed_keys(hints[f.name], value[f.name], f"{where}.{f.name}")
    elif origin is list:
        for index, item in enumerate(value):
            check_typed_keys(args[0], item, f"{where}[{index}]")
    elif origin is dict:
        for key, item in value.items():
            check_typed_keys(args[1], item, f"{where}[{key!r}]")


# ----------------------------------------------------------------------------------------------- helpers, unit


def test_percentiles_interpolate_and_order():
    values = list(range(1, 101))
    p = percentiles(values)
    assert p == {"p50": pytest.approx(50.5), "p90": pytest.approx(90.1), "p99": pytest.approx(99.01)}
    assert percentiles([3.0]) == {"p50": 3.0, "p90": 3.0, "p99": 3.0}
    with pytest.raises(ValueError):
        percentiles([])


def test_latency_summary_is_milliseconds_and_ordered():
    summary = latency_summary([0.010, 0.030, 0.020, 0.050])
    assert summary["min"] == pytest.approx(10.0) and summary["max"] == pytest.approx(50.0)
    assert summary["mean"] == pytest.approx(27.5)
    assert summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]


def test_rate_and_time_runs_policy():
    assert rate(10, 2.0) == 5.0
    assert math.isnan(rate(1, 0.0))
    calls = []
    times = time_runs(lambda: calls.append(1), RunPolicy(warmup=2, min_runs=4, min_seconds=0.0, max_runs=10))
    assert len(times) == 4 and len(calls) == 6  # warm-up calls are made but not timed
    times = time_runs(lambda: None, RunPolicy(warmup=0, min_runs=1, min_seconds=10.0, max_runs=3))
    assert len(times) == 3  # max_runs stops a point that would otherwise run for min_seconds


def test_time_stream_times_each_batch_and_the_whole_stream():
    handed = []

    def two_in_flight(batches):  # a backend that returns batch n once batch n+1 has been handed over
        previous = None
        for batch in batches:
            handed.append(batch)
            time.sleep(0.01)
            if previous is not None:
                yield previous
            previous = batch
        if previous is not None:
            yield previous

    timing = time_stream(two_in_flight, "b", RunPolicy(warmup=2, min_runs=5, min_seconds=0.0, max_runs=10))
    assert len(handed) == 7 and len(timing.latencies) == 5  # warm-up batches are streamed but not timed
    assert all(0.02 <= latency <= timing.seconds for latency in timing.latencies[:-1])
    assert 0.05 <= timing.seconds < sum(timing.latencies)  # overlapping batches: wall time below the summed latency


def test_peak_rss_sees_an_allocation_and_resets():
    peak = PeakRss()
    peak.reset()
    before = peak.read()
    # 64 MiB of fresh anonymous pages, touched: malloc could hand back memory earlier tests freed but kept resident
    block = mmap.mmap(-1, 64 << 20)
    block.write(b"\1" * (64 << 20))
    after = peak.read()
    assert after - before >= 48 << 20
    block.close()
    if peak.resettable:
        peak.reset()
        assert peak.read() < after - (32 << 20)


def test_run_child_measures_the_childs_own_peak():
    allocate = "import numpy as np; a = np.ones(160 << 20, dtype=np.uint8); print(int(a.sum() > 0))"
    child = run_child(python_code_command(allocate))
    assert child.returncode == 0 and child.stdout.strip() == "1"
    assert child.peak_rss_method == "VmHWM at exit"
    assert child.peak_rss_bytes >= 150 << 20 and child.seconds > 0
    # a small child of a large parent: its own peak, not the parent's memory it was forked from
    ballast = np.ones(400 << 20, dtype=np.uint8)
    small = run_child(python_code_command("print(1)"))
    assert small.peak_rss_bytes < 100 << 20, small.peak_rss_bytes
    del ballast
    failing = run_child(python_code_command("import sys; sys.exit(3)"))
    assert failing.returncode == 3


def test_python_entry_command_runs_a_console_main(tmp_path):
    child = run_child(python_entry_command("uda_trt.runtime.commands.batch_translate:main", "--help"))
    assert child.returncode == 0 and "--engine" in child.stdout
    assert child.peak_rss_method == "VmHWM at exit"


def test_passthrough_artifact_returns_its_input_exactly(tmp_path):
    onnx_path = write_passthrough(tmp_path, (64, 32), divisor=4)
    batch = np.random.default_rng(0).integers(0, 256, size=(3, 32, 64, 3), dtype=np.uint8)
    with open_runner(onnx_path, backend="onnxruntime-cpu") as runner:
        assert runner.sidecar.task == "translate"
        assert runner.sidecar.working_size == (64, 32) and runner.sidecar.size_divisor == 4
        out = runner.infer({"images": batch})["translated"]
    assert out.dtype == np.uint8 and np.array_equal(out, batch)
    with pytest.raises(ValueError):
        write_passthrough(tmp_path, (30, 32), divisor=4)


# ----------------------------------------------------------------------------------------------- the CLI


def test_cli_refuses_nothing_or_both(cli, user_error, tmp_path):
    user_error(cli("bench-throughput", "--output", tmp_path / "r"), names="ARTIFACT")
    user_error(cli("bench-throughput", tmp_path / "x.onnx", "--quick", "--output", tmp_path / "r"), names="ARTIFACT")


def test_artifact_sweep(cli, shared_invert_translator, tmp_path):
    out = tmp_path / "artifact"
    result = cli(
        "bench-throughput",
        shared_invert_translator,
        "--sizes",
        "32x16",
        "--sizes",
        "64x32",
        "--batch-sizes",
        "1,2",
        "--runs",
        "2",
        "--min-seconds",
        "0",
        "--output",
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [(r["size"], r["batch_size"]) for r in report["sweeps"]] == [
        ([32, 16], 1),
        ([32, 16], 2),
        ([64, 32], 1),
        ([64, 32], 2),
    ]
    for row in report["sweeps"]:
        check_sweep_row(row)
        assert row["backend"] == "onnxruntime-cpu"
    assert report["matmul"]["gflops"] > 0
    assert (out / "throughput_vs_batch.png").is_file() and (out / "report.md").is_file()
    assert "end_to_end" not in report and report["figures"] == ["throughput_vs_batch.png"]
    typed = {key: value for key, value in report.items() if key != "figures"}
    check_typed_keys(ArtifactResult, {**typed, "end_to_end": None})


def test_suite_records_what_cannot_run_here(monkeypatch):
    monkeypatch.setattr(suite, "unavailable_reason", lambda backend: "no GPU" if backend == "tensorrt" else None)
    monkeypatch.setattr(suite, "official_unavailable_reason", lambda: "not installed")
    monkeypatch.setattr(suite, "ray_unavailable_reason", lambda: "no Ray")
    assert suite.unavailable_parts() == [
        Skipped("tensorrt", "no GPU"),
        Skipped(suite.OFFICIAL_EVALUATOR, "not installed"),
        Skipped(suite.RAY_LOCAL, "no Ray"),
    ]
    monkeypatch.setattr(suite, "unavailable_reason", lambda backend: None)
    monkeypatch.setattr(suite, "official_unavailable_reason", lambda: None)
    monkeypatch.setattr(suite, "ray_unavailable_reason", lambda: None)
    assert suite.unavailable_parts() == []


# ----------------------------------------------------------------------------------------------- the quick suite


@pytest.fixture(scope="module")
def quick(tmp_path_factory, cli):
    """One real `bench-throughput --quick` run: (output folder, report.json, completed process). Its Ray stage
    starts a local Ray instance in a private, short RAY_TMPDIR (Ray's socket paths must stay short); every process
    of it must be gone once the run is."""
    out = tmp_path_factory.mktemp("bench") / "results"
    ray_tmp = tempfile.mkdtemp(prefix="uray", dir="/tmp")
    try:
        result = cli("bench-throughput", "--quick", "--output", out, env={"RAY_TMPDIR": ray_tmp})
        left = processes_left(f"RAY_TMPDIR={ray_tmp}")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not left, f"Ray processes left running: {left}"
    return out, json.loads((out / "report.json").read_text()), result


def test_quick_report_has_every_section(quick):
    _, report, result = quick
    assert set(SECTIONS) <= set(report)
    assert report["suite"] == "quick"
    assert [c["id"] for c in report["criteria"]] == list(CRITERIA)
    assert set(report["machine"]["versions"]) >= {"onnxruntime", "numpy", "torch"}
    assert report["threads"]["onnxruntime_intra_op"] == report["matmul"]["intra_op_threads"]
    assert f"[{suite.STAGE_COUNT}/{suite.STAGE_COUNT}]" in result.stderr  # progress per stage
    assert result.stderr.count(f"/{suite.STAGE_COUNT}] ") == 2 * suite.STAGE_COUNT  # each stage starts and ends
    assert len(report["stage_seconds"]) == suite.STAGE_COUNT  # every stage ran, under its own name
    assert any(entry["what"] == "tensorrt" for entry in report["skipped"]) or any(
        row["backend"] == "tensorrt" for row in report["sweeps"]
    )


def test_quick_report_keys_are_the_typed_results_fields(quick):
    _, report, _ = quick
    assert report["figures"] == ["throughput_vs_batch.png", "stage_breakdown.png"]
    check_typed_keys(SuiteResult, {key: value for key, value in report.items() if key != "figures"})


def test_quick_report_hashes_every_artifact(quick):
    _, report, _ = quick
    assert len(report["artifacts"]) >= 7  # two checkpoints, two ONNX exports, the INT8 one, two pass-through graphs
    for path, entry in report["artifacts"].items():
        assert len(entry["sha256"]) == 64
        assert all(isinstance(m, int) and m >= 0 for m in entry["macs_per_image"].values()), path
    compute = report["compute_bound"]
    onnx = next(p for p, e in report["artifacts"].items() if e["model"] == compute["model"] and p.endswith(".onnx"))
    width, height = compute["working_size"]
    assert report["artifacts"][onnx]["macs_per_image"][f"{width}x{height}"] == compute["engine_only"]["macs_per_image"]


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_sweep_row(row: dict) -> None:
    assert row["runs"] >= 1 and row["images"] == row["runs"] * row["batch_size"]
    assert finite(row["seconds"]) and row["seconds"] > 0
    assert close(row["images_per_second"], row["images"] / row["seconds"])
    lat = row["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["max"] / 1000 <= row["seconds"]  # every batch was handed over and returned within the stream
    if row["macs_per_image"] is not None:
        assert close(row["gflops"], 2 * row["macs_per_image"] * row["images_per_second"] / 1e9)
    assert row["peak_rss_mb"] > 0


def test_quick_sweeps_are_consistent(quick):
    _, report, _ = quick
    config = report["config"]
    backends = {(row["model"], row["backend"]) for row in report["sweeps"]}
    for model in (config["compute_model"]["name"], config["codec_model"]["name"]):
        assert {(model, "onnxruntime-cpu"), (model, "pytorch-eager")} <= backends
    assert ("passthrough", "onnxruntime-cpu") in backends
    for row in report["sweeps"]:
        check_sweep_row(row)
        if row["model"] not in ("passthrough", "fda"):  # FDA: no network, no MACs (its own test)
            assert row["macs_per_image"] > 0 and row["gflops"] > 0


def test_quick_matmul_and_codec_are_consistent(quick):
    _, report, _ = quick
    m = report["matmul"]
    shape = m["shape"]
    assert m["macs"] == shape["m"] * shape["k"] * shape["n"]
    assert close(m["gflops"], 2 * m["macs"] * m["runs"] / m["seconds"] / 1e9)
    assert m["latency_ms"]["p50"] <= m["latency_ms"]["p90"] <= m["latency_ms"]["p99"]
    for key, limit in report["codec"].items():
        per_image = limit["per_image_seconds"]
        assert all(finite(v) and v > 0 for v in per_image.values()), key
        assert close(limit["seconds_per_image"], sum(per_image.values()))
        assert close(limit["limit_images_per_second"], limit["workers"] / limit["seconds_per_image"])
    assert report["codec"]["png"]["png_compression"] == report["config"]["png_compression"]
    assert report["codec"]["png_fast"]["png_compression"] == report["config"]["fast_png_compression"]
    assert report["codec"]["jpg"]["format"] == "jpg"


def check_run(run: dict, images: int) -> None:
    assert run["images"] == images
    assert finite(run["wall_seconds"]) and run["wall_seconds"] > 0
    assert close(run["images_per_second"], run["images"] / run["wall_seconds"])
    assert set(run["stage_seconds"]) >= {"decode", "infer", "encode"}
    assert all(finite(v) and v >= 0 for v in run["stage_seconds"].values())
    assert run["peak_rss_mb"] > 0


def test_quick_end_to_end_runs_are_consistent(quick):
    _, report, _ = quick
    config = report["config"]
    compute = report["compute_bound"]
    for way in ("batch_translate", "reference"):
        check_run(compute[way], config["compute_images"])
        assert compute[way]["png_compression"] == config["png_compression"]
    for way in ("batch_translate", "reference"):
        runs = compute[f"{way}_runs"]
        assert len(runs) == config["compute_repeats"] and compute[way] in runs
    assert compute["batch_translate"]["job_report"]["images_skipped"] == 0
    engine, batch = compute["engine_only"], compute["batch_translate"]["batch_size"]
    assert len(compute["engine_only_runs"]) == config["compute_repeats"] and engine in compute["engine_only_runs"]
    assert engine["batch_size"] == batch and engine["warmup_runs"] == config["compute_policy"]["warmup"]
    assert engine["images"] == batch * -(-config["compute_images"] // batch)  # the job's images, in whole batches
    assert compute["output_comparison"]["images"] == config["compute_images"]
    codec = report["codec_bound"]
    for way in ("passthrough", "batch_translate", "reference", "eager_batched"):
        check_run(codec[way], config["codec_images"])
    for way in ("passthrough", "batch_translate", "reference"):
        runs = codec[f"{way}_runs"]
        assert len(runs) == config["codec_repeats"] and codec[way] in runs
    limits = codec["codec_limit_runs"]
    assert len(limits) == config["codec_repeats"] and codec["codec_limit"] in limits
    assert all(limit["png_compression"] == config["png_compression"] for limit in limits)
    for label, runs in codec["formats"].items():
        for run in runs.values():
            check_run(run, config["codec_images"])
            assert run["image_format"] == ("jpg" if label == "jpg" else "png")


def test_quick_ray_local_against_one_process(quick):
    out, report, _ = quick
    config, ray = report["config"], report["ray_local"]
    skipped = {entry["what"]: entry["reason"] for entry in report["skipped"]}
    markdown = (out / "report.md").read_text()
    if ray is None:  # Ray not installed: skipped with the reason, as TensorRT is
        assert "Ray" in skipped[suite.RAY_LOCAL] and f"Skipped {suite.RAY_LOCAL}: " in markdown
        return
    assert suite.RAY_LOCAL not in skipped
    for way in ("single_process", "ray"):
        runs = ray[f"{way}_runs"]
        assert len(runs) == config["ray_repeats"] == ray["repeats"] and ray[way] in runs
        for run in runs:
            check_run(run, config["codec_images"])
            assert run["batch_size"] == config["codec_batch"] and run["job_report"]["images_skipped"] == 0
    for run in ray["small_single_process_runs"] + ray["small_ray_runs"]:
        check_run(run, config["ray_small_job_images"])
    assert all("ray" not in run["job_report"] for run in ray["single_process_runs"])
    assert all(run["job_report"]["ray"]["target"] == "local" for run in ray["ray_runs"] + ray["small_ray_runs"])
    assert ray["cluster"] == ray["ray"]["job_report"]["ray"] and ray["cluster"]["cpus"] >= 1
    assert ray["cluster"]["actors"] >= 1
    assert close(
        ray["ray_vs_single_process"], ray["ray"]["images_per_second"] / ray["single_process"]["images_per_second"]
    )
    overheads = [
        on_ray["wall_seconds"] - single["wall_seconds"]
        for single, on_ray in zip(ray["small_single_process_runs"], ray["small_ray_runs"], strict=True)
    ]
    assert len(ray["startup_overhead_runs"]) == len(overheads) == config["ray_repeats"]
    assert all(close(a, b) for a, b in zip(ray["startup_overhead_runs"], overheads, strict=True))
    assert ray["startup_overhead_seconds"] in ray["startup_overhead_runs"]
    # every output file, both jobs, every repeat: images and labels
    comparison = ray["output_comparison"]
    small = config["ray_small_job_images"]  # the whole job's runs count for both when they are the same images
    per_repeat = 2 * (config["codec_images"] + (small if small < config["codec_images"] else 0))
    assert comparison == {"files": per_repeat * config["ray_repeats"], "identical": True, "differing": []}
    assert "## Ray local (" in markdown and "no speed-up is expected" in markdown
    assert f"| Ray local | {ray['ray']['images_per_second']:.3f} |" in markdown
    assert "Outputs byte for byte: identical" in markdown


def test_quick_evaluation_and_memory(quick):
    _, report, _ = quick
    evaluation = report["evaluation"]
    assert evaluation["images"] == report["config"]["eval_images"] == evaluation["ours"]["images_scored"]
    assert isinstance(evaluation["official"]["cython_fast_path"], bool)
    assert set(evaluation["official"]["class_iou"]) == set(evaluation["ours"]["class_iou"])
    assert evaluation["comparison"]["identical"] == (evaluation["comparison"]["differing_classes"] == [])
    assert (
        evaluation["official"]["instance_level_scores"]
        and not evaluation["official_pixel_only"]["instance_level_scores"]
    )
    for side in ("ours", "official", "official_pixel_only"):
        assert evaluation[side]["seconds"] > 0 and evaluation[side]["peak_rss_mb"] > 0
        assert evaluation[side]["peak_rss_method"] == "VmHWM at exit"
    speedup = evaluation["official_pixel_only"]["seconds"] / evaluation["ours"]["seconds"]
    assert close(evaluation["speedup_vs_pixel_only"], speedup)
    memory = report["memory"]
    small, large = report["config"]["memory_counts"]
    assert (memory["small"]["images"], memory["large"]["images"]) == (small, large)
    for run in (memory["small"], memory["large"]):
        assert run["peak_rss_mb"] > 0 and close(run["images_per_second"], run["images"] / run["seconds"])


def test_quick_criteria_are_their_quotients_and_verdicts(quick):
    _, report, _ = quick
    by_id = {c["id"]: c for c in report["criteria"]}
    for c in report["criteria"]:
        assert c["threshold"] == THRESHOLDS[c["id"]]
        if c["kind"] == "ratio":
            assert c["numerator"] > 0 and c["denominator"] > 0
            assert close(c["value"], c["numerator"] / c["denominator"])
        assert c["passed"] == (c["value"] >= c["threshold"] if c["op"] == ">=" else c["value"] <= c["threshold"])
    compute, codec = report["compute_bound"], report["codec_bound"]
    assert by_id["A1"]["numerator"] == compute["engine_only"]["gflops"]
    assert by_id["A1"]["denominator"] == report["matmul"]["gflops"]
    assert by_id["A2"]["numerator"] == compute["batch_translate"]["images_per_second"]
    assert by_id["A2"]["denominator"] == compute["engine_only"]["images_per_second"]
    assert by_id["A3"]["denominator"] == compute["reference"]["images_per_second"]
    assert by_id["A4"]["value"] == compute["output_comparison"]["max_abs_diff"]
    assert by_id["A5"]["numerator"] == by_id["A6"]["numerator"] == compute["small_job"]["images_per_second"]
    assert by_id["A5"]["denominator"] == compute["small_reference"]["images_per_second"]
    assert by_id["A6"]["denominator"] == compute["batch_translate"]["images_per_second"]
    assert compute["small_job"]["images"] == compute["small_reference"]["images"] == 2  # the quick suite's
    # batch-translate's default on the CPU: one image per run in flight, two runs with two cores or more
    assert compute["small_job"]["batch_size"] == min(default_workers(), 2)
    assert by_id["B1"]["numerator"] == codec["passthrough"]["images_per_second"]
    assert by_id["B1"]["denominator"] == codec["codec_limit"]["limit_images_per_second"]
    assert by_id["B2"]["numerator"] == codec["batch_translate"]["images_per_second"]
    assert by_id["C1"]["numerator"] == report["evaluation"]["official"]["seconds"]
    assert by_id["C2"]["value"] == report["evaluation"]["comparison"]["max_abs_diff"]
    assert by_id["C3"]["numerator"] == report["evaluation"]["peer"]["seconds"]
    assert by_id["C3"]["denominator"] == report["evaluation"]["ours"]["seconds"]
    assert by_id["C4"]["value"] == report["evaluation"]["comparison_peer"]["max_abs_diff"] == 0.0
    assert by_id["D1"]["op"] == "<=" and by_id["D1"]["numerator"] == report["memory"]["large"]["peak_rss_mb"]


def test_quick_figures_and_markdown(quick):
    out, report, result = quick
    assert report["figures"] == ["throughput_vs_batch.png", "stage_breakdown.png"]
    for name in report["figures"]:
        with Image.open(out / name) as image:
            image.load()
            assert image.size[0] > 100 and image.size[1] > 100
    markdown = (out / "report.md").read_text()
    assert report["config"]["judge_criteria"] is False
    for c in report["criteria"]:
        assert f"| {c['id']} | {c['name']} |" in markdown
    # the quick suite's sizes only check the harness: no verdict either way, and the command says so last
    assert "**FAIL**" not in markdown and "**pass**" not in markdown
    assert markdown.count(f"| {NOT_JUDGED} |") == len(report["criteria"])
    last = result.stderr.strip().splitlines()[-1]
    assert "criteria not judged (--quick" in last and "not met" not in last, last
    for heading in ("## Criteria", "## Compute-bound", "## Codec-bound", "Faster output formats", "## Engine-only"):
        assert heading in markdown
    assert "TensorRT" in markdown
    engine = report["compute_bound"]["engine_only"]
    assert f"median {engine['images_per_second']:.3f} images/s, {engine['gflops']:.1f} GFLOP/s" in markdown


def test_criteria_verdicts_when_judged_and_when_not():
    passing = ratio_criterion("A2", "end to end vs engine only", 9.9, 10.0, "e2e", "engine")
    failing = ratio_criterion("A2", "end to end vs engine only", 1.0, 10.0, "e2e", "engine")
    judged = "\n".join(criteria_section([passing, failing]))
    assert "| >= 0.95 | **pass** |" in judged and "| >= 0.95 | **FAIL** |" in judged
    quick = "\n".join(criteria_section([passing, failing], judged=False))
    assert "FAIL" not in quick and "**pass**" not in quick
    assert quick.count(f"| >= 0.95 | {NOT_JUDGED} |") == 2 and "no criterion is judged" in quick


# ----------------------------------------------------------------------------------------------- FDA beside the engines


def test_fda_stream_translates_each_image_with_its_donor(tmp_path):
    from uda_trt.benchmarks.throughput.backends import FDA, FDA_BETA, open_backend
    from uda_trt.runtime.fda import fda_uint8
    from uda_trt.runtime.fda_translator import FdaTranslator, list_donors
    from uda_trt.runtime.imageio import read_rgb, resize_rgb

    rng = np.random.default_rng(0)
    donors = tmp_path / "donors"
    donors.mkdir()
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)).save(donors / f"d{index}.png")
    batches = [rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8) for _ in range(3)]
    with open_backend(FDA, donors, threads=2, batch_size=2, image_size=(64, 32)) as stream:
        outputs = list(stream(iter(batches)))
    chooser = FdaTranslator(list_donors(donors), FDA_BETA)
    for batch, out in zip(batches, outputs, strict=True):
        assert out.shape == batch.shape and out.dtype == np.uint8
        for index, image in enumerate(batch):  # the donor batch-translate's hash gives key bench/INDEX
            donor = resize_rgb(read_rgb(chooser.donor_for(f"bench/{index}")), (64, 32))
            assert np.array_equal(out[index], fda_uint8(image, donor, FDA_BETA))
        assert not np.array_equal(out, batch)


def test_quick_report_sweeps_fda_beside_the_engines(quick):
    out, report, _ = quick
    config = report["config"]
    rows = [row for row in report["sweeps"] if row["model"] == "fda"]
    assert {row["backend"] for row in rows} == {"fda-numpy"}
    sizes = [config["working_size"], *config["full_sizes"]]
    assert [(row["size"], row["batch_size"]) for row in rows] == [
        (list(size), batch) for size in sizes for batch in config["codec_sweep_batches"]
    ]
    for row in rows:
        check_sweep_row(row)
        assert row["macs_per_image"] is None and row["gflops"] is None  # no network, no MACs
        assert row["images_per_second"] > 0
    markdown = (out / "report.md").read_text()
    assert "| fda | fda-numpy |" in markdown and "fda-numpy is not an engine" in markdown


# ----------------------------------------------------------------------------------------------- INT8 (criterion E)


def test_quick_int8_artifact_is_the_one_timed_and_its_quality_is_recorded(quick):
    _, report, _ = quick
    config, artifact = report["config"], report["int8"]["artifact"]
    path = Path(artifact["path"])
    assert path.name.endswith(".int8.onnx") and artifact["model"] == report["compute_bound"]["model"]
    assert artifact["sha256"] == file_sha256(path) == report["artifacts"][artifact["path"]]["sha256"]
    sidecar = load_sidecar(path)  # listed in its sidecar with that hash: the runtime runs it
    policy = sidecar.int8_policy
    # quantized once with the suite's fixed method and count, gates reported but not required: no sensitivity pass
    assert artifact["method"] == config["int8_method"] == policy["calibration"]["method"]
    assert artifact["calibration_images"] == config["int8_calibration_images"] == policy["calibration"]["images"]
    assert policy["gates_required"] is False and policy["sensitivity"] == [] and artifact["float_nodes"] == []
    assert artifact["quantized_nodes"] == policy["quantized_nodes"] and artifact["quantized_nodes"]
    assert artifact["float_for_speed"] == policy["float_for_speed"]
    assert artifact["speed_suspects"] == len(policy["speed"]["trials"]) >= len(artifact["float_for_speed"])
    assert not {trial["node"] for trial in artifact["float_for_speed"]} & set(artifact["quantized_nodes"])
    gate = artifact["gate"]
    assert gate == sidecar.validation["int8_onnx"]  # the figures of the artifact timed, as its sidecar has them
    assert gate["reference"] == "onnx" and gate["images"] == artifact["held_out_images"] >= 1
    assert gate["tolerance"] == 3 and 0 <= gate["fraction"] <= 1
    assert gate["psnr_db"] is None or finite(gate["psnr_db"])
    psnr_ok = gate["psnr_db"] is None or gate["psnr_db"] >= gate["required_psnr_db"]
    assert gate["passed"] == (gate["fraction"] >= gate["required"] and psnr_ok)
    assert artifact["seconds"] > 0


def test_quick_int8_runs_are_interleaved_with_fp32_and_criteria_e_are_their_quotients(quick):
    out, report, _ = quick
    config, compute, int8 = report["config"], report["compute_bound"], report["int8"]
    artifact = int8["artifact"]["path"]
    assert int8["model"] == compute["model"] and int8["working_size"] == compute["working_size"]
    for way in ("engine_only", "batch_translate"):
        runs = int8[f"{way}_runs"]
        assert len(runs) == int8["repeats"] == config["compute_repeats"] and int8[way] in runs
    # engine-only: the FP32 stream's work, with the INT8 artifact
    fp32_engine, int8_engine = compute["engine_only"], int8["engine_only"]
    check_sweep_row(int8_engine)
    assert int8_engine["artifact"] == artifact != fp32_engine["artifact"]
    for key in ("model", "backend", "size", "batch_size", "warmup_runs", "runs", "images", "macs_per_image"):
        assert int8_engine[key] == fp32_engine[key], key
    # end to end: the same job, only the artifact and the output folder differ
    fp32_job, int8_job = compute["batch_translate"], int8["batch_translate"]
    check_run(int8_job, config["compute_images"])
    assert int8_job["config"]["artifact"] == artifact and int8_job["job_report"]["images_skipped"] == 0
    same = ("artifact", "output_root")
    assert {k: v for k, v in int8_job["config"].items() if k not in same} == {
        k: v for k, v in fp32_job["config"].items() if k not in same
    }
    assert close(int8["engine_only_vs_fp32"], int8_engine["images_per_second"] / fp32_engine["images_per_second"])
    assert close(int8["end_to_end_vs_fp32"], int8_job["images_per_second"] / fp32_job["images_per_second"])
    by_id = {c["id"]: c for c in report["criteria"]}
    assert by_id["E1"]["numerator"] == int8_engine["images_per_second"]
    assert by_id["E1"]["denominator"] == fp32_engine["images_per_second"]
    assert close(by_id["E1"]["value"], int8["engine_only_vs_fp32"]) and by_id["E1"]["threshold"] == 1.8
    assert by_id["E2"]["numerator"] == int8_job["images_per_second"]
    assert by_id["E2"]["denominator"] == fp32_job["images_per_second"]
    assert close(by_id["E2"]["value"], int8["end_to_end_vs_fp32"]) and by_id["E2"]["threshold"] == 1.6
    # the PNG comparison is of what the two jobs wrote, image by image
    comparison = int8["output_comparison"]
    stems = sorted(p.stem for p in (Path(fp32_job["output"]) / "images").glob("*.png"))
    assert comparison["images"] == len(stems) == config["compute_images"]
    diffs = [
        np.asarray(Image.open(Path(job["output"]) / "images" / f"{stem}.png").convert("RGB"), dtype=np.int16)
        for stem in stems
        for job in (int8_job, fp32_job)
    ]
    diff = np.abs(np.stack(diffs[0::2]) - np.stack(diffs[1::2]))
    assert comparison["max_abs_diff"] == diff.max()
    mse = np.mean(np.square(diff.astype(np.float64)))
    assert comparison["psnr_db"] is None if mse == 0 else close(comparison["psnr_db"], 10 * math.log10(255**2 / mse))
    markdown = (out / "report.md").read_text()
    assert "## INT8 against FP32" in markdown and "| E1 |" in markdown and "| E2 |" in markdown
    assert f"| {int8['engine_only_vs_fp32']:.2f}x (E1) | {int8['end_to_end_vs_fp32']:.2f}x (E2) |" in markdown
    assert f"{int8['artifact']['method']} calibration on {int8['artifact']['calibration_images']}" in markdown
