"""`run-uda`: the whole source-only vs adapted (vs oracle) study in one command, with a report."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import IntListType, setup_logging

PRESET_NAMES = ("demo", "full", "smoke")
STUDY_NAMES = ("translation", "photo-to-label", "label-fraction", "translators")
TRANSLATOR_NAMES = ("none", "cyclegan", "cyclegan-sem", "fda")
DEFAULT_FRACTIONS = (0.0, 0.1, 0.5, 1.0)


def _fractions(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    """--fractions F,F,...: distinct shares in [0, 1], kept in the order given."""
    if value is None:
        return None
    try:
        fractions = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers (F,F,...)") from None
    if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions) or len(set(fractions)) != len(fractions):
        raise click.BadParameter(f"{value!r}: give distinct fractions between 0 and 1, e.g. 0,0.1,0.5,1")
    return fractions


def _translators(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """--translators NAME,NAME,...: distinct names from TRANSLATOR_NAMES, kept in the order given."""
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [name for name in names if name not in TRANSLATOR_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise click.BadParameter(f"{value!r}: give distinct names among {','.join(TRANSLATOR_NAMES)}")
    return names


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
--int8 is not part of that record: adding it to a finished study reuses the FP32 stages and adds the INT8 ones (an
INT8 export is kept when its sidecar records it for the same checkpoint and calibration images; a failed gate is
retried).
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
    "--study",
    type=click.Choice(STUDY_NAMES),
    default="translation",
    help="translation: source-only vs CycleGAN-adapted (vs oracle) segmenters. photo-to-label: pix2pix as a "
    "segmenter (photo -> colour labels) against U-Net and DeepLabV3+ on the same Cityscapes split. label-fraction: "
    "CycleGAN trained jointly with a segmenter against the same segmenter without style transfer, per share of "
    "labelled target images (--fractions). translators: one segmenter per translator (--translators).",
)
@click.option(
    "--fractions",
    callback=_fractions,
    default=None,
    metavar="F,F,...",
    help="With --study label-fraction: shares of labelled target images, dataset size fixed "
    "(0 = source only, 1 = target only). Default: " + ",".join(f"{f:g}" for f in DEFAULT_FRACTIONS) + ".",
)
@click.option(
    "--translators",
    callback=_translators,
    default=None,
    metavar="NAME,...",
    help="With --study translators: the translators compared, among " + ",".join(TRANSLATOR_NAMES) + " (none: the "
    "raw source; cyclegan-sem: CycleGAN with CyCADA's semantic consistency; fda: Fourier Domain Adaptation). "
    "Default: all four.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    default="demo",
    help="Fixed budget: demo (synthetic data, minutes on 2 CPU cores: 9-13 for the translation study, the "
    "others in the README's Studies), full (real-data sizes, a GPU job; label-fraction has none), or smoke "
    "(seconds; checks the plumbing, numbers meaningless).",
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
    help="Train the translator (CycleGAN; pix2pix in the photo-to-label study) for N iterations instead of the "
    "preset's (its linear decay scaled in proportion).",
)
@click.option(
    "--segmenter-iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Train each segmenter for N iterations instead of the preset's (held-out scoring cadence scaled).",
)
@click.option(
    "--int8",
    is_flag=True,
    help="With --study translation: after the FP32 study, also export INT8 ONNX (export-trt --int8) of the adapted "
    "translator (calibrated on the source training images) and of each arm's segmenter (on the target training "
    "images), gates enforced; translate the source with the INT8 translator and score each INT8 segmenter on target "
    "val, and report them beside FP32 (report.json 'int8', report.md). A failed gate is reported, not fatal. Adding "
    "--int8 to a finished study reuses its FP32 stages.",
)
# export.int8's harmful policy, for tests: every artifact fails its gate fast (no sensitivity pass)
@click.option("--int8-keep-float", type=click.Choice(("measured", "none")), default="measured", hidden=True)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(
    ctx: click.Context,
    output: Path,
    study: str,
    fractions: tuple[float, ...] | None,
    translators: tuple[str, ...] | None,
    preset: str,
    seed: int,
    seeds: tuple[int, ...] | None,
    source_root: Path | None,
    target_root: Path | None,
    cyclegan_iterations: int | None,
    segmenter_iterations: int | None,
    int8: bool,
    int8_keep_float: str,
    verbose: bool,
) -> None:
    """Translate source to target style with CycleGAN, train segmenters on raw and translated source, and
    compare them on target val.

    Synthetic data (the default) adds an oracle trained on target train, so the report can say which fraction of
    the source-only-to-oracle gap the translation closes. With --source and --target every command runs on the
    real datasets instead; the oracle is left out.
    """
    from uda_trt.benchmarks.inputs import check_paired_inputs, check_study_inputs
    from uda_trt.benchmarks.report import write_seeds_report
    from uda_trt.benchmarks.uda import StudyConfig, full_preset_cpu_warning

    setup_logging(verbose)
    if fractions is not None and study != "label-fraction":
        raise UserError("--fractions applies to --study label-fraction only")
    if translators is not None and study != "translators":
        raise UserError("--translators applies to --study translators only")
    if int8 and study != "translation":
        raise UserError("--int8 applies to --study translation only")
    if seeds and study != "translation":
        raise UserError("--seeds applies to --study translation only; run one study per --seed instead")
    if study == "photo-to-label":
        if source_root is not None:
            raise UserError(
                "--study photo-to-label learns from Cityscapes photo/label pairs: give --target CITYSCAPES_ROOT "
                "alone, or neither root for synthetic data"
            )
    elif (source_root is None) != (target_root is None):
        raise UserError("--source and --target go together: give both dataset roots, or neither for synthetic data")
    if study == "label-fraction" and fractions is None:
        fractions = DEFAULT_FRACTIONS
    if study == "translators" and translators is None:
        translators = TRANSLATOR_NAMES
    if seeds and ctx.get_parameter_source("seed") is not ParameterSource.DEFAULT:
        raise UserError(
            f"--seed {seed} and --seeds {','.join(map(str, seeds))}: give one (--seeds runs one study per seed)"
        )
    # before any work: a wrong root must not wait for training
    if study == "photo-to-label" and target_root is not None:
        check_paired_inputs(target_root)
    elif source_root is not None:
        check_study_inputs(source_root, target_root)
    seed_list = list(seeds) if seeds else [seed]
    configs = [
        StudyConfig(
            output=output / f"seed_{one_seed}" if len(seed_list) > 1 else output,
            study=study,
            fractions=fractions,
            translators=translators,
            preset=preset,
            seed=one_seed,
            source_root=source_root,
            target_root=target_root,
            cyclegan_iterations=cyclegan_iterations,
            segmenter_iterations=segmenter_iterations,
            int8=int8,
            int8_keep_float=int8_keep_float,
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
        if "int8" in reports[-1]:
            from uda_trt.benchmarks.int8_study import int8_summary_line

            click.echo(f"seed {config.seed}: {int8_summary_line(reports[-1]['int8'])}", err=True)
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
