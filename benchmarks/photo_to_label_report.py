"""The photo-to-label study's report: report.json, report.md and samples.png (photo | pix2pix | U-Net | DeepLabV3+ |
ground truth) in the study folder. PA, MPA, mIoU and FWIoU per model come from each model's evaluate-seg
metrics.json, computed by the same code on the same val images."""

from __future__ import annotations

import math
from pathlib import Path

from uda_trt.benchmarks.figures import VOID_LABEL, draw_panel_grid
from uda_trt.benchmarks.photo_to_label import ARM_TITLES, PIX2PIX_ARM
from uda_trt.benchmarks.report import PLUMBING_ONLY, machine_info
from uda_trt.benchmarks.study_pages import class_figures_markdown, percent, write_arm_figures, write_study_index
from uda_trt.runtime.jobs.files import atomic_write_text, write_json
from uda_trt.runtime.labels import CLASS_NAMES
from uda_trt.runtime.sidecar import file_sha256

SAMPLES_FIGURE = "samples.png"
GRID_ROWS = 4
SCORES = (("pixel_accuracy", "PA"), ("mean_accuracy", "MPA"), ("mean_iou", "mIoU"), ("fw_iou", "FWIoU"))


def summarize(arms: dict[str, dict]) -> dict:
    """The four scores per model, and pix2pix's distance to the U-Net (the user study's comparison)."""
    scores = {key: {arm: entry["metrics"][key] for arm, entry in arms.items()} for key, _ in SCORES}
    miou = scores["mean_iou"]
    return {
        "miou": miou,
        **{key: values for key, values in scores.items() if key != "mean_iou"},
        "pix2pix_minus_unet_miou": miou[PIX2PIX_ARM] - miou["unet"],
        "pix2pix_minus_unet_pixel_accuracy": scores["pixel_accuracy"][PIX2PIX_ARM] - scores["pixel_accuracy"]["unet"],
    }


def write_sample_grid(out: Path, report: dict, root: Path, split: str) -> Path:
    """samples.png: for the first GRID_ROWS val images, the photo, pix2pix's colour map as it drew it, the U-Net's
    and DeepLabV3+'s predictions in the palette, and the ground truth; the class colours under the grid."""
    from uda_trt.runtime.datasets import cityscapes_samples
    from uda_trt.runtime.imageio import read_label, read_rgb
    from uda_trt.runtime.labels import colorize, label_ids_to_train_ids
    from uda_trt.runtime.runners import open_runner

    samples = cityscapes_samples(root, split)[:GRID_ROWS]
    arms = report["arms"]
    predictions = {}
    for arm in (a for a in arms if a != PIX2PIX_ARM):
        with open_runner(Path(arms[arm]["artifact"])) as runner:
            predictions[arm] = [runner.infer({"images": read_rgb(s.image)[None]})["labels"][0] for s in samples]
    drawn = Path(arms[PIX2PIX_ARM]["predictions"])
    titles = ["photo", *(ARM_TITLES[a] for a in arms), "ground truth"]
    rows = []
    for row, sample in enumerate(samples):
        panels = [read_rgb(sample.image)]
        for arm in arms:
            if arm == PIX2PIX_ARM:
                panels.append(read_rgb(drawn / sample.image.relative_to(sample.image.parents[1])))
            else:
                panels.append(colorize(predictions[arm][row]))
        panels.append(colorize(label_ids_to_train_ids(read_label(sample.label))))
        rows.append(panels)
    return draw_panel_grid(out / SAMPLES_FIGURE, titles, rows, panel_inches=2.4)


def _verdict(summary: dict) -> str:
    """Whether pix2pix-as-segmenter beats or trails the U-Net here, in mIoU and in PA (the study's measure)."""
    miou, pa = summary["pix2pix_minus_unet_miou"], summary["pix2pix_minus_unet_pixel_accuracy"]
    if not (math.isfinite(miou) and math.isfinite(pa)):
        return "pix2pix and the U-Net cannot be compared: a score is undefined (see the arms' metrics.json)."

    def word(diff: float) -> str:
        return "beats" if diff > 0 else "trails" if diff < 0 else "ties"

    return (
        f"pix2pix-as-segmenter {word(miou)} the U-Net by {abs(100 * miou):.1f} mIoU points and {word(pa)} it by "
        f"{abs(100 * pa):.1f} pixel-accuracy points on these val images."
    )


def _markdown(report: dict) -> str:
    study, preset, arms, summary = report["study"], report["preset"], report["arms"], report["summary"]
    caveat = PLUMBING_ONLY.get(study["preset"])
    data = (
        "built-in synthetic Cityscapes-like photo/label pairs"
        if study["target_root"] is None
        else f"Cityscapes root `{study['target_root']}`"
    )
    width, height = preset["working_size"]
    first = next(iter(arms.values()))["metrics"]
    seg = preset["segmenter"]
    p2p = preset["pix2pix"]
    lines = [
        f"# Photo-to-label study: {study['preset']} preset, seed {study['seed']}",
        "",
        *([caveat, ""] if caveat else []),
        f"Data: {data}. Train split `train`, scored on split `{study['cityscapes_val_split']}` "
        f"({first['images_scored']} images scored, {first['images_skipped']} skipped), 19 Cityscapes classes at "
        "each photo's full size, by evaluate-seg (official-evaluator rules). Scores in %.",
        "",
        "| model | PA | MPA | mIoU | FWIoU |",
        "|---|---|---|---|---|",
        *[
            f"| {ARM_TITLES[a]} | " + " | ".join(percent(e["metrics"][k]) for k, _ in SCORES) + " |"
            for a, e in arms.items()
        ],
        "",
        _verdict(summary),
        "",
        "How each model is scored: pix2pix draws a colour label map (batch-translate of the val photos with its ONNX "
        "export); evaluate-seg decodes it with `--id-type color-nearest`, each pixel taking the class of the nearest "
        "Cityscapes colour in RGB (a pixel nearest a void colour counts as outside the classes, a false negative). "
        "Exact colour matching would count almost every pixel a GAN draws as wrong. The U-Net and DeepLabV3+ "
        "artifacts output class IDs directly.",
        "",
        "## Setup",
        "",
        f"Every model sees the photos at {width}x{height}: pix2pix translates at that size (its map is resized back "
        f"to the photo's size to be scored), and the segmenters work at scale {report['segmenter_scale']:.4g} of the "
        "photo, upsampling their logits to the photo's size.",
        "",
        "| model | training | setup |",
        "|---|---|---|",
        f"| pix2pix | {p2p['iterations']} iterations ({p2p['decay_iterations']} decaying), batch {p2p['batch_size']} "
        f"| U-Net generator, {p2p['num_downs']} downsamplings, ngf {p2p['ngf']}; PatchGAN ndf {p2p['ndf']}; pairs "
        f"resized to {p2p['load_size'][0]}x{p2p['load_size'][1]}, {p2p['crop_size'][0]}x{p2p['crop_size'][1]} crops, "
        "flipped; GAN + 100 x L1, Adam 2e-4; every train pair |",
        *[
            f"| {ARM_TITLES[a]} | {seg['iterations']} iterations, batch {seg['batch_size']} | "
            f"`{arms[a]['model']}` from scratch, {seg['crop_size'][0]}x{seg['crop_size'][1]} crops, "
            f"{seg['optimizer']} lr {seg['lr']}; "
            "best.pt chosen on held-out train images |"
            for a in arms
            if a != PIX2PIX_ARM
        ],
        "",
        "The segmenters hold out a share of the train images to choose their checkpoint; pix2pix learns from every "
        "train pair and keeps its last generator, as the reference does.",
        "",
        "## Per-class IoU (%)",
        "",
        "| class | " + " | ".join(ARM_TITLES[a] for a in arms) + " |",
        "|---" * (len(arms) + 1) + "|",
        *[
            f"| {name} | " + " | ".join(percent(arms[a]["metrics"]["per_class"][i]["iou"]) for a in arms) + " |"
            for i, name in enumerate(CLASS_NAMES)
        ],
        "",
        "n/a: the class is in neither the ground truth nor the model's predictions (0/0), left out of the mIoU.",
        "",
        *class_figures_markdown(arms, ARM_TITLES),
        "## Samples",
        "",
        f"![samples]({SAMPLES_FIGURE})",
        "",
        "Columns: the val photo, pix2pix's colour map as drawn (before nearest-colour decoding), the U-Net's and "
        f"DeepLabV3+'s predictions in the Cityscapes palette, the ground truth (black: {VOID_LABEL}).",
        "",
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in report["stage_seconds"].items()],
        f"| total | {sum(report['stage_seconds'].values()):.1f} |",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs. Resolved configs, "
        "artifact hashes and versions are in report.json; the log is run-uda.log.",
        "",
    ]
    return "\n".join(lines)


def write_paired_report(out: Path, report: dict, root: Path, split: str) -> dict:
    """Complete `report` (summary, machine, artifact hashes, figure) and write report.json and report.md."""
    arms = report["arms"]
    report = {
        **report,
        "summary": summarize(arms),
        "machine": machine_info(),
        "artifact_sha256": {e["artifact"]: file_sha256(Path(e["artifact"])) for e in arms.values()},
    }
    report["figures"] = [write_sample_grid(out, report, root, split).name]
    report["figures"] += write_arm_figures(out, arms, ARM_TITLES)
    write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    study = report["study"]
    write_study_index(
        out,
        f"Photo-to-label study: {study['preset']} preset, seed {study['seed']}",
        arms,
        ARM_TITLES,
        report["figures"],
        {SAMPLES_FIGURE: "photo, pix2pix's colour map, U-Net, DeepLabV3+, ground truth"},
    )
    return report
