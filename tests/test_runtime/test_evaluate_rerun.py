"""evaluate-seg: outputs appear whole or not at all, leftovers of a killed run are cleaned, a rerun gives the same
metrics value for value. Real CLI runs on make-synthetic Cityscapes data with a real ONNX segmenter."""

from __future__ import annotations

import json

# measured, not computed: these differ from run to run by design
TIMING_FIELDS = ("elapsed_s", "images_per_s")


def metrics(out):
    data = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in data.items() if k not in TIMING_FIELDS}


def test_rerun_cleans_leftovers_and_gives_identical_metrics(cli, synthetic, red_segmenter, tmp_path, files):
    root = synthetic / "cityscapes"
    out = tmp_path / "out"
    args = ["--engine", red_segmenter, "--cityscapes", root, "--output", out, "--save-predictions", "--batch-size", 3]
    first = cli("evaluate-seg", *args)
    assert first.returncode == 0, first.stderr
    reference = metrics(out)
    predictions = files(out / "predictions")
    assert reference["images_scored"] == 40 and len(predictions) == 40

    # what a kill leaves behind: hidden temporaries beside metrics.json and among the predictions
    (out / ".metrics.json.partial").write_text('{"mean_iou": 0.')
    city = next(p for p in (out / "predictions").iterdir())
    (city / ".x_pred_labelIds.png.partial").write_bytes(b"\x89PNG")
    again = cli("evaluate-seg", *args)
    assert again.returncode == 0, again.stderr
    assert "removed 2 temporary file(s)" in again.stderr
    assert not list(out.rglob("*.partial"))
    assert metrics(out) == reference
    assert files(out / "predictions") == predictions
    assert (out / "metrics.md").read_text().startswith("# Segmentation metrics")

    # scoring the saved predictions is a second, independent path to the same numbers
    scored = tmp_path / "scored"
    result = cli("evaluate-seg", "--predictions", out / "predictions", "--cityscapes", root, "--output", scored)
    assert result.returncode == 0, result.stderr
    assert metrics(scored)["confusion_matrix"] == reference["confusion_matrix"]
