"""Stopping a training run on Ctrl-C or SIGTERM at the end of an iteration, with its training state saved.

Cluster schedulers send SIGTERM before they preempt a job, and a person presses Ctrl-C (SIGINT). Killing the
trainer there would lose every iteration since the last periodic save (hours with `--save-every 5000`). Inside
`StopRequest()` the first of those signals only sets a flag and prints one notice; the training loop looks at the
flag after each iteration, saves a training state (the kind --resume reads) and raises `TrainingStopped`, which the
command turns into one line and the shell's exit code for that signal (128 + signal: 130, 143). A second signal stops
at once without saving: every file is written atomically, so nothing is left half-written under its name.

DataLoader workers ignore both signals (`ignore_stop_signals`): Ctrl-C reaches the terminal's whole process group and
a scheduler signals every process of a job, and a worker that died there would fail the iteration the main process
is finishing. Workers end when their loader shuts down, or when torch's watchdog sees the main process gone.

Torch-free, so the commands import it before paying for torch.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """A run stopped on `signum` after saving its training state at `iteration` into `state`."""

    def __init__(self, signum: int, iteration: int, state: Path) -> None:
        self.signum, self.iteration, self.state = signum, iteration, Path(state)
        super().__init__(f"{self.signal_name}: training state saved at iteration {iteration} in {self.state}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, what a shell reports for a job ended by that signal."""
        return 128 + self.signum


class StopRequest:
    """While entered (in the main thread), SIGINT and SIGTERM ask the training loop to stop after the iteration in
    progress: `signum` holds the first one (None until then). A second one exits at once with 128 + its number.
    Previous handlers are restored on exit; outside the main thread, where Python cannot install handlers, it never
    asks to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return "no signal" if self.signum is None else signal.Signals(self.signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            # os.write, not print or logging: this runs between two bytecodes of the main thread, which may be
            # inside a write to the same stream.
            _notice(f"{name}: finishing this iteration, then saving the training state (send it again to stop now)")
            return
        _notice(f"{name} again: stopping now, without saving")
        raise SystemExit(128 + signum)


def _notice(text: str) -> None:
    """One line on stderr, on a line of its own when stderr is a terminal showing a progress bar."""
    prefix = "\n" if os.isatty(2) else ""
    os.write(2, f"{prefix}{text}\n".encode())


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader `worker_init_fn`: the main process alone decides when to stop (module docstring)."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
