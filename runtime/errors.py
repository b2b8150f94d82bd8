"""The two kinds of failure every job distinguishes (docs/contracts.md, "Exit codes").

`UserError`: the user asked for something impossible or gave bad input. Click prints it as one line on stderr
(``Error: <message>``) and exits 2, with no traceback. Messages name the file or flag and the problem.

`SampleError`: one sample of a long job is broken (unreadable, truncated, wrong size). The job logs it, skips the
sample, counts it in its report, and goes on.
"""

from __future__ import annotations

from pathlib import Path

import click


class UserError(click.ClickException):
    """Bad input or an impossible request: one line on stderr, exit code 2."""

    exit_code = 2


class SampleError(Exception):
    """A per-sample fault in a long job: logged with its path, skipped, counted."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem
