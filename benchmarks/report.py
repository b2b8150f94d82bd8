"""The run-uda report: report.json (every figure), report.md (for people) and PNG figures, in one folder.

report.md explains itself: what the data and image sizes were, how long each stage trained, the curves, and beside
every "n/a" why the figure is undefined. A smoke-preset report says first that its numbers mean nothing.
"""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from uda_trt.benchmarks.curves import study_curves
from uda_trt.benchmarks.figures import (
    ARM_TITLES,
    CURVES_FIGURE,
    SAMPLES_FIGURE,
    VOID_LABEL,
    write_sample_grid,
    write_training_curves,
)
from uda_trt.benchmarks.html_index import INDEX_FILE, html_table
from uda_trt.benchmarks.int8_study import int8_html
from uda_trt.benchmarks.presets import PRESETS
from uda_trt.benchmarks.study_data import sizes_text, study_images
from uda_trt.benchmarks.study_pages import (
    SCORE_COLUMNS,
    class_figures_markdown,
    score_rows,
    write_arm_figures,
    write_study_index,
)
from uda_trt.runtime.jobs.files import atomic_write_text, write_json
from uda_trt.runtime.labels import CLASS_NAMES
from uda_trt.runtime.sidecar import file_sha256

__all__ = ["ARM_TITLES", "gap_closed", "machine_info", "summarize", "write_seeds_report", "write_study_report"]

# Presets whose numbers mean nothing, and what the report says about it before anything else.
PLUMBING_ONLY = {
    "smoke": "> **Smoke preset: a plumbing check only.** It trains for a few iterations on a handful of tiny "
    "images to show that every stage runs; none of the numbers below means anything about domain adaptation. "
    "Use `--preset demo` (synthetic data) or `--preset full` (real data) for a study."
}
NA_CLASS = (
    "n/a in this table: the class is in neither the ground truth of the scored val images nor this arm's "
    "predictions, so its IoU is undefined (0/0); like the official Cityscapes evaluator, the mIoU leaves it out. "
    "(A class that is predicted but absent from the ground truth scores 0, not n/a.)"
)
NA_SCORE = "n/a in this table: no val pixel could be scored for that arm (see its eval/ARM/metrics.json skips)."


def gap_closed(source_only: float, adapted: float, oracle: float | None) -> float | None:
    """Fraction of the source-only-to-oracle mIoU gap the adapted arm closes (None without an oracle)."""
    if oracle is None or not math.isfinite(oracle) or oracle <= source_only:
        return None
    return (adapted - source_only) / (oracle - source_only)


def gap_closed_na_reason(miou: dict[str, float]) -> str:
    """Why the fraction of the gap closed is n/a for these mIoUs (call only when it is)."""
    oracle = miou.get("oracle")
    if oracle is None:
        return (
            "n/a: there is no oracle arm (a segmenter trained on labelled target train images); run-uda trains one "
            "only with its synthetic data, so with --source/--target it compares source-only and adapted only."
        )
    if not math.isfinite(oracle):
        return "n/a: the oracle's mIoU is undefined (nothing of target val could be scored)."
    return (
        f"n/a: the oracle ({fmt_score(oracle)}) did not beat source-only ({fmt_score(miou['source_only'])}), so there "
        "is no gap to close (expected only from a tiny budget such as the smoke preset's)."
    )


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


def fmt_score(value: float | None, percent: bool = True) -> str:
    """A fraction as a percentage with one decimal (or a plain ratio with two); n/a for an undefined value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.2f}"


def _size(size) -> str:
    return "as exported" if size is None else f"{size[0]}x{size[1]}"


def _headline(report: dict) -> list[str]:
    summary, arms = report["summary"], report["arms"]
    lines = ["| arm | " + " | ".join(SCORE_COLUMNS) + " |", "|---" * (len(SCORE_COLUMNS) + 1) + "|"]
    cells = []
    for arm, *row in score_rows(arms, ARM_TITLES):
        cells += row
        lines.append(f"| {arm} | " + " | ".join(row) + " |")
    lines += ["", NA_SCORE] if "n/a" in cells else []
    lines += [
        "",
        f"Adapted minus source-only: {fmt_score(summary['adapted_minus_source_only'])} mIoU points; "
        f"fraction of the source-only-to-oracle gap closed: {fmt_score(summary['gap_closed'], percent=False)}.",
    ]
    if summary["gap_closed"] is None:
        lines += ["", gap_closed_na_reason(summary["miou"])]
    return lines


def _data_section(report: dict) -> list[str]:
    """Image counts and sizes of every set the study used, the translation working size, what val scored."""
    images = report["images"]
    oracle = " and the oracle's training data" if "oracle" in report["arms"] else ""
    rows = [
        ("source (GTA5 layout): the source-only arm's training data", images["source"]),
        ("translated source: the adapted arm's training data", images["translated"]),
        (f"target train: CycleGAN's target domain{oracle}", images["target_train"]),
        (f"target val ({report['study']['cityscapes_val_split']}): what every arm is scored on", images["target_val"]),
    ]
    lines = ["## Data", "", "| images | count | size (WxH) |", "|---|---|---|"]
    lines += [f"| {what} | {entry['count']} | {sizes_text(entry)} |" for what, entry in rows]
    scored = {arm: (e["metrics"]["images_scored"], e["metrics"]["images_skipped"]) for arm, e in report["arms"].items()}
    if len(set(scored.values())) == 1:
        count, skipped = next(iter(scored.values()))
        scored_text = f"{count} val images scored by every arm ({skipped} skipped)"
    else:
        scored_text = "; ".join(f"{ARM_TITLES[a]} {c} scored ({s} skipped)" for a, (c, s) in scored.items())
    lines += [
        "",
        f"Translation working size: {_size(report['preset']['translate_size'])} (CycleGAN translates every source "
        "image at this size; batch-translate writes the result at the size in the table). The segmenters are scored "
        f"at each val image's full size. Val: {scored_text}. Sizes are read from the first image files of each set.",
    ]
    return lines


def _budget_section(report: dict) -> list[str]:
    """Iterations of each training stage, with the settings that make them comparable between studies."""
    study, preset = report["study"], report["preset"]
    cyclegan, trained = preset["cyclegan"], report.get("cyclegan_training", {})
    segmenter = preset["segmenter"]
    first_arm = next(iter(report["arms"].values()))
    seg_training = first_arm.get("training", {})

    def origin(flag: str, override: int | None, stage: str) -> str:
        if override is None:
            return ""
        own = PRESETS[preset["name"]]
        return f" (set by {flag}; the {preset['name']} preset trains {getattr(own, stage)['iterations']})"

    iterations, decay = cyclegan["iterations"], cyclegan.get("decay_iterations") or 0
    cyclegan_origin = origin("--cyclegan-iterations", study.get("cyclegan_iterations"), "cyclegan")
    segmenter_origin = origin("--segmenter-iterations", study.get("segmenter_iterations"), "segmenter")
    crop = segmenter.get("crop_size")
    lines = [
        "## Training budget",
        "",
        "| stage | iterations | setup |",
        "|---|---|---|",
        f"| CycleGAN | {iterations}{cyclegan_origin} | "
        f"{iterations - decay} at the base learning rate, then {decay} decaying linearly to 0; batch "
        f"{cyclegan['batch_size']}, {_size(cyclegan['crop_size'])} crops of images scaled to width "
        f"{cyclegan['load_width']}; ResNet generator ngf {cyclegan['ngf']} with {cyclegan['n_blocks']} residual "
        "block(s); on "
        f"{trained.get('device', 'n/a (not recorded)')} |",
        f"| each segmenter arm | {segmenter['iterations']}{segmenter_origin} | {segmenter['architecture']}, "
        f"batch {segmenter['batch_size']}, {_size(crop) if crop else 'whole-image'} crops at scale "
        f"{segmenter['scale']}, {segmenter['optimizer']} lr {segmenter['lr']}; held-out score every "
        f"{seg_training.get('val_every_resolved', 'n/a')} iterations on {seg_training.get('heldout_samples', 'n/a')} "
        f"held-out training images; on {seg_training.get('device_resolved', 'n/a (not recorded)')} |",
        "",
        "Every arm trains with the same settings; the arms differ only in their data.",
    ]
    return lines


def _curves_section(report: dict) -> list[str]:
    logged = report["curves"]["cyclegan"]["iteration"]
    every = report["preset"]["cyclegan"].get("log_every", 100)
    return [
        "## Training curves",
        "",
        f"![training curves]({CURVES_FIGURE})",
        "",
        f"CycleGAN losses from cyclegan/train.log ({len(logged)} points, logged every {every} iteration(s)). Held-out "
        "mIoU is each segmenter's score on the held-out part of its own training data (it chooses best.pt; target "
        "val is never used for that); training loss is the mean since the previous held-out score. The values are "
        "in report.json under `curves`.",
    ]


def fcn_section(fcn: dict | None) -> list[str]:
    """FCN-score of the source set before and after translation (target-trained segmenter), or why there is none."""
    if fcn is None:  # a report from before the FCN-score
        return []
    lines = ["## FCN-score of the translation", ""]
    if fcn.get("segmenter") is None:
        return [*lines, f"n/a: {fcn['reason']}.", ""]
    lines += [
        "The oracle segmenter (trained on target train images) segments the source set, raw and translated, scored "
        "against the source labels (%). A translation that makes the source look like the target scores higher "
        "than the raw source.",
        "",
        "| image set | mIoU | FWIoU | pixel acc. | mean acc. | images |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in fcn["sets"].items():
        cells = [fmt_score(m[k]) for k in ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['images_scored']} |")
    return [*lines, ""]


def per_class_table(arms: dict[str, dict], titles: dict[str, str] = ARM_TITLES) -> list[str]:
    """Markdown rows of each class's IoU (%) per arm, and the note on n/a when a cell has one."""
    names = list(arms)
    lines = ["| class | " + " | ".join(titles[a] for a in names) + " |", "|---" * (len(names) + 1) + "|"]
    any_na = False
    for index, name in enumerate(CLASS_NAMES):
        cells = [fmt_score(arms[a]["metrics"]["per_class"][index]["iou"]) for a in names]
        any_na = any_na or "n/a" in cells
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, "", NA_CLASS] if any_na else lines


def write_markdown(out: Path, report: dict) -> None:
    """report.md: the headline, data and sizes, budget, curves, per-class IoU, samples, stage times."""
    study = report["study"]
    synthetic = study["source_root"] is None
    data = "built-in synthetic GTA5-like -> Cityscapes-like" if synthetic else "user GTA5 -> Cityscapes datasets"
    caveat = PLUMBING_ONLY.get(study["preset"])
    lines = [
        f"# UDA study: {study['preset']} preset, seed {study['seed']}",
        "",
        *([caveat, ""] if caveat else []),
        f"Data: {data}. Target-val mIoU (19 Cityscapes classes, %), every number from the real code paths.",
        "",
        *_headline(report),
        "",
        *_data_section(report),
        "",
        *_budget_section(report),
        "",
        *_curves_section(report),
        "",
        "## Per-class IoU (%)",
        "",
        *per_class_table(report["arms"]),
        "",
        *fcn_section(report.get("fcn_score")),
        *class_figures_markdown(report["arms"], ARM_TITLES),
        "## Samples",
        "",
        f"![samples]({SAMPLES_FIGURE})",
        "",
        "Columns: source image, its translation, a target-val image, its ground truth, then each arm's prediction. "
        f"The legend under the grid gives each class's colour (the Cityscapes train-ID palette); black is "
        f"{VOID_LABEL} in the ground truth.",
        "",
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in report["stage_seconds"].items()],
        f"| total | {sum(report['stage_seconds'].values()):.1f} |",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs. "
        "Resolved configs, artifact hashes and versions are in report.json; the study's log is run-uda.log; "
        f"{INDEX_FILE} shows the numbers and figures on one page.",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


def _hashes(report: dict) -> dict:
    paths = [report["translator_artifact"], *(entry["artifact"] for entry in report["arms"].values())]
    return {path: file_sha256(Path(path)) for path in paths}


def write_study_report(out: Path, report: dict, target_root: Path, split: str) -> dict:
    """Complete `report` (summary, machine, hashes, image counts and sizes, curves, figures) and write
    report.json and report.md into `out`."""
    arms = report["arms"]
    report = {
        **report,
        "summary": summarize(arms),
        "machine": machine_info(),
        "artifact_sha256": _hashes(report),
        "images": study_images(Path(arms["source_only"]["data"]), Path(arms["adapted"]["data"]), target_root, split),
        "curves": study_curves(out, list(arms)),
    }
    samples = write_sample_grid(out, report, target_root, split)
    report["figures"] = [samples.name, write_training_curves(out, report["curves"]).name]
    report["figures"] += write_arm_figures(out, arms, ARM_TITLES)
    write_json(out / "report.json", report)
    write_markdown(out, report)
    study = report["study"]
    write_study_index(
        out,
        f"UDA study: {study['preset']} preset, seed {study['seed']}",
        arms,
        ARM_TITLES,
        report["figures"],
        {
            SAMPLES_FIGURE: "source, translation, target, ground truth and each arm's prediction",
            CURVES_FIGURE: "training curves",
        },  # fmt: skip
        [*fcn_html(report.get("fcn_score")), *int8_html(report.get("int8"))],
    )
    return report


def fcn_html(fcn: dict | None) -> list[tuple[str, str]]:
    if not fcn or fcn.get("segmenter") is None:
        return []
    keys = ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy")
    rows = [[name, *(fmt_score(m[k]) for k in keys), m["images_scored"]] for name, m in fcn["sets"].items()]
    header = ["image set", *SCORE_COLUMNS, "images"]
    return [("FCN-score of the translation (oracle segmenter, source labels, %)", html_table(header, rows))]


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
    caveat = PLUMBING_ONLY.get(reports[0]["study"]["preset"])
    gap_note = (
        "n/a: no seed had a gap to close (no oracle arm, or the oracle did not beat source-only; each seed's "
        "report says which)."
        if summary["gap_closed_mean"] is None
        else f"The mean is over the {len(gaps)} of {len(reports)} seeds with a gap to close."
    )
    lines = [
        f"# UDA study over seeds {', '.join(map(str, summary['seeds']))}",
        "",
        *([caveat, ""] if caveat else []),
        "| arm | mean mIoU (%) | std (%) |",
        "|---|---|---|",
        *[f"| {ARM_TITLES[a]} | {fmt_score(v['mean'])} | {fmt_score(v['std'])} |" for a, v in aggregate.items()],
        "",
        f"Adapted minus source-only: mean {fmt_score(diff['mean'])}, min {fmt_score(diff['min'])}, "
        f"max {fmt_score(diff['max'])} mIoU points. Mean fraction of the gap closed: "
        f"{fmt_score(summary['gap_closed_mean'], percent=False)}.",
        "",
        gap_note,
        "",
        "Per-seed reports: "
        + ", ".join(f"[seed {r['study']['seed']}](seed_{r['study']['seed']}/report.md)" for r in reports),
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return payload
