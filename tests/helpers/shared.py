"""Expensive fixtures made once per test session, even when pytest-xdist spreads their tests over workers.

`make test` distributes tests with `--dist worksteal`, so the tests of one module may run in two workers, and a
module-scoped fixture that runs a whole study would run twice. `run_once` makes the folder in the session's shared
temporary root under a file lock (the pattern pytest-xdist documents): the first worker makes it, the others wait and
read its JSON-plain result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from filelock import FileLock

_RESULT = ".run-once.json"


def run_once(tmp_path_factory, name: str, make: Callable[[Path], dict]) -> tuple[Path, dict]:
    """(FOLDER, result): `make(FOLDER)` run once per session; its result must be JSON-plain."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every worker of this session
    folder = base / name
    with FileLock(str(base / f"{name}.lock")):
        record = folder / _RESULT
        if record.is_file():
            return folder, json.loads(record.read_text())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = make(folder)
        record.write_text(json.dumps(result))
        return folder, result


def process_record(done: subprocess.CompletedProcess) -> dict:
    """What tests read of a finished CLI run, JSON-plain."""
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def as_process(record: dict) -> SimpleNamespace:
    """`process_record`'s dict with attribute access, as the CompletedProcess it came from."""
    return SimpleNamespace(**record)
