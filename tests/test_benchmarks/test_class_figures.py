"""The per-class figures and the index page on known inputs: row normalisation, what the page links."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from uda_trt.benchmarks.class_figures import row_normalised, write_class_figures
from uda_trt.benchmarks.html_index import html_table, write_index
from uda_trt.runtime.labels import CLASS_NAMES


def _metrics(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 50, (19, 20))
    matrix[np.arange(19), np.arange(19)] += 400  # mostly right
    matrix[5] = 0  # a class absent from the ground truth
    iou = [None if c == 5 else float(rng.random()) for c in range(19)]
    per_class = [{"name": name, "iou": value} for name, value in zip(CLASS_NAMES, iou, strict=True)]
    return {"confusion_matrix": matrix.tolist(), "per_class": per_class}


def test_rows_are_shares_of_their_class_and_empty_rows_stay_zero():
    shares = row_normalised(np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]]))
    np.testing.assert_allclose(shares, [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])


def test_figures_decode_and_the_index_links_only_what_exists(tmp_path: Path):
    arms = {"a": {"metrics": _metrics(0)}, "b": {"metrics": _metrics(1)}}
    paths = write_class_figures(tmp_path, arms, {"a": "arm A"})
    assert [p.name for p in paths] == ["per_class_iou.png", "confusion_a.png", "confusion_b.png"]
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[0] > 300 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    (tmp_path / "report.md").write_text("x")
    page = write_index(
        tmp_path,
        "T <1>",
        "intro & more",
        [("Scores", html_table(["arm", "mIoU"], [["<a>", "1.0"]]))],
        [(p.name, "caption") for p in paths] + [("missing.png", "never rendered"), ("../escape.png", "outside")],
    ).read_text()
    targets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert sorted(set(targets)) == sorted([p.name for p in paths] + ["report.md"])
    assert "&lt;a&gt;" in page and "T &lt;1&gt;" in page and "<a>" not in page.replace("<a href", "")
