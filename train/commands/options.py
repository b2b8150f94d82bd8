"""Options and steps both trainer commands share: `--workers` (with its old name), `--keep-train-state`, the output
folder check that answers before torch is imported, and the one line and exit code of a run stopped by a signal.
Torch-free, so --help, refusals and --resume of a finished run take a second, not the torch import.

The project's commands call their data-loading workers `--workers` (batch-translate, evaluate-seg, make-synthetic);
the trainers' used to be `--num-workers`, PyTorch's name. It still works, hidden from --help, and giving both with
different values is refused rather than one silently winning.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from uda_trt.runtime.jobs.cli import fold_renamed, renamed_option
from uda_trt.train.run_folder import finished_iteration, refuse_rerun
from uda_trt.train.stopping import TrainingStopped

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
    """This command line as the user typed it, plus --resume (unless already there): how to go on after a stop."""
    args = sys.argv[1:]
    if "--resume" not in args:
        args = [*args, "--resume"]
    return f"{click.get_current_context().command_path} {shlex.join(args)}"


def exit_stopped(stopped: TrainingStopped) -> None:
    """One line on stderr (the state saved, how to continue), then exit with 128 + the signal number."""
    click.echo(
        f"interrupted: {stopped.signal_name}: training state saved at iteration {stopped.iteration} in "
        f"{stopped.state}; continue with: {continue_command()}",
        err=True,
    )
    click.get_current_context().exit(stopped.exit_code)
