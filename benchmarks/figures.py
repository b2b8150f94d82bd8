"""run-uda's figures: samples.png (images, ground truth and predictions, with the class-colour legend) and
training_curves.png (CycleGAN losses, each segmenter's held-out mIoU and training loss)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from uda_trt.runtime.labels import CLASS_NAMES, PALETTE, colorize

GRID_ROWS = 4
ARM_TITLES = {"source_only": "source-only", "adapted": "adapted", "oracle": "oracle"}
SAMPLES_FIGURE = "samples.png"
CURVES_FIGURE = "training_curves.png"
LEGEND_COLUMNS = 10
VOID_LABEL = "void / not evaluated"  # colorize draws train ID 255 (ignored pixels) black


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def legend_entries() -> list[tuple[str, tuple[float, float, float]]]:
    """(name, RGB in [0, 1]) of the 19 Cityscapes train IDs in order, then the void colour of the ground truth."""
    entries = [(name, tuple(float(c) / 255 for c in colour)) for name, colour in zip(CLASS_NAMES, PALETTE, strict=True)]
    return [*entries, (VOID_LABEL, (0.0, 0.0, 0.0))]


def draw_panel_grid(
    path: Path, titles: list[str], rows: list[list[np.ndarray]], panel_inches: float, title_size: int = 8
) -> Path:
    """Save a grid of image panels to `path`: one column per title (titled on the first row), one row per sample,
    and under the grid the colour of every class (the Cityscapes train-ID palette the label panels use)."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    legend_inches = 0.25 + 0.22 * math.ceil(len(legend_entries()) / LEGEND_COLUMNS)
    height = 1.4 * len(rows) + legend_inches
    figure, axes = plt.subplots(len(rows), len(titles), figsize=(panel_inches * len(titles), height), squeeze=False)
    for row, panels in enumerate(rows):
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(titles[column], fontsize=title_size)
    handles = [Patch(facecolor=colour, edgecolor="0.5", label=name) for name, colour in legend_entries()]
    figure.legend(handles=handles, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, legend_inches / height, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_sample_grid(out: Path, report: dict, target_root: Path, split: str) -> Path:
    """samples.png: source / translated / target / ground truth / each arm's prediction, GRID_ROWS rows, and under
    them the colour of every class (the Cityscapes train-ID palette the label panels use)."""
    from uda_trt.runtime.datasets import cityscapes_samples, samples_for
    from uda_trt.runtime.imageio import read_label, read_rgb
    from uda_trt.runtime.labels import label_ids_to_train_ids
    from uda_trt.runtime.runners import open_runner

    _, sources = samples_for(Path(report["arms"]["source_only"]["data"]), "gta5")
    translated_root = Path(report["arms"]["adapted"]["data"])
    targets = cityscapes_samples(target_root, split)
    count = min(GRID_ROWS, len(sources), len(targets))
    arms = list(report["arms"])
    predictions = {}
    for arm in arms:
        with open_runner(Path(report["arms"][arm]["artifact"])) as runner:
            predictions[arm] = [runner.infer({"images": read_rgb(t.image)[None]})["labels"][0] for t in targets[:count]]
    titles = ["source", "translated", "target", "ground truth", *(ARM_TITLES[a] for a in arms)]
    rows = []
    for row in range(count):
        source, target = sources[row], targets[row]
        translated = translated_root / source.image.relative_to(source.image.parents[1])
        rows.append(
            [
                read_rgb(source.image),
                read_rgb(translated.with_suffix(".png")),
                read_rgb(target.image),
                colorize(label_ids_to_train_ids(read_label(target.label))),
                *(colorize(predictions[arm][row]) for arm in arms),
            ]
        )
    return draw_panel_grid(out / SAMPLES_FIGURE, titles, rows, panel_inches=2.2)


def write_training_curves(out: Path, curves: dict) -> Path:
    """training_curves.png: CycleGAN's adversarial and cycle/identity losses against the iteration, and per arm
    the held-out mIoU (on the held-out part of its own training data) and the mean training loss."""
    plt = _pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), squeeze=False)
    cyclegan = curves["cyclegan"]
    panels = (
        (axes[0, 0], "CycleGAN adversarial losses", ("G_A", "G_B", "D_A", "D_B")),
        (axes[0, 1], "CycleGAN cycle and identity losses", ("cycle_A", "cycle_B", "idt_A", "idt_B")),
    )
    for axis, title, names in panels:
        for name in names:
            axis.plot(cyclegan["iteration"], cyclegan["losses"][name], marker=".", label=name)
        _finish_axis(axis, title, "loss", bool(cyclegan["iteration"]))
    for key, axis, title, scale in (
        ("heldout_miou", axes[1, 0], "segmenters: held-out mIoU (%)", 100.0),
        ("train_loss", axes[1, 1], "segmenters: training loss", 1.0),
    ):
        for arm, curve in curves["segmenters"].items():
            points = [(i, v * scale) for i, v in zip(curve["iteration"], curve[key], strict=True) if v is not None]
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=ARM_TITLES[arm])
        has_data = any(curve["iteration"] for curve in curves["segmenters"].values())
        _finish_axis(axis, title, "mIoU (%)" if scale != 1.0 else "loss", has_data)
    figure.tight_layout()
    path = out / CURVES_FIGURE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _finish_axis(axis, title: str, ylabel: str, has_data: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("iteration", fontsize=8)
    axis.set_ylabel(ylabel, fontsize=8)
    axis.tick_params(labelsize=7)
    if has_data:
        axis.legend(fontsize=7)
    else:
        axis.text(0.5, 0.5, "no data logged", ha="center", va="center", transform=axis.transAxes)
