"""A runtime-only install (no extras, so no torch) runs batch-translate and evaluate-seg on tiny data."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A fresh venv with `pip install REPO` (base dependencies only)."""
    root = tmp_path_factory.mktemp("base-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return root / "bin"


@pytest.mark.slow
def test_base_install_has_no_torch(base_venv):
    code = "import importlib.util as u; print(u.find_spec('torch') is None and u.find_spec('onnx') is None)"
    result = subprocess.run([str(base_venv / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def _tiny_cityscapes(root: Path) -> Path:
    """Two val images' ground truth and matching label-ID predictions."""
    from PIL import Image

    from runtime.labels import TRAIN_ID_TO_LABEL_ID

    rng = np.random.default_rng(0)
    predictions = root / "predictions"
    for city, stem in (("frankfurt", "frankfurt_000000_000001"), ("lindau", "lindau_000000_000002")):
        gt_dir = root / "cityscapes" / "gtFine" / "val" / city
        image_dir = root / "cityscapes" / "leftImg8bit" / "val" / city
        gt_dir.mkdir(parents=True)
        image_dir.mkdir(parents=True)
        predictions.mkdir(exist_ok=True)
        label_ids = rng.choice(TRAIN_ID_TO_LABEL_ID, size=(16, 32)).astype(np.uint8)
        Image.fromarray(label_ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(label_ids).save(predictions / f"{stem}_pred.png")
    return root


@pytest.mark.slow
def test_base_install_runs_batch_translate_and_evaluate_seg(base_venv, tmp_path, invert_translator):
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(np.full((16, 32, 3), 10, np.uint8)).save(images / "one.png")
    out = tmp_path / "translated"
    subprocess.run(
        [
            str(base_venv / "batch-translate"),
            "--engine",
            str(invert_translator),
            "--input",
            str(images),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "one.png").is_file() and (out / "report.json").is_file()

    data = _tiny_cityscapes(tmp_path / "eval")
    metrics_dir = tmp_path / "metrics"
    subprocess.run(
        [
            str(base_venv / "evaluate-seg"),
            "--predictions",
            str(data / "predictions"),
            "--id-type",
            "labelid",
            "--cityscapes",
            str(data / "cityscapes"),
            "--split",
            "val",
            "--output",
            str(metrics_dir),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert metrics["mean_iou"] == pytest.approx(1.0) and metrics["images_scored"] == 2
