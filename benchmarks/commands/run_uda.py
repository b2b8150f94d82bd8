"""`run-uda`: the whole source-only vs adapted (vs oracle) study in one command, with a report."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import IntListType, setup_logging

PRESET_NAMES = ("demo", "full", "smoke")


EPILOG = """\b
Resuming: a killed or interrupted study is finished by rerunning the same command. Each stage keeps what is
complete and verified: data are completed, CycleGAN and segmenter training resume from their saved states (a
finished one is not redone), an export is kept when its sidecar records the checkpoint's sha256, batch-translate
resumes when the translator is the same (starts over when it changed), and evaluation is redone. On the CPU the
report's numbers equal those of an uninterrupted run.
\b
--output/study.json records the preset, seed, data roots and iteration counts: a rerun into the same folder with
another --preset, --seed, --source, --target, --cyclegan-iterations or --segmenter-iterations is refused in one line
(exit 2). Choose a new --output for a new study. --output/run-uda.log keeps every run's log lines, timestamped.
\b
Budget: a preset fixes every size and count; --cyclegan-iterations and --segmenter-iterations set another length
between presets (CycleGAN's decay, and the cadence of samples, saves, log lines and held-out scores, scale with it).
Each training stage logs its seconds per iteration and an ETA once its first iterations are done."""


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True}, epilog=EPILOG)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Study folder: data, checkpoints, artifacts, evaluations and report.{json,md}.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    default="demo",
    help="Fixed budget: demo (about 13 min on 2 CPU cores, synthetic data), full (real-data sizes, a GPU job), "
    "or smoke (seconds; checks the plumbing, numbers meaningless).",
)
@click.option("--seed", type=int, default=0, help="Seed of data generation and training (one study; not with --seeds).")
@click.option(
    "--seeds",
    type=IntListType("SEED,SEED,...", distinct=True),
    default=None,
    help="Comma-separated seeds: one study per seed plus a mean-and-spread report.",
)
@click.option(
    "--source",
    "source_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="GTA5-layout source root (default: built-in synthetic data).",
)
@click.option(
    "--target",
    "target_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Cityscapes-layout target root (train split for the translator, val for evaluation).",
)
@click.option(
    "--cyclegan-iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Train CycleGAN for N iterations instead of the preset's (its linear decay scaled in proportion).",
)
@click.option(
    "--segmenter-iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Train each segmenter for N iterations instead of the preset's (held-out scoring cadence scaled).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(
    ctx: click.Context,
    output: Path,
    preset: str,
    seed: int,
    seeds: tuple[int, ...] | None,
    source_root: Path | None,
    target_root: Path | None,
    cyclegan_iterations: int | None,
    segmenter_iterations: int | None,
    verbose: bool,
) -> None:
    """Translate source to target style with CycleGAN, train segmenters on raw and translated source, and
    compare them on target val.

    Synthetic data (the default) adds an oracle trained on target train, so the report can say which fraction of
    the source-only-to-oracle gap the translation closes. With --source and --target every command runs on the
    real datasets instead; the oracle is left out.
    """
    from uda_trt.benchmarks.inputs import check_study_inputs
    from uda_trt.benchmarks.report import write_seeds_report
    from uda_trt.benchmarks.uda import StudyConfig, full_preset_cpu_warning

    setup_logging(verbose)
    if (source_root is None) != (target_root is None):
        raise UserError("--source and --target go together: give both dataset roots, or neither for synthetic data")
    if seeds and ctx.get_parameter_source("seed") is not ParameterSource.DEFAULT:
        raise UserError(
            f"--seed {seed} and --seeds {','.join(map(str, seeds))}: give one (--seeds runs one study per seed)"
        )
    if source_root is not None:
        check_study_inputs(source_root, target_root)  # before any work: a wrong root must not wait for training
    seed_list = list(seeds) if seeds else [seed]
    configs = [
        StudyConfig(
            output=output / f"seed_{one_seed}" if len(seed_list) > 1 else output,
            preset=preset,
            seed=one_seed,
            source_root=source_root,
            target_root=target_root,
            cyclegan_iterations=cyclegan_iterations,
            segmenter_iterations=segmenter_iterations,
        )
        for one_seed in seed_list
    ]
    warning = full_preset_cpu_warning(configs[0])
    if warning:
        logging.getLogger(__name__).warning(warning)
    reports = []
    for config in configs:
        reports.append(_run_interruptible(config))
        summary = reports[-1]["summary"]
        click.echo(
            f"seed {config.seed}: "
            + ", ".join(f"{arm} {100 * v:.1f}" for arm, v in summary["miou"].items())
            + f" mIoU -> {config.output / 'report.md'}",
            err=True,
        )
    if len(seed_list) > 1:
        write_seeds_report(output, reports)
        click.echo(f"summary over seeds -> {output / 'report.md'}", err=True)


def _run_interruptible(config) -> dict:
    """`run_study`, stopped by Ctrl-C or SIGTERM in one line with the shell's exit code (130, 143): a training
    stage first saves its state at the end of its iteration, any other stage stops at once; the same command goes
    on from there."""
    from uda_trt.benchmarks.uda import run_study
    from uda_trt.runtime.jobs.interrupts import JobInterrupted, exit_code_of, stop_on_signals
    from uda_trt.train.stopping import TrainingStopped

    again = "rerun the same command to continue the study"
    try:
        with stop_on_signals():
            return run_study(config)
    except TrainingStopped as stopped:
        raise JobInterrupted(
            f"{stopped.signal_name}: training state saved at iteration {stopped.iteration} in {stopped.state}; "
            + again,
            stopped.exit_code,
        ) from None
    except KeyboardInterrupt as exc:
        raise JobInterrupted(f"the finished stages are kept in {config.output}; {again}", exit_code_of(exc)) from None
