"""export-trt --int8-eval through its console script: the mIoU of STEM.onnx and STEM.int8.onnx on a labelled split,
printed and recorded in the sidecar, equal to what evaluate-seg scores for each file; the requests it refuses."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import write_cityscapes
from helpers.int8_exports import SEGMENTER_CITIES, shared_int8_segmenter
from uda_trt.runtime.sidecar import load_sidecar
from uda_trt.train.checkpoints import save_segmenter_checkpoint
from uda_trt.train.networks import ResnetGenerator
from uda_trt.train.segmenters import NORMALIZATION


@pytest.mark.slow
def test_int8_eval_records_both_mious_as_evaluate_seg_scores_them(tmp_path, tmp_path_factory, cli):
    """The shared export (helpers.int8_exports: an untrained LR-ASPP segmenter, export-trt --int8 ... --int8-eval
    ROOT with the default split, val) against evaluate-seg run on each of its two files."""
    folder, result = shared_int8_segmenter(tmp_path_factory)
    assert result.returncode == 0, result.stderr
    seg, root = folder / "seg", folder / "cityscapes"
    recorded = load_sidecar(seg / "best.int8.onnx").validation["int8_onnx"]["evaluation"]
    assert recorded["dataset"] == str(root.resolve()) and recorded["split"] == "val"
    assert recorded["images_scored"] == sum(SEGMENTER_CITIES.values()) and recorded["images_skipped"] == 0

    scored = {}
    for name, artifact in (("fp32", "best.onnx"), ("int8", "best.int8.onnx")):
        out = tmp_path / f"eval-{name}"
        run = cli("evaluate-seg", "--engine", seg / artifact, "--cityscapes", root, "--output", out)
        assert run.returncode == 0, run.stderr
        scored[name] = json.loads((out / "metrics.json").read_text())["mean_iou"]
        assert recorded[f"{name}_miou"] == scored[name]  # the same code path, the same float
    assert scored["fp32"] is not None and scored["int8"] is not None
    change = 100 * (scored["int8"] - scored["fp32"])
    assert recorded["miou_change_points"] == pytest.approx(change)
    expected = f"mIoU FP32 {100 * scored['fp32']:.1f}, INT8 {100 * scored['int8']:.1f} (change {change:+.1f} points)"
    assert [line for line in result.stdout.splitlines() if line.startswith("mIoU")] == [expected]


def test_int8_eval_is_refused_before_any_export(tmp_path, cli, user_error):
    """Without --int8, for a translator, or on data evaluate-seg could not score: one line, exit 2, no file. The
    segmenter checkpoint holds no weights: these requests are refused before any export would read them."""
    segmenter = tmp_path / "seg" / "best.pt"
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    save_segmenter_checkpoint(segmenter, {**config, "normalization": NORMALIZATION}, {})
    torch.manual_seed(1)
    (tmp_path / "run").mkdir()
    generator = tmp_path / "run" / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=4, n_blocks=2).state_dict(), generator)
    root = tmp_path / "cityscapes"  # train (calibration, the default split) and val (evaluation) splits, 64x32
    write_cityscapes(root, {"aachen": 4, "bremen": 4}, size=(64, 32), seed=1, split="train")
    write_cityscapes(root, {"aachen": 3, "bremen": 3}, size=(64, 32), seed=2, split="val")
    int8 = ("--int8", "--calibration", root)
    cases = [
        (segmenter, ("--int8-eval", root), "--int8-eval applies with --int8"),
        (generator, ("--size", "64x32", *int8, "--int8-eval", root), "is a translator checkpoint"),
        (segmenter, (*int8, "--int8-eval", tmp_path / "missing"), "folder not found"),
        (segmenter, (*int8, "--int8-eval", root, "--int8-eval-split", "test"), "split test"),
    ]
    for checkpoint, args, names in cases:
        result = cli("export-trt", checkpoint, "--no-fp16", *args)
        user_error(result, names=names)
        assert "--int8-eval" in result.stderr
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["best.pt"]  # nothing exported
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["latest_net_G_A.pth"]
