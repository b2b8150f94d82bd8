"""Ctrl-C and SIGTERM as one exception, so a long job can keep its finished work and say how to go on.

Cluster schedulers send SIGTERM before they preempt a job, and a person presses Ctrl-C (SIGINT). Inside
`stop_on_signals()` both raise `Interrupted` in the main thread; the job records what is complete and raises
`JobInterrupted`, which click prints as one line and exits with the shell's code for that signal (130, 143).
Bookkeeping that must not be cut in half (an output renamed into place but not yet journalled) runs inside `held()`,
which delays the signal to the end of the block.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import click

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Hold:
    """Main-thread state shared by `held()` and the handler of `stop_on_signals()` (handlers run in that thread)."""

    depth = 0
    pending: int | None = None


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
        if _Hold.depth:
            _Hold.pending = _Hold.pending or signum
            return
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, raise_interrupted) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _Hold.pending = None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Run the block to its end before a SIGINT or SIGTERM caught by `stop_on_signals()` takes effect.

    The signal is remembered and raised as `Interrupted` when the outermost `held()` block ends, so work such as
    "wait for this write, then journal it" is never left half done. Outside `stop_on_signals()` (Python's own
    Ctrl-C handler) it changes nothing. Keep the blocks short: a held signal waits for them.
    """
    _Hold.depth += 1
    try:
        yield
    finally:
        _Hold.depth -= 1
    if _Hold.depth == 0 and _Hold.pending is not None:
        signum, _Hold.pending = _Hold.pending, None
        raise Interrupted(signum)
