"""Options and steps the trainer commands share: `--workers` (with its old name), `--keep-train-state`, the output
folder check that answers before torch is imported, and the one line and exit code of a run stopped by a signal;
for the GAN trainers (train-cyclegan, train-pix2pix) also their common options and the body of their command.
Torch-free, so --help, refusals and --resume of a finished run take a second, not the torch import.

The project's commands call their data-loading workers `--workers` (batch-translate, evaluate-seg, make-synthetic);
the trainers' used to be `--num-workers`, PyTorch's name. It still works, hidden from --help, and giving both with
different values is refused rather than one silently winning.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import fold_renamed, renamed_option, setup_logging
from uda_trt.train.launch_env import launch_env, quiet_other_ranks
from uda_trt.train.run_folder import finished_iteration, refuse_rerun
from uda_trt.train.stopping import StopRequest, TrainingStopped

log = logging.getLogger(__name__)

F = Callable[..., Any]

WORKERS_HELP = "Data-loading worker processes (PyTorch DataLoader workers; 0 = load in the training process)."
KEEP_STATE_HELP = (
    "Keep latest_train_state.pt and previous_train_state.pt when the run finishes (they are removed by default: "
    "the weights are in the checkpoints); needed only to train a finished run further with a larger --iterations."
)


def workers_options(func: F) -> F:
    """`--workers N` (parameter `num_workers`) and the hidden old spelling `--num-workers N`; see `resolve_workers`."""
    return renamed_option(
        "--workers",
        "--num-workers",
        "num_workers",
        type=click.IntRange(min=0),
        default=2,
        show_default=True,
        help=WORKERS_HELP,
    )(func)


def resolve_workers(options: dict[str, Any]) -> None:
    """Fold the old `--num-workers` into `num_workers` in `options` (click's parameters of the current command);
    both given with different values is a usage error (exit 2)."""
    fold_renamed(options)


def keep_train_state_option(func: F) -> F:
    """`--keep-train-state`: keep the training states of a finished run."""
    return click.option("--keep-train-state", is_flag=True, help=KEEP_STATE_HELP)(func)


def finished_already(
    output: Path,
    resume: bool,
    fmt: str,
    options: Mapping[str, Any],
    flags: Mapping[str, str],
) -> bool:
    """The output folder checks, before torch: without --resume a folder holding a run is refused (UserError); with
    it, True when the folder holds a finished run that this command's settings (`options`) would not train further
    (logged as the trainer logs it). The trainers check the same again for callers of their functions (run-uda)."""
    if not resume:
        refuse_rerun(output)
        return False
    if options.get("iterations") is None:  # resolved from the dataset size by the trainer
        return False
    settings = {field: options[field] for field in flags if field in options}
    done = finished_iteration(output, fmt, settings, flags, options["iterations"])
    if done is None:
        return False
    log.info("%s: already trained to iteration %d; nothing to do", output, done)
    return True


def continue_command() -> str:
    """This command line as the user typed it, plus --resume (unless already there): how to go on after a stop
    (under torchrun, started by the same torchrun command)."""
    args = sys.argv[1:]
    if "--resume" not in args:
        args = [*args, "--resume"]
    command = f"{click.get_current_context().command_path} {shlex.join(args)}"
    return f"torchrun (as before) {command}" if launch_env().distributed else command


def exit_stopped(stopped: TrainingStopped) -> None:
    """One line on stderr (the state saved, how to continue; under torchrun from rank 0 only), then exit with 128 +
    the signal number."""
    if launch_env().main:
        click.echo(
            f"interrupted: {stopped.signal_name}: training state saved at iteration {stopped.iteration} in "
            f"{stopped.state}; continue with: {continue_command()}",
            err=True,
        )
    click.get_current_context().exit(stopped.exit_code)


# --- the GAN trainers ----------------------------------------------------------------------------------------------

GAN_RESUME_EPILOG = """\b
Ctrl-C or SIGTERM (what schedulers send before preempting a job) finishes the iteration in progress, saves the
training state, prints the command that continues the run and exits 130 / 143; a second signal stops at once
without saving. A killed or interrupted run is continued by the same command plus --resume: it restarts from the
last saved state (every --save-every iterations, or the one saved on the signal), redoes the iterations since,
and on the CPU ends with the same bytes as an uninterrupted run. A damaged latest state falls back to the previous
one (one warning line). --resume of a finished run returns at once. Without --resume an --output that holds a run
is refused, so a run is never overwritten by accident.
"""


DISTRIBUTED_EPILOG = """\b
Several GPUs or machines: start the command with torchrun, e.g. torchrun --nproc_per_node 4 --standalone
.venv/bin/COMMAND ...: one process per GPU, each with its share of every epoch, --batch-size per process,
rank 0 alone writing files and logging (README, "Several GPUs or machines").
"""


def gan_output_options(func: F) -> F:
    """`--output` and the two network widths `--ngf` and `--ndf`, as train-cyclegan and train-pix2pix take them."""
    decorators = [
        click.option(
            "--output",
            required=True,
            type=click.Path(path_type=Path, file_okay=False),
            help="Folder for checkpoints, samples, config.json and train.log.",
        ),
        click.option(
            "--ngf", type=click.IntRange(min=1), default=64, help="Generator width (filters of the first conv)."
        ),
        click.option("--ndf", type=click.IntRange(min=1), default=64, help="Discriminator width."),
    ]
    return _stacked(func, decorators)


threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch intra-op threads (CPU math in the training process). Default: OMP_NUM_THREADS when set, else the "
    "cores this process may use. CPU results depend on it: resume a run with the same count.",
)


def _stacked(func: F, decorators: list[Callable[[F], F]]) -> F:
    """`func` under `decorators`, the first one on top (so its option comes first in --help)."""
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def gan_run_options(func: F) -> F:
    """The options train-cyclegan and train-pix2pix share (schedule, resume, cadence, workers, device, logging), in
    their --help order; each command adds its data, network and crop options above them."""
    decorators = [
        click.option(
            "--iterations",
            type=click.IntRange(min=1),
            default=None,
            help="Total iterations. Default: 200 epochs' worth, as the reference (100 constant + 100 decay).",
        ),
        click.option(
            "--decay-iterations",
            type=click.IntRange(min=0),
            default=None,
            help="Decay the learning rate linearly to zero over the last N iterations. Default: half of them.",
        ),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, help="Adam learning rate."),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the run in --output from its training state (start it if there is none yet).",
        ),
        click.option(
            "--sample-every", type=click.IntRange(min=1), default=400, help="Write a sample grid every N iterations."
        ),
        click.option(
            "--save-every",
            type=click.IntRange(min=1),
            default=5000,
            help="Write ITER_net_*.pth, latest_net_*.pth and the training state every N iterations (and at the end).",
        ),
        click.option(
            "--log-every", type=click.IntRange(min=1), default=100, help="Log the losses (train.log, stderr) every N."
        ),
        workers_options,
        threads_option,
        click.option(
            "--device",
            type=click.Choice(["auto", "cpu", "cuda"]),
            default="auto",
            help="Where to train; auto uses a CUDA GPU when there is one.",
        ),
        keep_train_state_option,
        click.option("-v", "--verbose", is_flag=True, help="Log debug messages."),
    ]
    return _stacked(func, decorators)


def distributed_session(device: str) -> contextlib.AbstractContextManager:
    """Under torchrun, the run's process group (train.distributed.process_group, which loads torch); else nothing,
    so a plain run imports torch only where its trainer does (train-pix2pix checks its pairs first)."""
    if not launch_env().distributed:
        return contextlib.nullcontext()
    from uda_trt.train.distributed import process_group

    return process_group(device)


def run_gan_command(
    options: dict[str, Any],
    finished_format: str,
    fixed: Mapping[str, str],
    train: Callable[..., Path],
    written: Callable[[Path], str],
) -> None:
    """The body of a GAN trainer command, given its click `options`: log setup, the output folder checks before
    torch, then `train(options, resume=, keep_train_state=, stop=)` (which imports torch and returns the output
    folder) under a StopRequest, in the process group of a torchrun job when there is one (train.distributed).
    Prints `written(output)` at the end (rank 0); a failed run (NaN losses) is one line and exit 1, a stopped one
    exits 128 + the signal (`exit_stopped`)."""
    verbose = options.pop("verbose")
    setup_logging(verbose)
    quiet_other_ranks(verbose)
    resume, keep_train_state = options.pop("resume"), options.pop("keep_train_state")
    resolve_workers(options)
    output = options["output"]
    if finished_already(output, resume, finished_format, options, fixed):
        if launch_env().main:
            click.echo(written(output))
        return
    if options["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available to PyTorch on this machine")
    try:
        with StopRequest() as stop, distributed_session(options["device"]):
            output = train(options, resume=resume, keep_train_state=keep_train_state, stop=stop)
    except TrainingStopped as stopped:
        exit_stopped(stopped)
    except RuntimeError as exc:
        # imported here: its module needs torch, which `train` has loaded by now (bad data is refused before it)
        from uda_trt.train.gan_training import TrainingFailed

        if isinstance(exc, TrainingFailed):
            raise click.ClickException(str(exc)) from None
        raise
    if launch_env().main:
        click.echo(written(output))
