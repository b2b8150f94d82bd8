"""Ctrl-C and SIGTERM as one exception, so a long job can keep its finished work and say how to go on.

Cluster schedulers send SIGTERM before they preempt a job, and a person presses Ctrl-C (SIGINT). Inside
`stop_on_signals()` both raise `Interrupted` in the main thread; the job records what is complete and raises
`JobInterrupted`, which click prints as one line and exits with the shell's code for that signal (130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import click

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `exit_code` is 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class JobInterrupted(click.ClickException):
    """A job stopped by a signal after keeping its finished work: one line on stderr, exit 128 + signal."""

    def __init__(self, message: str, exit_code: int = 128 + signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return f"interrupted: {self.message}"

    def show(self, file=None) -> None:  # no "Error:" prefix: stopping on request is not a failure of the job
        click.echo(self.format_message(), err=True, file=file)


def exit_code_of(exc: BaseException) -> int:
    """The exit code for an interruption: 128 + signal for `Interrupted`, 130 for a plain KeyboardInterrupt."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise `Interrupted` on SIGINT and SIGTERM while inside; previous handlers are restored on exit.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum: int, _frame) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, raise_interrupted) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
