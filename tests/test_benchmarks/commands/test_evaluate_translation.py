"""`evaluate-translation` as a user runs it: missing or wrong Inception weights are one-line errors (exit 2), the
FCN-score of an identity translation equals evaluate-seg's mIoU, and a full run writes the contract's metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes

pytest.importorskip("torch_fidelity")


def _images(folder: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_missing_weights_say_where_to_put_them_in_one_line(cli, user_error, tmp_path):
    real, fake = _images(tmp_path / "real", 2, 0), _images(tmp_path / "fake", 2, 1)
    out = tmp_path / "out"
    result = cli("evaluate-translation", "--real", real, "--fake", fake, "--output", out, env={"TORCH_HOME": tmp_path})
    user_error(result, names="--inception-weights")
    assert str(tmp_path / "hub" / "checkpoints") in result.stderr and "pt_inception-2015-12-05" in result.stderr
    assert not out.exists()

    absent = tmp_path / "absent.pth"
    result = cli("evaluate-translation", "--real", real, "--fake", fake, "--output", out, "--inception-weights", absent)
    user_error(result, names=str(absent))


def test_a_file_that_is_not_the_inception_weights_is_refused_in_one_line(cli, user_error, tmp_path):
    import torch

    wrong = tmp_path / "segmenter.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    real, fake = _images(tmp_path / "real", 2, 0), _images(tmp_path / "fake", 2, 1)
    result = cli(
        "evaluate-translation", "--real", real, "--fake", fake, "--output", tmp_path / "o", "--inception-weights", wrong
    )
    user_error(result, names=str(wrong))


def test_nothing_to_compute_and_unpaired_labels_are_usage_errors(cli, user_error, tmp_path, shared_red_segmenter):
    fake = _images(tmp_path / "fake", 2, 1)
    user_error(cli("evaluate-translation", "--fake", fake, "--output", tmp_path / "o"), names="--real")
    # the FCN-score's pairs are checked before the (long) Inception pass: no weights are needed to be told
    labels = _images(tmp_path / "labels", 2, 2)
    (labels / "00.png").rename(labels / "other.png"), (labels / "01.png").unlink()
    result = cli(
        "evaluate-translation",
        "--real",
        fake,
        "--fake",
        fake,
        "--labels",
        labels,
        "--segmenter",
        shared_red_segmenter,
        "--output",
        tmp_path / "o",
        env={"TORCH_HOME": tmp_path},
    )
    user_error(result, names="--labels")


def test_fcn_score_of_an_identity_translation_equals_evaluate_seg(cli, tmp_path, shared_red_segmenter):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 2}, size=(48, 24), seed=3)
    seg_out, fcn_out = tmp_path / "seg", tmp_path / "fcn"
    result = cli("evaluate-seg", "--engine", shared_red_segmenter, "--cityscapes", root, "--output", seg_out)
    assert result.returncode == 0, result.stderr
    result = cli(
        "evaluate-translation",
        "--fake",
        root / "leftImg8bit" / "val",
        "--labels",
        root / "gtFine" / "val",
        "--segmenter",
        shared_red_segmenter,
        "--output",
        fcn_out,
    )
    assert result.returncode == 0, result.stderr
    seg = json.loads((seg_out / "metrics.json").read_text())
    fcn = json.loads((fcn_out / "metrics.json").read_text())["fcn_score"]
    assert fcn["confusion_matrix"] == seg["confusion_matrix"]
    assert fcn["mean_iou"] == seg["mean_iou"] and fcn["images_scored"] == 2
    assert "mIoU" in (fcn_out / "metrics.md").read_text()


@pytest.mark.slow
def test_a_full_run_writes_fid_kid_is_and_the_weights_hash(cli, tmp_path):
    from uda_trt.benchmarks.translation_quality import write_random_inception_weights
    from uda_trt.runtime.sidecar import file_sha256

    weights = write_random_inception_weights(tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    real, fake = _images(tmp_path / "real", 2, 0), _images(tmp_path / "fake", 2, 1)
    out = tmp_path / "out"
    # found in the torch hub cache, as the FID packages leave it
    result = cli("evaluate-translation", "--real", real, "--fake", fake, "--output", out, env={"TORCH_HOME": tmp_path})
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("fid", "kid_mean", "kid_std", "inception_score_mean", "inception_score_std"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert metrics["fid"] > 0
    assert (metrics["real_images"], metrics["fake_images"], metrics["kid_subset_size"]) == (2, 2, 2)
    assert metrics["inception_weights_sha256"] == file_sha256(weights)
    assert "FID" in (out / "metrics.md").read_text()
