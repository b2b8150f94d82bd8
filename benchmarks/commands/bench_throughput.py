"""`bench-throughput`: the throughput benchmark harness (a suite, or one artifact's sweep), with a report."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import SIZE, IntListType, setup_logging

SUITE_NAMES = ("quick", "standard", "full")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("artifact", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--suite",
    type=click.Choice(SUITE_NAMES),
    default=None,
    help="Run a whole suite: quick (seconds, tiny sizes; checks the harness, numbers mean nothing), standard "
    "(make bench: 45-65 min on 2 CPU cores, GTA5 1914x1052 and Cityscapes 2048x1024 synthetic data, 1024x512 "
    "working size), full (make bench-full: standard plus full-resolution sweeps).",
)
@click.option("--quick", is_flag=True, help="Same as --suite quick.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bench-results"),
    help="Report folder: report.json, report.md, PNG figures; synthetic data and models are kept in OUTPUT/work "
    "and reused by the next run.",
)
@click.option(
    "--sizes",
    type=SIZE,
    multiple=True,
    help="With ARTIFACT: working sizes to sweep, WIDTHxHEIGHT, repeatable [default: the artifact's own; "
    "1024x512 for a checkpoint].",
)
@click.option(
    "--batch-sizes",
    type=IntListType("N,N,...", minimum=1),
    default="1,2,4",
    help="With ARTIFACT: comma-separated batch sizes.",
)
@click.option("--warmup", type=click.IntRange(min=0), default=1, help="With ARTIFACT: untimed runs per point.")
@click.option("--runs", type=click.IntRange(min=1), default=3, help="With ARTIFACT: at least this many timed runs.")
@click.option(
    "--min-seconds", type=click.FloatRange(min=0), default=2.0, help="With ARTIFACT: and at least this long per point."
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With a .onnx or .engine ARTIFACT: also batch-translate this dataset (GTA5 layout or image folder) once, "
    "end to end, with per-stage times.",
)
@click.option(
    "--png-compression", type=click.IntRange(0, 9), default=6, help="With --dataset: PNG level of the outputs."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    artifact: Path | None,
    suite: str | None,
    quick: bool,
    output: Path,
    sizes: tuple[tuple[int, int], ...],
    batch_sizes: tuple[int, ...],
    warmup: int,
    runs: int,
    min_seconds: float,
    dataset: Path | None,
    png_compression: int,
    verbose: bool,
) -> None:
    """Measure throughput, latency, arithmetic rate, codec limits, evaluator speed and memory, and write a report.

    \b
    bench-throughput --suite standard --output bench-results   # what `make bench` runs
    bench-throughput --quick --output /tmp/bench                # the harness end to end in well under a minute
    bench-throughput model.onnx --sizes 1024x512 --batch-sizes 1,2,4,8
    bench-throughput latest_net_G_A.pth                         # PyTorch eager sweep of a checkpoint

    A suite measures, each as a ratio within one run: a ResNet-9 generator's GFLOP/s on ONNX Runtime against
    ONNX Runtime's float32 MatMul rate; batch-translate end to end against engine-only and against the reference
    CycleGAN script's way (Pillow, eager, batch 1, serial), outputs compared to the grey level; a pass-through
    model against the codec limit (decode + resize + encode per image x workers); a small generator against the
    reference way; evaluate-seg against the official Cityscapes evaluator (identical per-class IoU); batch-translate's
    peak memory on a 10x larger dataset. report.md tabulates each criterion with its threshold and pass/fail.
    An ARTIFACT alone gets the engine-only sweep (images/s, latency p50/p90/p99, GFLOP/s, peak memory).
    """
    from uda_trt.benchmarks.throughput.measure import RunPolicy

    setup_logging(verbose)
    if quick:
        if suite not in (None, "quick"):
            raise UserError(f"--quick and --suite {suite} contradict each other; give one")
        suite = "quick"
    if artifact is not None and suite is not None:
        raise UserError("give either ARTIFACT (one artifact's sweep) or --suite/--quick (a whole suite), not both")
    if artifact is None and suite is None:
        raise UserError("nothing to measure: give ARTIFACT or --suite quick|standard|full (see --help)")
    if suite is not None:
        from uda_trt.benchmarks.throughput.config import SUITES
        from uda_trt.benchmarks.throughput.suite import run_suite

        result = run_suite(SUITES[suite], output)
        judged = SUITES[suite].judge_criteria
        failed = [criterion.id for criterion in result.criteria if judged and not criterion.passed]
    else:
        from uda_trt.benchmarks.throughput.artifact import run_artifact

        policy = RunPolicy(warmup=warmup, min_runs=runs, min_seconds=min_seconds, max_runs=max(runs, 1000))
        chosen = sizes or (((1024, 512),) if artifact.suffix in (".pth", ".pt") else None)
        result = run_artifact(artifact, output, chosen, batch_sizes, policy, dataset, png_compression)
        judged, failed = True, []
    if not judged:
        verdict = "; criteria not judged (--quick checks the harness; its numbers mean nothing)"
    else:
        verdict = f"; criteria not met: {', '.join(failed)}" if failed else ""
    click.echo(f"report: {output / 'report.md'} ({result.wall_seconds:.0f} s){verdict}", err=True)


if __name__ == "__main__":
    main()
