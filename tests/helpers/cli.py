"""The console scripts of this venv, run as a user runs them, and the check every one-line user error passes.

The commands that import torch run in processes forked from an interpreter that has imported it already
(helpers.preloaded says what that keeps and what still runs in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.preloaded import run_preloaded, runs_preloaded

BIN = Path(sys.executable).parent


def run_cli(
    name: str, *args: object, timeout: float = 600, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run console script `name` with `args` (any objects, passed as str) as a subprocess, in folder `cwd`, with
    `env` added to this environment; text output captured."""
    if runs_preloaded(name, env):
        done = run_preloaded(BIN, name, [str(arg) for arg in args], timeout, cwd, env)
        if done is not None:
            return done
    return subprocess.run(
        [str(BIN / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
    )


def assert_user_error(result: subprocess.CompletedProcess, *, names: str) -> None:
    """A user mistake: exit 2, no traceback, and one stderr line (click's `Error: ...`) naming `names`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.stderr
    assert names in error_lines[0], (names, error_lines[0])
