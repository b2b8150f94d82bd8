"""The report's training curves: CycleGAN losses from train.log (both line formats, resumed runs, lines cut by a kill)
and each segmenter's held-out scores from history.json. The curves of a real study are checked in
commands/test_run_uda.py."""

from __future__ import annotations

import json
from pathlib import Path

from uda_trt.benchmarks.curves import CYCLEGAN_LOSSES, cyclegan_losses, segmenter_curve, study_curves


def loss_text(values: dict[str, float]) -> str:
    return " ".join(f"{name} {values[name]}" for name in CYCLEGAN_LOSSES)


def test_cyclegan_losses_from_both_formats_last_line_per_iteration(tmp_path: Path):
    one = dict.fromkeys(CYCLEGAN_LOSSES, 1.0)
    two = {name: 2.0 + k for k, name in enumerate(CYCLEGAN_LOSSES)}
    lines = [
        '# start iteration 0 of 4: {"iterations": 4}',
        f"iter 1 lr 0.0002 {loss_text(one)} sec/iter 0.210",
        f"iter 2 lr 0.0002 {loss_text(dict.fromkeys(CYCLEGAN_LOSSES, 7.5))[:-2]}"  # cut by a kill, and then
        "2026-11-30 10:00:00,000 INFO uda_trt.train.cyclegan: start at iteration 1 of 4",  # the resumed run's line
        f"2026-11-30 10:00:01,000 INFO uda_trt.train.cyclegan: iteration 2: lr 0.0002 {loss_text(two)}, 0.2 s/it",
        f"2026-11-30 10:00:02,000 INFO uda_trt.train.cyclegan: iteration 1: lr 0.0002 {loss_text(two)}, 0.2 s/it",
    ]
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    curves = cyclegan_losses(tmp_path)
    assert curves["iteration"] == [1, 2]
    assert curves["losses"]["D_A"] == [2.0, 2.0] and curves["losses"]["idt_B"] == [9.0, 9.0]  # last line wins
    assert cyclegan_losses(tmp_path / "missing") == {
        "iteration": [],
        "losses": {name: [] for name in CYCLEGAN_LOSSES},
    }


def test_segmenter_curve_from_history(tmp_path: Path):
    history = {
        "validations": [
            {"iteration": 5, "heldout_miou": 0.25, "train_loss": 2.5, "seconds": 1.0},
            {"iteration": 10, "heldout_miou": None, "train_loss": None, "seconds": 2.0},
        ]
    }
    (tmp_path / "segmenter_adapted").mkdir()
    (tmp_path / "segmenter_adapted" / "history.json").write_text(json.dumps(history))
    assert segmenter_curve(tmp_path / "segmenter_adapted") == {
        "iteration": [5, 10],
        "heldout_miou": [0.25, None],
        "train_loss": [2.5, None],
    }
    curves = study_curves(tmp_path, ["source_only", "adapted"])
    assert curves["segmenters"]["source_only"] == {"iteration": [], "heldout_miou": [], "train_loss": []}
    assert curves["cyclegan"]["iteration"] == []
