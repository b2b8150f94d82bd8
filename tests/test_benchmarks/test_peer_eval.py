"""The peer evaluator of the benchmark scores exactly as evaluate-seg does, on real prediction files."""

from __future__ import annotations

from helpers import write_cityscapes
from uda_trt.benchmarks.throughput.official_eval import compare_iou, make_predictions, run_ours
from uda_trt.benchmarks.throughput.peer_eval import run_peer


def test_the_peer_scores_like_evaluate_seg(tmp_path):
    root, predictions = tmp_path / "cityscapes", tmp_path / "predictions"
    write_cityscapes(root, {"aachen": 3, "bremen": 2}, size=(96, 48))
    assert make_predictions(root, "val", predictions) == 5
    peer = run_peer(root, predictions)
    ours = run_ours(root, predictions, tmp_path / "ours")
    assert peer["images_scored"] == ours["images_scored"] == 5
    assert compare_iou(peer["class_iou"], ours["class_iou"])["identical"]
    assert any(0 < value < 1 for value in peer["class_iou"].values())  # perturbed predictions: real scores
