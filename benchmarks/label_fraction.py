"""run-uda --study label-fraction: CycleGAN trained jointly with a segmenter F_T, against the same segmenter trained
on the same labelled images without style transfer, for each share of labelled target images (--fractions).

Per fraction f (dataset size fixed, train.joint_data: of N = min(source, target train) labelled images, f * N are
target images and the rest source images, chosen by the seed):
- joint: train-cyclegan --joint-segmenter (train.joint_training) at f; its F_T (latest_segmenter.pt) is exported and
  scored on target val;
- baseline: train-segmenter on the same labelled images (raw source + the same labelled target images, written as
  one GTA5-layout dataset, OUT/mix_F), with F_T's architecture, optimizer, learning rate and poly schedule, working
  scale and crop, and as many iterations of CycleGAN's batch size (per iteration the joint F_T sees, on average,
  that many labelled images of the same mix when both domains have N images); no held-out split (it would shrink
  the fixed dataset), so the last weights are scored.
Both arms get precise BN with the same batch count (the preset's `precise_bn_batches`: train-segmenter's
precise_bn_batches for the baseline, --segmenter-precise-bn-batches for F_T) before their checkpoint is written, so
both are scored with BatchNorm statistics re-estimated on their own training inputs. Both arms are scored by
frequency-weighted IoU (the study's metric) and mIoU on target val. report.json and report.md hold every number;
fractions.png plots both metrics of both arms against f; per_class_iou.png and confusion_ARM_F.png show every arm's
per-class IoU and confusion matrix, and index.html shows it all.

Resume as the translation study: rerun the same command; trainers resume or return at once, exports are kept when
their sidecar records the checkpoint's sha256, the mix folders are rewritten only when their record changed,
evaluation is redone.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

from uda_trt.benchmarks.html_index import html_table
from uda_trt.benchmarks.presets import Preset, SyntheticData, with_budget
from uda_trt.benchmarks.progress import logged_eta
from uda_trt.benchmarks.report import PLUMBING_ONLY, machine_info
from uda_trt.benchmarks.study_pages import class_figures_markdown, write_arm_figures, write_study_index
from uda_trt.benchmarks.uda import StudyConfig, export_once, make_data
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import atomic_write_text, write_json
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

ARMS = ("joint", "baseline")
FIGURE = "fractions.png"
PRECISE_BN_BATCHES = 8  # train-segmenter's and train-cyclegan --joint-segmenter's default

# cyclegan: train.joint_training.JointConfig's CycleGAN fields; segmenter: F_T's architecture and optimizer, and the
# precise-BN batch count, which the baseline shares. The iteration count is CycleGAN's, and both arms train that many
# iterations.
PRESETS: dict[str, Preset] = {
    # 4 fractions x (joint + baseline), both with precise BN: 18.0 CPU-min (22 min 14 s wall) measured on a busy
    # 2-core machine with one thread; an estimated 12-18 min on 2 idle cores.
    "demo": Preset(
        name="demo",
        synthetic=SyntheticData(gta5_count=300, cityscapes_train=300, cityscapes_val=100, preset="demo"),
        cyclegan={
            "ngf": 16,
            "n_blocks": 6,
            "ndf": 32,
            "load_width": 160,
            "crop_size": (128, 64),
            "batch_size": 2,
            "iterations": 200,
            "decay_iterations": 100,
            "sample_every": 100,
            "save_every": 100,
            "log_every": 20,
            "num_workers": 0,
        },
        segmenter={
            "architecture": "lraspp_mobilenet_v3_large",
            "optimizer": "adamw",
            "lr": 1e-2,
            "precise_bn_batches": PRECISE_BN_BATCHES,
        },
    ),
    # Seconds, for tests of the harness: the numbers mean nothing.
    "smoke": Preset(
        name="smoke",
        synthetic=SyntheticData(gta5_count=6, cityscapes_train=6, cityscapes_val=2, preset="demo"),
        cyclegan={
            "ngf": 4,
            "n_blocks": 1,
            "ndf": 8,
            "load_width": 64,
            "crop_size": (48, 32),
            "batch_size": 2,
            "iterations": 2,
            "decay_iterations": 1,
            "sample_every": 2,
            "save_every": 2,
            "log_every": 1,
            "num_workers": 0,
        },
        segmenter={
            "architecture": "lraspp_mobilenet_v3_large",
            "optimizer": "adamw",
            "lr": 1e-3,
            "precise_bn_batches": 2,  # the code path, cheaply
        },
    ),
}


def budget_iterations(config) -> tuple[int, int]:
    """(CycleGAN iterations, segmenter iterations) for OUT/study.json: both arms train CycleGAN's length."""
    iterations = resolved_preset(config).cyclegan["iterations"]
    return iterations, iterations


def resolved_preset(config: StudyConfig) -> Preset:
    """This study's preset with --cyclegan-iterations applied (schedule scaled, presets.with_budget); --preset full
    and --segmenter-iterations are refused in one line."""
    if config.preset not in PRESETS:
        raise UserError(
            f"--preset {config.preset}: not defined for --study label-fraction (it has {', '.join(PRESETS)}); a "
            "real-data budget is yours to choose with --preset demo and --cyclegan-iterations"
        )
    if config.segmenter_iterations is not None:
        raise UserError(
            "--segmenter-iterations: in --study label-fraction each segmenter trains as long as its CycleGAN "
            "(the baseline matches the joint run); set both with --cyclegan-iterations"
        )
    return with_budget(PRESETS[config.preset], config.cyclegan_iterations, None)


def fraction_name(fraction: float) -> str:
    """`0`, `0.1`, `1`: the fraction as folder names and report keys write it."""
    return f"{fraction:g}"


def _mix_folder(dataset, out: Path) -> Path:
    """OUT/mix_F for the baseline, rewritten only when its record differs from this mix (resume keeps it)."""
    from uda_trt.train.joint_data import write_mix_dataset

    try:
        recorded = json.loads((out / "mix.json").read_text())["mix"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if recorded == json.loads(json.dumps(dataset.mix.record())):
        return out
    return write_mix_dataset(dataset, out)


def _scores(metrics: dict) -> dict:
    keys = ("fw_iou", "mean_iou", "pixel_accuracy", "mean_accuracy", "images_scored", "images_skipped")
    return {key: metrics.get(key) for key in keys}


def run_label_fraction_study(config: StudyConfig) -> dict:
    """Every fraction's joint and baseline arm, trained, exported and scored on target val; the report."""
    from uda_trt.runtime.evaluate import evaluate_engine
    from uda_trt.train.joint_data import joint_dataset
    from uda_trt.train.joint_training import SEGMENTER_FILE, JointConfig, train_joint
    from uda_trt.train.segmenter import SegmenterConfig, train_segmenter
    from uda_trt.train.semantic_consistency import native_width

    preset = resolved_preset(config)
    out, cyclegan, segmenter = config.output, preset.cyclegan, preset.segmenter
    timer = StageTimer(announce=log.info)
    with timer.stage("data"):
        source_root, target_root = make_data(config, preset)
    precise_bn = segmenter.get("precise_bn_batches", PRECISE_BN_BATCHES)
    rows, arm_metrics = [], {}
    for fraction in config.fractions:
        name = fraction_name(fraction)
        joint_config = JointConfig(
            source=source_root,
            target=target_root,
            output=out / f"joint_{name}",
            seed=config.seed,
            joint_segmenter=segmenter["architecture"],
            target_label_fraction=fraction,
            segmenter_optimizer=segmenter["optimizer"],
            segmenter_lr=segmenter["lr"],
            segmenter_precise_bn_batches=precise_bn,
            **cyclegan,
        )
        stage = f"train_joint_{name}"
        with timer.stage(stage), logged_eta(stage, joint_config.output, cyclegan["iterations"]), StopRequest() as stop:
            joint_dir = train_joint(joint_config, resume=True, stop=stop)
        dataset = joint_dataset(
            source_root, target_root, fraction, cyclegan["load_width"], cyclegan["crop_size"], config.seed
        )
        scale = cyclegan["load_width"] / native_width(dataset.samples_b, "B")
        with timer.stage(f"mix_{name}"):
            mix = _mix_folder(dataset, out / f"mix_{name}")
        baseline_config = SegmenterConfig(
            data_root=mix,
            output_dir=out / f"baseline_{name}",
            layout="gta5",
            architecture=segmenter["architecture"],
            scale=scale,
            crop_size=tuple(cyclegan["crop_size"]),
            batch_size=cyclegan["batch_size"],
            iterations=cyclegan["iterations"],
            optimizer=segmenter["optimizer"],
            lr=segmenter["lr"],
            val_fraction=0.0,
            precise_bn_batches=precise_bn,
            log_every=cyclegan["log_every"],
            num_workers=cyclegan["num_workers"],
            seed=config.seed,
        )
        stage = f"train_baseline_{name}"
        with (
            timer.stage(stage),
            logged_eta(stage, baseline_config.output_dir, cyclegan["iterations"]),
            StopRequest() as stop,
        ):
            baseline_checkpoint = train_segmenter(baseline_config, resume=True, stop=stop)
        arms = {}
        for arm, checkpoint in (("joint", joint_dir / SEGMENTER_FILE), ("baseline", baseline_checkpoint)):
            with timer.stage(f"export_{arm}_{name}"):
                artifact = export_once(checkpoint, out / "artifacts" / f"{arm}_{name}")
            with timer.stage(f"evaluate_{arm}_{name}"):
                metrics = evaluate_engine(
                    artifact, target_root, split=config.cityscapes_val_split, output=out / "eval" / f"{arm}_{name}"
                )
            arms[arm] = {"checkpoint": str(checkpoint), "artifact": str(artifact), "scores": _scores(metrics)}
            arm_metrics[arm_name(arm, fraction)] = {"metrics": metrics}
        record = dataset.mix.record()
        rows.append(
            {
                "fraction": fraction,
                "labelled": {k: record[k] for k in ("budget", "source_labelled", "target_labelled")},
                "joint_config": joint_config.to_plain(),
                "baseline_config": baseline_config.as_dict(),
                "arms": arms,
            }
        )
    report = {
        "study": {**asdict(config), "output": str(config.output)},
        "preset": asdict(preset),
        "fractions": rows,
        "summary": summarize(rows),
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in timer.seconds.items()},
        "machine": machine_info(),
    }
    titles = {arm_name(arm, row["fraction"]): arm_title(arm, row["fraction"]) for row in rows for arm in ARMS}
    report["arms"] = arm_metrics
    report["figures"] = [write_fraction_figure(out, rows).name, *write_arm_figures(out, arm_metrics, titles)]
    write_json(out / "report.json", report)
    write_markdown(out, report, titles)
    write_study_index(
        out,
        f"Label-fraction study: {config.preset} preset, seed {config.seed}",
        arm_metrics,
        titles,
        report["figures"],
        {FIGURE: "FWIoU and mIoU of both arms against the share of labelled target images"},
        [("Joint vs baseline per fraction", html_table(TABLE_HEADER, table_rows(report)))],
    )
    return report


def arm_name(arm: str, fraction: float) -> str:
    """`joint_0.5`: an arm at a fraction, as report.json's `arms` and the figure files name it."""
    return f"{arm}_{fraction_name(fraction)}"


def arm_title(arm: str, fraction: float) -> str:
    return f"{arm} at {fraction_name(fraction)}"


def summarize(rows: list[dict]) -> dict:
    """Headline figures: mIoU and FWIoU per `ARM@FRACTION`, and joint minus baseline FWIoU per fraction."""
    miou, fwiou, gain = {}, {}, {}
    for row in rows:
        name = fraction_name(row["fraction"])
        for arm in ARMS:
            scores = row["arms"][arm]["scores"]
            miou[f"{arm}@{name}"] = scores["mean_iou"]
            fwiou[f"{arm}@{name}"] = scores["fw_iou"]
        gain[name] = _difference(row["arms"]["joint"]["scores"]["fw_iou"], row["arms"]["baseline"]["scores"]["fw_iou"])
    return {"miou": miou, "fwiou": fwiou, "joint_minus_baseline_fwiou": gain}


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return a - b


def write_fraction_figure(out: Path, rows: list[dict]) -> Path:
    """fractions.png: FWIoU and mIoU (%) of both arms against the share of labelled target images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(rows, key=lambda row: row["fraction"])
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    for axis, key, title in (
        (axes[0, 0], "fw_iou", "frequency-weighted IoU (%)"),
        (axes[0, 1], "mean_iou", "mIoU (%)"),
    ):
        for arm, style in (("joint", "o-"), ("baseline", "s--")):
            points = [
                (row["fraction"], 100 * row["arms"][arm]["scores"][key])
                for row in order
                if row["arms"][arm]["scores"][key] is not None and math.isfinite(row["arms"][arm]["scores"][key])
            ]
            axis.plot([p[0] for p in points], [p[1] for p in points], style, label=arm)
        axis.set_title(f"target val {title}", fontsize=9)
        axis.set_xlabel("share of labelled target images (dataset size fixed)", fontsize=8)
        axis.set_ylabel(title, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / FIGURE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


TABLE_HEADER = (
    "fraction",
    "labelled source / target",
    "joint FWIoU",
    "baseline FWIoU",
    "joint - baseline",
    "joint mIoU",
    "baseline mIoU",
)


def table_rows(report: dict) -> list[list[str]]:
    """One row per fraction, TABLE_HEADER's columns, scores in %."""
    rows = []
    for row in report["fractions"]:
        joint, base = row["arms"]["joint"]["scores"], row["arms"]["baseline"]["scores"]
        labelled = row["labelled"]
        gain = report["summary"]["joint_minus_baseline_fwiou"][fraction_name(row["fraction"])]
        rows.append(
            [
                fraction_name(row["fraction"]),
                f"{labelled['source_labelled']} / {labelled['target_labelled']}",
                *(_pct(value) for value in (joint["fw_iou"], base["fw_iou"], gain)),
                *(_pct(value) for value in (joint["mean_iou"], base["mean_iou"])),
            ]
        )
    return rows


def write_markdown(out: Path, report: dict, titles: dict[str, str]) -> None:
    """report.md: what was compared, the table per fraction, the plots, budget, stage times."""
    study, preset = report["study"], report["preset"]
    cyclegan, segmenter = preset["cyclegan"], preset["segmenter"]
    caveat = PLUMBING_ONLY.get(study["preset"])
    data = "built-in synthetic GTA5-like -> Cityscapes-like" if study["target_root"] is None else "user datasets"
    lines = [
        f"# Label-fraction study: {study['preset']} preset, seed {study['seed']}",
        "",
        *([caveat, ""] if caveat else []),
        f"Data: {data}. For each share of labelled target images (dataset size fixed: N labelled images in all), "
        "**joint** is the segmenter F_T trained jointly with CycleGAN (train-cyclegan --joint-segmenter), "
        "**baseline** the same segmenter trained by train-segmenter on the same labelled images without style "
        "transfer. Both are scored on target val, every number from the real code paths (export to ONNX, "
        "evaluate-seg).",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|---" * len(TABLE_HEADER) + "|",
        *["| " + " | ".join(cells) + " |" for cells in table_rows(report)],
    ]
    first = report["fractions"][0]["arms"]["joint"]["scores"]
    lines += [
        "",
        f"Scores in % on {first['images_scored']} target-val images ({first['images_skipped']} skipped). FWIoU weights "
        "each class's IoU by its share of the ground-truth pixels, so large classes (road, building, sky) dominate "
        "it; mIoU weighs the 19 classes alike.",
        "",
        f"![FWIoU and mIoU against the fraction]({FIGURE})",
        "",
        "## Per-class IoU",
        "",
        *class_figures_markdown(report["arms"], titles),
        "## Budget",
        "",
        f"Both arms: {segmenter['architecture']}, {segmenter['optimizer']} lr {segmenter['lr']} with poly decay, "
        f"{cyclegan['iterations']} iterations, {cyclegan['crop_size'][0]}x{cyclegan['crop_size'][1]} crops of "
        f"images scaled to width {cyclegan['load_width']}. The joint arm's CycleGAN: ResNet generator ngf "
        f"{cyclegan['ngf']} with {cyclegan['n_blocks']} block(s), batch {cyclegan['batch_size']} per domain, "
        f"{cyclegan['decay_iterations']} decaying iterations; the baseline: batch {cyclegan['batch_size']}, no "
        "held-out split, the last weights scored. Both arms' BatchNorm statistics are re-estimated (precise BN) over "
        f"{segmenter.get('precise_bn_batches', PRECISE_BN_BATCHES)} batches of their own training inputs before "
        "their checkpoint is written. Loss weights: every segmentation term 1 (the study's sum).",
        "",
        "## Stage times (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in report["stage_seconds"].items()],
        f"| total | {sum(report['stage_seconds'].values()):.1f} |",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs. Resolved configs are in "
        "report.json; the study's log is run-uda.log.",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


__all__ = ["PRESETS", "resolved_preset", "run_label_fraction_study"]
