"""What every run-uda study shows besides its own tables: the per-class bar chart and each arm's confusion heatmap
(benchmarks.class_figures), their report.md section, and index.html with the scores, the per-class IoU and every
figure (benchmarks.html_index). A study passes its arms ({name: {"metrics": evaluate-seg's metrics dict}}) and the
titles people read."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from uda_trt.benchmarks.class_figures import PER_CLASS_FIGURE, confusion_figure_name, write_class_figures
from uda_trt.benchmarks.html_index import html_table, write_index
from uda_trt.runtime.labels import CLASS_NAMES

SCORE_COLUMNS = ("mIoU", "FWIoU", "pixel acc.", "mean acc.")
_SCORE_KEYS = ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy")


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal; n/a for an undefined score."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100 * value:.1f}"


def score_rows(arms: Mapping[str, dict], titles: Mapping[str, str]) -> list[list[str]]:
    """[title, mIoU, FWIoU, pixel accuracy, mean accuracy] (%) per arm."""
    return [[titles.get(a, a), *(percent(e["metrics"].get(k)) for k in _SCORE_KEYS)] for a, e in arms.items()]


def write_arm_figures(out: Path, arms: Mapping[str, dict], titles: Mapping[str, str]) -> list[str]:
    """The bar chart and the heatmaps in OUT; their file names."""
    return [path.name for path in write_class_figures(out, arms, titles)]


def class_figures_markdown(arms: Mapping[str, dict], titles: Mapping[str, str]) -> list[str]:
    """report.md lines showing the bar chart and the heatmaps, with what a heatmap's cells mean."""
    return [
        f"![per-class IoU]({PER_CLASS_FIGURE})",
        "",
        "## Confusion matrices",
        "",
        "Each arm's confusion matrix on the scored split, row-normalised: a row is one ground-truth class, a cell the "
        "share of its pixels predicted as the column's class (the last column: predictions outside the 19 classes).",
        "",
        *[f"![{titles.get(arm, arm)}]({confusion_figure_name(arm)})" for arm in arms],
        "",
    ]


def write_study_index(
    out: Path,
    title: str,
    arms: Mapping[str, dict],
    titles: Mapping[str, str],
    figures: Sequence[str],
    captions: Mapping[str, str] | None = None,
    extra_tables: Sequence[tuple[str, str]] = (),
) -> Path:
    """OUT/index.html: the scores and per-class IoU of every arm, `extra_tables`, then every figure in `figures`."""
    per_class = [[name, *(percent(arms[a]["metrics"]["per_class"][i]["iou"]) for a in arms)] for i, name in
                 enumerate(CLASS_NAMES)]  # fmt: skip
    known = {
        PER_CLASS_FIGURE: "per-class IoU of every arm",
        **{confusion_figure_name(a): f"{titles.get(a, a)}: confusion matrix, row-normalised" for a in arms},
        **(captions or {}),
    }
    return write_index(
        out,
        title,
        "Scores in %, 19 Cityscapes classes. report.md explains every number; report.json holds them all.",
        [
            ("Scores", html_table(["arm", *SCORE_COLUMNS], score_rows(arms, titles))),
            ("Per-class IoU (%)", html_table(["class", *(titles.get(a, a) for a in arms)], per_class)),
            *extra_tables,
        ],
        [(name, known.get(name, name)) for name in figures],
    )
