"""The report's figures (matplotlib, Agg): throughput against batch size per backend, and the stage breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uda_trt.benchmarks.throughput.records import EndToEndRun, SweepRow

STAGES = ("load", "decode", "infer", "encode")
STAGE_COLOURS = {"load": "#999999", "decode": "#4c72b0", "infer": "#dd8452", "encode": "#55a868"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def throughput_vs_batch(rows: Sequence[SweepRow], path: Path) -> Path:
    """One panel per (model, size); one line per backend: engine-only images/s against batch size."""
    plt = _pyplot()
    groups: dict[tuple[str, tuple[int, int]], list[SweepRow]] = {}
    for row in rows:
        groups.setdefault((row.model, tuple(row.size)), []).append(row)
    count = max(1, len(groups))
    columns = min(3, count)
    lines = -(-count // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.6 * columns, 3.4 * lines), squeeze=False)
    for axis, ((model, size), group) in zip(axes.flat, groups.items(), strict=False):
        for backend in sorted({row.backend for row in group}):
            points = sorted((r.batch_size, r.images_per_second) for r in group if r.backend == backend)
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=backend)
        axis.set_xscale("log", base=2)
        batches = sorted({row.batch_size for row in group})
        axis.set_xticks(batches, [str(b) for b in batches])
        axis.set_title(f"{model} at {size[0]}x{size[1]}", fontsize=9)
        axis.set_xlabel("batch size")
        axis.set_ylabel("images/s (engine only)")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[count:]:
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def stage_breakdown(panels: dict[str, Sequence[tuple[str, EndToEndRun]]], path: Path) -> Path:
    """One panel per section; per (label, run) a stacked bar of seconds per image in each stage, and its wall time
    per image.

    Stage seconds are summed over threads (batch-translate decodes and encodes on several at once), so a bar can be
    taller than the wall time: the gap is the overlap the job achieves.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for axis, (title, entries) in zip(axes.flat, panels.items(), strict=True):
        labels = [label for label, _ in entries]
        runs = [run for _, run in entries]
        positions = range(len(entries))
        bottoms = [0.0] * len(entries)
        for stage in STAGES:
            heights = [run.stage_seconds.get(stage, 0.0) / run.images for run in runs]
            if any(heights):
                axis.bar(positions, heights, bottom=bottoms, color=STAGE_COLOURS[stage], label=stage, width=0.6)
                bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        walls = [run.wall_seconds / run.images for run in runs]
        axis.scatter(positions, walls, color="black", marker="_", s=600, zorder=3, label="wall time")
        axis.set_xticks(list(positions), labels, rotation=20, ha="right", fontsize=8)
        axis.set_ylabel("seconds per image")
        axis.set_title(title, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
