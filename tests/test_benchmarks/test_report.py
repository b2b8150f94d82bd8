"""What run-uda's report says where a figure is n/a, and the smoke preset's warning in the report over seeds. The
report of a real study is checked in commands/test_run_uda.py."""

from __future__ import annotations

import json
from pathlib import Path

from uda_trt.benchmarks.report import PLUMBING_ONLY, gap_closed_na_reason, write_seeds_report


def test_each_reason_for_no_gap_closed_is_said():
    assert "there is no oracle arm" in gap_closed_na_reason({"source_only": 0.1, "adapted": 0.2})
    below = gap_closed_na_reason({"source_only": 0.3, "adapted": 0.2, "oracle": 0.25})
    assert below.startswith("n/a: the oracle (25.0) did not beat source-only (30.0)")
    assert "undefined" in gap_closed_na_reason({"source_only": 0.3, "adapted": 0.2, "oracle": float("nan")})


def seed_report(seed: int, preset: str, gap: float | None) -> dict:
    """What write_seeds_report reads of one seed's report."""
    miou = {"source_only": 0.2, "adapted": 0.25}
    return {
        "study": {"seed": seed, "preset": preset},
        "arms": dict.fromkeys(miou, {}),
        "summary": {"miou": miou, "gap_closed": gap, "adapted_minus_source_only": 0.05},
    }


def test_the_report_over_seeds_explains_its_gap_and_warns_for_smoke(tmp_path: Path):
    payload = write_seeds_report(tmp_path, [seed_report(0, "smoke", None), seed_report(1, "smoke", None)])
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.splitlines()[2] == PLUMBING_ONLY["smoke"]
    assert "Mean fraction of the gap closed: n/a.\n\nn/a: no seed had a gap to close" in markdown
    assert payload["summary"]["gap_closed_mean"] is None
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["gap_closed_mean"] is None

    write_seeds_report(tmp_path, [seed_report(0, "demo", 0.5), seed_report(1, "demo", None)])
    markdown = (tmp_path / "report.md").read_text()
    assert "Smoke preset" not in markdown and "The mean is over the 1 of 2 seeds with a gap to close." in markdown
