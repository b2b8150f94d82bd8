"""The run-uda report: report.json (every figure), report.md (for people) and PNG figures, in one folder."""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from uda_trt.runtime.jobs.files import atomic_write_text, write_json
from uda_trt.runtime.labels import CLASS_NAMES, colorize
from uda_trt.runtime.sidecar import file_sha256

GRID_ROWS = 4
ARM_TITLES = {"source_only": "source-only", "adapted": "adapted", "oracle": "oracle"}


def gap_closed(source_only: float, adapted: float, oracle: float | None) -> float | None:
    """Fraction of the source-only-to-oracle mIoU gap the adapted arm closes (None without an oracle)."""
    if oracle is None or not math.isfinite(oracle) or oracle <= source_only:
        return None
    return (adapted - source_only) / (oracle - source_only)


def machine_info() -> dict:
    """Where the numbers were measured, and with which library versions."""
    versions = {}
    for package in ("uda-trt", "numpy", "onnxruntime", "onnx", "torch", "torchvision", "opencv-python-headless"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def summarize(arms: dict[str, dict]) -> dict:
    """Headline figures: mIoU per arm and the fraction of the gap closed."""
    miou = {arm: entry["metrics"]["mean_iou"] for arm, entry in arms.items()}
    return {
        "miou": miou,
        "gap_closed": gap_closed(miou["source_only"], miou["adapted"], miou.get("oracle")),
        "adapted_minus_source_only": miou["adapted"] - miou["source_only"],
    }


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.2f}"


def _per_class_table(arms: dict[str, dict]) -> list[str]:
    names = list(arms)
    lines = ["| class | " + " | ".join(ARM_TITLES[a] for a in names) + " |", "|---" * (len(names) + 1) + "|"]
    for index, name in enumerate(CLASS_NAMES):
        cells = [_fmt(arms[a]["metrics"]["per_class"][index]["iou"]) for a in names]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(out: Path, report: dict) -> None:
    """report.md: the headline, per-class IoU, stage times, and where the configs are."""
    summary, arms = report["summary"], report["arms"]
    synthetic = report["study"]["source_root"] is None
    data = "built-in synthetic GTA5-like -> Cityscapes-like" if synthetic else "user GTA5 -> Cityscapes datasets"
    lines = [
        f"# UDA study: {report['study']['preset']} preset, seed {report['study']['seed']}",
        "",
        f"Data: {data}. Target-val mIoU (19 Cityscapes classes, %), every number from the real code paths.",
        "",
        "| arm | mIoU | pixel acc. | mean acc. |",
        "|---|---|---|---|",
    ]
    for arm, entry in arms.items():
        m = entry["metrics"]
        lines.append(
            f"| {ARM_TITLES[arm]} | {_fmt(m['mean_iou'])} | {_fmt(m['pixel_accuracy'])} | {_fmt(m['mean_accuracy'])} |"
        )
    lines += [
        "",
        f"Adapted minus source-only: {_fmt(summary['adapted_minus_source_only'])} mIoU points; "
        f"fraction of the source-only-to-oracle gap closed: {_fmt(summary['gap_closed'], percent=False)}.",
        "",
        "## Per-class IoU (%)",
        "",
        *_per_class_table(arms),
        "",
        "## Samples",
        "",
        "![samples](samples.png)",
        "",
        "Columns: source image, its translation, a target-val image, its ground truth, then each arm's prediction.",
        "",
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in report["stage_seconds"].items()],
        f"| total | {sum(report['stage_seconds'].values()):.1f} |",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs. "
        "Resolved configs, artifact hashes and versions are in report.json.",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


def write_sample_grid(out: Path, report: dict, target_root: Path, split: str) -> Path:
    """samples.png: source / translated / target / ground truth / each arm's prediction, GRID_ROWS rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uda_trt.runtime.datasets import cityscapes_samples, samples_for
    from uda_trt.runtime.imageio import read_label, read_rgb
    from uda_trt.runtime.labels import label_ids_to_train_ids
    from uda_trt.runtime.runners import open_runner

    _, sources = samples_for(Path(report["arms"]["source_only"]["data"]), "gta5")
    translated_root = Path(report["arms"]["adapted"]["data"])
    targets = cityscapes_samples(target_root, split)
    rows = min(GRID_ROWS, len(sources), len(targets))
    arms = list(report["arms"])
    predictions = {}
    for arm in arms:
        with open_runner(Path(report["arms"][arm]["artifact"])) as runner:
            predictions[arm] = [runner.infer({"images": read_rgb(t.image)[None]})["labels"][0] for t in targets[:rows]]
    titles = ["source", "translated", "target", "ground truth", *(ARM_TITLES[a] for a in arms)]
    figure, axes = plt.subplots(rows, len(titles), figsize=(2.2 * len(titles), 1.4 * rows), squeeze=False)
    for row in range(rows):
        source, target = sources[row], targets[row]
        translated = translated_root / source.image.relative_to(source.image.parents[1])
        panels = [
            read_rgb(source.image),
            read_rgb(translated.with_suffix(".png")),
            read_rgb(target.image),
            colorize(label_ids_to_train_ids(read_label(target.label))),
            *(colorize(predictions[arm][row]) for arm in arms),
        ]
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(titles[column], fontsize=8)
    figure.tight_layout()
    path = out / "samples.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _hashes(report: dict) -> dict:
    paths = [report["translator_artifact"], *(entry["artifact"] for entry in report["arms"].values())]
    return {path: file_sha256(Path(path)) for path in paths}


def write_study_report(out: Path, report: dict, target_root: Path, split: str) -> dict:
    """Complete `report` (summary, machine, hashes, figure) and write report.json and report.md into `out`."""
    report = {
        **report,
        "summary": summarize(report["arms"]),
        "machine": machine_info(),
        "artifact_sha256": _hashes(report),
    }
    report["figures"] = [write_sample_grid(out, report, target_root, split).name]
    write_json(out / "report.json", report)
    write_markdown(out, report)
    return report


def write_seeds_report(out: Path, reports: list[dict]) -> dict:
    """Mean and spread over seeds of each arm's mIoU and of the gap closed: report.json + report.md in `out`."""
    arms = list(reports[0]["arms"])
    per_seed = [{"seed": r["study"]["seed"], **r["summary"]} for r in reports]
    aggregate = {}
    for arm in arms:
        values = np.array([r["summary"]["miou"][arm] for r in reports], dtype=float)
        aggregate[arm] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    gaps = [r["summary"]["gap_closed"] for r in reports if r["summary"]["gap_closed"] is not None]
    diffs = np.array([r["summary"]["adapted_minus_source_only"] for r in reports])
    summary = {
        "seeds": [r["study"]["seed"] for r in reports],
        "miou": aggregate,
        "adapted_minus_source_only": {
            "mean": float(diffs.mean()),
            "min": float(diffs.min()),
            "max": float(diffs.max()),
        },
        "gap_closed_mean": float(np.mean(gaps)) if gaps else None,
        "adapted_beats_source_only_on_average": bool(diffs.mean() > 0),
    }
    diff = summary["adapted_minus_source_only"]
    payload = {"per_seed": per_seed, "summary": summary, "machine": machine_info()}
    write_json(out / "report.json", payload)
    lines = [
        f"# UDA study over seeds {', '.join(map(str, summary['seeds']))}",
        "",
        "| arm | mean mIoU (%) | std (%) |",
        "|---|---|---|",
        *[f"| {ARM_TITLES[a]} | {_fmt(v['mean'])} | {_fmt(v['std'])} |" for a, v in aggregate.items()],
        "",
        f"Adapted minus source-only: mean {_fmt(diff['mean'])}, min {_fmt(diff['min'])}, max {_fmt(diff['max'])} "
        f"mIoU points. Mean fraction of the gap closed: {_fmt(summary['gap_closed_mean'], percent=False)}.",
        "",
        "Per-seed reports: "
        + ", ".join(f"[seed {r['study']['seed']}](seed_{r['study']['seed']}/report.md)" for r in reports),
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return payload
