"""The translators study's report: report.json (every figure), report.md (for people) and samples.png.

The headline compares each translator's segmenter with the raw-source one (`none`) and with plain CycleGAN, in mIoU
and FWIoU; the oracle (synthetic data only) gives each the fraction of the gap it closes. Per-class IoU, the
translations' speed and the training stages' CPU cost follow.
"""

from __future__ import annotations

import math
from pathlib import Path

from uda_trt.benchmarks.curves import cyclegan_losses, segmenter_curve
from uda_trt.benchmarks.figures import VOID_LABEL, draw_panel_grid
from uda_trt.benchmarks.report import (
    NA_SCORE,
    PLUMBING_ONLY,
    fcn_html,
    fcn_section,
    fmt_score,
    gap_closed,
    machine_info,
    per_class_table,
)
from uda_trt.benchmarks.study_data import image_sizes, sizes_text
from uda_trt.benchmarks.study_pages import class_figures_markdown, write_arm_figures, write_study_index
from uda_trt.runtime.datasets import cityscapes_samples, gta5_samples
from uda_trt.runtime.jobs.files import atomic_write_text, write_json
from uda_trt.runtime.sidecar import file_sha256

SAMPLES_FIGURE = "samples.png"
GRID_ROWS = 4
TITLES = {
    "none": "none (raw source)",
    "cyclegan": "CycleGAN",
    "cyclegan-sem": "CycleGAN + semantic loss",
    "fda": "FDA",
    "oracle": "oracle (target labels)",
}


def _signed(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:+.1f}"


def summarize(arms: dict[str, dict]) -> dict:
    """mIoU and FWIoU per arm; each translator's mIoU minus `none`'s and minus `cyclegan`'s; gap closed."""
    miou = {arm: entry["metrics"]["mean_iou"] for arm, entry in arms.items()}
    fw_iou = {arm: entry["metrics"]["fw_iou"] for arm, entry in arms.items()}
    compared = [arm for arm in arms if arm not in ("none", "oracle")]

    def minus(reference: str) -> dict:
        if reference not in miou:
            return {}
        return {arm: miou[arm] - miou[reference] for arm in compared if arm != reference}

    gap = {}
    if "none" in miou:
        gap = {arm: gap_closed(miou["none"], miou[arm], miou.get("oracle")) for arm in compared}
    return {
        "miou": miou,
        "fw_iou": fw_iou,
        "miou_minus_none": minus("none"),
        "miou_minus_cyclegan": minus("cyclegan"),
        "gap_closed": gap,
        "best_translator": max(compared + (["none"] if "none" in miou else []), key=lambda a: miou[a], default=None),
    }


def _images(source_root: Path, translations: dict, target_root: Path, split: str) -> dict:
    """Count and sizes (image headers) of the source, each translated set, target train and target val."""

    def entry(paths: list[Path]) -> dict:
        return {"count": len(paths), **image_sizes(paths)}

    def translated(root: Path) -> list[Path]:
        return sorted(p for p in (root / "images").glob("*") if p.suffix in (".png", ".jpg") and p.name[0] != ".")

    return {
        "source": entry([s.image for s in gta5_samples(source_root, require_labels=False)]),
        **{f"translated_{name}": entry(translated(Path(t["data"]))) for name, t in translations.items()},
        "target_train": entry([s.image for s in cityscapes_samples(target_root, "train", require_labels=False)]),
        "target_val": entry([s.image for s in cityscapes_samples(target_root, split, require_labels=False)]),
    }


def write_sample_grid(out: Path, report: dict, source_root: Path, target_root: Path, split: str) -> Path:
    """samples.png: source | each translation | target | ground truth | each arm's prediction, with the legend."""
    from uda_trt.runtime.imageio import read_label, read_rgb
    from uda_trt.runtime.labels import colorize, label_ids_to_train_ids
    from uda_trt.runtime.runners import open_runner

    sources = gta5_samples(source_root, require_labels=False)
    targets = cityscapes_samples(target_root, split)
    count = min(GRID_ROWS, len(sources), len(targets))
    arms, translations = list(report["arms"]), report["translations"]
    predictions = {}
    for arm in arms:
        with open_runner(Path(report["arms"][arm]["artifact"])) as runner:
            predictions[arm] = [runner.infer({"images": read_rgb(t.image)[None]})["labels"][0] for t in targets[:count]]
    titles = ["source", *(TITLES[n] for n in translations), "target", "ground truth", *(TITLES[a] for a in arms)]
    rows = []
    for row in range(count):
        source, target = sources[row], targets[row]
        name = source.image.relative_to(source_root / "images").with_suffix(".png")
        rows.append(
            [
                read_rgb(source.image),
                *(read_rgb(Path(t["data"]) / "images" / name) for t in translations.values()),
                read_rgb(target.image),
                colorize(label_ids_to_train_ids(read_label(target.label))),
                *(colorize(predictions[arm][row]) for arm in arms),
            ]
        )
    return draw_panel_grid(out / SAMPLES_FIGURE, titles, rows, panel_inches=2.0, title_size=7)


def _headline(report: dict) -> list[str]:
    summary = report["summary"]
    lines = [
        "| arm | mIoU | FWIoU | pixel acc. | mean acc. | mIoU vs none | mIoU vs CycleGAN | gap closed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cells = []
    for arm, entry in report["arms"].items():
        m = entry["metrics"]
        row = [fmt_score(m[key]) for key in ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy")]
        cells += row
        vs_none, vs_cyclegan = summary["miou_minus_none"].get(arm), summary["miou_minus_cyclegan"].get(arm)
        gap = summary["gap_closed"].get(arm)
        row += [
            "" if vs_none is None else _signed(vs_none),
            "" if vs_cyclegan is None else _signed(vs_cyclegan),
            "" if arm not in summary["gap_closed"] else fmt_score(gap, percent=False),
        ]
        lines.append(f"| {TITLES[arm]} | " + " | ".join(row) + " |")
    notes = [NA_SCORE] if "n/a" in cells else []
    if any(value is None for value in summary["gap_closed"].values()):
        notes.append(
            "Gap closed: (translator - none) / (oracle - none) in mIoU; n/a without an oracle (real data) or when "
            "the oracle did not beat none (a tiny budget such as the smoke preset's)."
        )
    return [*lines, *([""] + notes if notes else [])]


def _translations_section(report: dict) -> list[str]:
    settings, preset = report["translator_settings"], report["preset"]
    lines = [
        "## Translators",
        "",
        "| translator | training | CPU s per training iteration | translate: images | images/s | working size |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["translations"].items():
        translated = entry["batch_translate"]
        if name == "fda":
            training = f"none (beta {settings['fda_beta']}, donors: target train images)"
        else:
            weight = entry["config"].get("semantic_weight")
            sem = f", semantic loss weight {weight:g}" if weight is not None else ""
            training = f"{preset['cyclegan']['iterations']} iterations{sem}"
        per_iteration = entry.get("training_cpu_seconds_per_iteration")
        size = translated.get("working_size")
        lines.append(
            f"| {TITLES[name]} | {training} | {'n/a' if per_iteration is None else f'{per_iteration:.2f}'} | "
            f"{translated['images_translated'] + translated['images_already_done']} | "
            f"{translated['images_per_second'] or 'n/a'} | "
            f"{'each image at its own size' if not size else f'{size[0]}x{size[1]}'} |"
        )
    lines += [
        "",
        "CPU seconds per iteration: the training stage's CPU time (user + sys, all threads) over its iterations, "
        "start-up included; n/a when the stage resumed an earlier run. images/s: batch-translate's own figure for "
        "this run (0 or n/a when a rerun found the translation complete). Every segmenter then trains with the same "
        f"settings: {preset['segmenter']['architecture']}, {preset['segmenter']['iterations']} iterations, batch "
        f"{preset['segmenter']['batch_size']}, scale {preset['segmenter']['scale']}; CycleGAN as in the "
        f"translation study's {preset['name']} preset (both CycleGANs with the same seed).",
    ]
    return lines


def write_markdown(out: Path, report: dict) -> None:
    study, seconds = report["study"], report["stage_seconds"]
    caveat = PLUMBING_ONLY.get(study["preset"])
    data = "built-in synthetic" if study["source_root"] is None else "user GTA5 -> Cityscapes datasets"
    images = report["images"]
    lines = [
        f"# Translators study: {study['preset']} preset, seed {study['seed']}",
        "",
        *([caveat, ""] if caveat else []),
        f"Data: {data}. One segmenter per translator, identical settings, scored on target val "
        "(19 Cityscapes classes, %). One seed: differences of a few points can be seed noise.",
        "",
        *_headline(report),
        "",
        *_translations_section(report),
        "",
        "## Data",
        "",
        "| images | count | size (WxH) |",
        "|---|---|---|",
        *[f"| {what} | {entry['count']} | {sizes_text(entry)} |" for what, entry in images.items()],
        "",
        "## Per-class IoU (%)",
        "",
        *per_class_table(report["arms"], TITLES),
        "",
        *fcn_section(report.get("fcn_score")),
        *class_figures_markdown(report["arms"], TITLES),
        "## Samples",
        "",
        f"![samples]({SAMPLES_FIGURE})",
        "",
        "Columns: a source image, each translation of it, a target-val image, its ground truth, then each arm's "
        f"prediction. The legend gives the Cityscapes train-ID colours; black is {VOID_LABEL} in the ground truth.",
        "",
        "## Stage times",
        "",
        "| stage | wall s | CPU s |",
        "|---|---|---|",
        *[f"| {stage} | {wall:.1f} | {seconds['cpu'].get(stage, 0):.1f} |" for stage, wall in seconds["wall"].items()],
        f"| total | {sum(seconds['wall'].values()):.1f} | {sum(seconds['cpu'].values()):.1f} |",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs. CPU s is this process's "
        "user + sys time in the stage. Resolved configs, artifact hashes and versions are in report.json.",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


def write_translator_report(out: Path, report: dict, source_root: Path, target_root: Path, split: str) -> dict:
    """Complete `report` (summary, machine, hashes, images, curves, samples.png); write report.json and report.md."""
    arms, translations = report["arms"], report["translations"]
    artifacts = [e["artifact"] for e in arms.values()] + [
        t["artifact"] for t in translations.values() if "artifact" in t
    ]
    report = {
        **report,
        "summary": summarize(arms),
        "machine": machine_info(),
        "artifact_sha256": {path: file_sha256(Path(path)) for path in artifacts},
        "images": _images(source_root, translations, target_root, split),
        "curves": {
            "cyclegan": {
                name: cyclegan_losses(Path(t["training_dir"]))
                for name, t in translations.items()
                if "training_dir" in t
            },
            "segmenters": {arm: segmenter_curve(out / f"segmenter_{arm.replace('-', '_')}") for arm in arms},
        },
    }
    report["figures"] = [write_sample_grid(out, report, source_root, target_root, split).name]
    report["figures"] += write_arm_figures(out, arms, TITLES)
    write_json(out / "report.json", report)
    write_markdown(out, report)
    study = report["study"]
    write_study_index(
        out,
        f"Translators study: {study['preset']} preset, seed {study['seed']}",
        arms,
        TITLES,
        report["figures"],
        {SAMPLES_FIGURE: "a source image, each translation, a target image, its ground truth, each arm's prediction"},
        fcn_html(report.get("fcn_score")),
    )
    return report
