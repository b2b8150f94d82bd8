"""run-uda end to end on the smoke preset: the report is complete and consistent with its own parts."""

from __future__ import annotations

import json
import math

import pytest

from uda_trt.benchmarks.presets import PRESETS
from uda_trt.benchmarks.report import gap_closed
from uda_trt.runtime.labels import CLASS_NAMES


def test_gap_closed():
    assert gap_closed(0.1, 0.3, 0.5) == pytest.approx(0.5)
    assert gap_closed(0.1, 0.05, 0.5) == pytest.approx(-0.125)
    assert gap_closed(0.1, 0.3, None) is None
    assert gap_closed(0.5, 0.3, 0.4) is None  # an oracle below source-only leaves no gap to close


@pytest.mark.slow
def test_run_uda_smoke(tmp_path, cli):
    out = tmp_path / "study"
    result = cli("run-uda", "--preset", "smoke", "--output", out)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == {"source_only", "adapted", "oracle"}
    configs = [dict(arm["config"]) for arm in report["arms"].values()]
    for config in configs:
        config.pop("data_root"), config.pop("output_dir")
    assert configs[0] == configs[1] == configs[2], "arms must differ only in their data"
    for arm in report["arms"].values():
        metrics = arm["metrics"]
        assert [c["name"] for c in metrics["per_class"]] == list(CLASS_NAMES)
        assert metrics["images_scored"] == PRESETS["smoke"].synthetic.cityscapes_val
        assert 0.0 <= metrics["mean_iou"] <= 1.0
        assert report["artifact_sha256"][arm["artifact"]]
    miou = report["summary"]["miou"]
    assert miou["adapted"] - miou["source_only"] == pytest.approx(report["summary"]["adapted_minus_source_only"])
    expected_gap = gap_closed(miou["source_only"], miou["adapted"], miou["oracle"])
    if expected_gap is None:
        assert report["summary"]["gap_closed"] is None
    else:
        assert math.isclose(report["summary"]["gap_closed"], expected_gap)
    translate = report["batch_translate"]
    assert translate["images_translated"] == PRESETS["smoke"].synthetic.gta5_count
    assert set(report["stage_seconds"]) >= {"data", "train_cyclegan", "batch_translate", "evaluate_oracle"}
    assert (out / "samples.png").stat().st_size > 0
    markdown = (out / "report.md").read_text()
    for heading in ("Per-class IoU", "Stage times", "samples.png", "source-only", "adapted", "oracle"):
        assert heading in markdown
