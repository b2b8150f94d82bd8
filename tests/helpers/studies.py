"""The run-uda smoke study that several test modules read, made once per session (helpers.shared.run_once)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.cli import run_cli
from helpers.shared import process_record, run_once

# The smoke study's own budget, set with the flags a user would (so the flags' bookkeeping is tested too).
SMOKE_BUDGET = ("--cyclegan-iterations", 4, "--segmenter-iterations", 4)


def smoke_command(out: Path) -> list:
    """The smoke study's run-uda command line into OUT."""
    return ["run-uda", "--preset", "smoke", "--output", out, *SMOKE_BUDGET]


def _smoke_study_and_a_rerun(folder: Path) -> dict:
    """The smoke study, then the same command again (inside the maker, so no test changes the shared folder): the
    first report, the first run, the log after it, and the rerun."""
    out = folder / "study"
    result = run_cli(*smoke_command(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    log = (out / "run-uda.log").read_text()
    again = run_cli(*smoke_command(out))  # finished: kept, evaluation redone
    return {"report": report, "first": process_record(result), "log": log, "again": process_record(again)}


def smoke_study(tmp_path_factory) -> tuple[Path, dict]:
    """(FOLDER, record): FOLDER/study holds the finished smoke study (run, then rerun); record holds the first
    run's report ("report"), its process ("first"), its log ("log") and the rerun's process ("again")."""
    return run_once(tmp_path_factory, "uda-smoke", _smoke_study_and_a_rerun)
