"""`run-uda`: the whole source-only vs adapted (vs oracle) study in one command, with a report."""

from __future__ import annotations

from pathlib import Path

import click

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
--output/study.json records the preset, seed and data roots: a rerun into the same folder with another --preset,
--seed, --source or --target is refused in one line (exit 2). Choose a new --output for a new study."""


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
    help="Fixed budget: demo (~15 min on 2 CPU cores, synthetic data), full (real-data sizes, a GPU job), "
    "or smoke (seconds; checks the plumbing, numbers meaningless).",
)
@click.option("--seed", type=int, default=0, help="Seed of data generation and training (one study).")
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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    output: Path,
    preset: str,
    seed: int,
    seeds: tuple[int, ...] | None,
    source_root: Path | None,
    target_root: Path | None,
    verbose: bool,
) -> None:
    """Translate source to target style with CycleGAN, train segmenters on raw and translated source, and
    compare them on target val.

    Synthetic data (the default) adds an oracle trained on target train, so the report can say which fraction of
    the source-only-to-oracle gap the translation closes. With --source and --target every command runs on the
    real datasets instead; the oracle is left out.
    """
    from uda_trt.benchmarks.report import write_seeds_report
    from uda_trt.benchmarks.uda import StudyConfig, run_study

    setup_logging(verbose)
    if (source_root is None) != (target_root is None):
        raise UserError("--source and --target go together: give both dataset roots, or neither for synthetic data")
    for flag, root in (("--source", source_root), ("--target", target_root)):
        if root is not None and not root.is_dir():
            raise UserError(f"{flag}: {root} is not a folder")
    seed_list = list(seeds) if seeds else [seed]
    reports = []
    for one_seed in seed_list:
        study_out = output / f"seed_{one_seed}" if len(seed_list) > 1 else output
        config = StudyConfig(
            output=study_out, preset=preset, seed=one_seed, source_root=source_root, target_root=target_root
        )
        reports.append(run_study(config))
        summary = reports[-1]["summary"]
        click.echo(
            f"seed {one_seed}: "
            + ", ".join(f"{arm} {100 * v:.1f}" for arm, v in summary["miou"].items())
            + f" mIoU -> {study_out / 'report.md'}",
            err=True,
        )
    if len(seed_list) > 1:
        write_seeds_report(output, reports)
        click.echo(f"summary over seeds -> {output / 'report.md'}", err=True)
