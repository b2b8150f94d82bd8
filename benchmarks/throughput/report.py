"""bench-throughput's report folder: report.json (every figure), report.md (for people), PNG figures.

report.json holds every measured number with its operands, the machine and library versions, artifact hashes and
the resolved configs: the result's `to_json()` plus the names of the figures, written by the project's JSON writer
(NaN and infinity as null). report.md (markdown.py) is derived from the same typed result and adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from uda_trt.benchmarks.throughput import plots
from uda_trt.benchmarks.throughput.markdown import markdown
from uda_trt.benchmarks.throughput.records import EndToEndRun, SweepRow
from uda_trt.benchmarks.throughput.results import ArtifactResult, SuiteResult
from uda_trt.runtime.jobs.files import atomic_write_text, write_json

THROUGHPUT_FIGURE = "throughput_vs_batch.png"
STAGES_FIGURE = "stage_breakdown.png"

StagePanels = dict[str, list[tuple[str, EndToEndRun]]]


def write_report(output: Path, result: SuiteResult | ArtifactResult) -> list[str]:
    """Write the figures, report.json and report.md of `result` into `output`; returns the figures' file names."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    figures = write_figures(output, result.sweeps, stage_panels(result))
    write_json(output / "report.json", {**result.to_json(), "figures": figures})
    atomic_write_text(output / "report.md", markdown(result, figures))
    return figures


def write_figures(output: Path, sweeps: list[SweepRow], panels: StagePanels) -> list[str]:
    """The throughput-vs-batch plot (when there are sweeps) and the stage breakdown (when end-to-end runs exist)."""
    names = []
    if sweeps:
        plots.throughput_vs_batch(sweeps, output / THROUGHPUT_FIGURE)
        names.append(THROUGHPUT_FIGURE)
    if panels:
        plots.stage_breakdown(panels, output / STAGES_FIGURE)
        names.append(STAGES_FIGURE)
    return names


def stage_panels(result: SuiteResult | ArtifactResult) -> StagePanels:
    """The end-to-end runs to draw, per section, labelled."""
    if isinstance(result, ArtifactResult):
        return {"end to end": list(result.end_to_end.items())} if result.end_to_end else {}
    compute, codec = result.compute_bound, result.codec_bound
    return {
        f"compute-bound: {compute.model}": [
            ("reference script", compute.reference),
            ("batch-translate", compute.batch_translate),
            ("batch-translate INT8", result.int8.batch_translate),
        ],
        f"codec-bound: {codec.model} and pass-through": [
            ("reference script", codec.reference),
            ("eager batched", codec.eager_batched),
            ("batch-translate", codec.batch_translate),
            ("pass-through", codec.passthrough),
        ],
    }
