"""export.parity: label agreement counts only the pixels the reference decided; near-ties are reported apart."""

from __future__ import annotations

import numpy as np
import pytest

from uda_trt.export.parity import compare, relative_margins


def _logits(height: int = 4, width: int = 5) -> np.ndarray:
    """3 classes; class 0 wins everywhere by 2.0, except pixel (0, 0), where class 1 trails it by a hair."""
    logits = np.zeros((3, height, width), np.float32)
    logits[0] = 2.0
    logits[1, 0, 0] = 2.0 - 1e-4
    return logits


def test_margins_are_the_lead_of_the_best_class_in_units_of_the_scores_spread():
    logits = _logits()
    margins = relative_margins(logits)
    assert margins.shape == (4, 5)
    assert margins[0, 0] == pytest.approx(1e-4 / logits.std(), rel=1e-3)
    assert np.all(margins.ravel()[1:] == pytest.approx(2.0 / logits.std()))
    assert np.allclose(relative_margins(10 * logits), margins, rtol=1e-2)  # the same decisions at any logit scale
    assert np.isinf(relative_margins(logits[:1])).all()  # one class: nothing can tie


def test_flips_at_near_ties_are_left_out_and_reported():
    reference = [np.zeros((4, 5), np.uint8)]
    ties = [relative_margins(_logits()) < 0.02]
    flipped_at_tie = reference[0].copy()
    flipped_at_tie[0, 0] = 1
    report = compare("segment", reference, [flipped_at_tie], required=0.999, ties=ties)
    assert report.passed and report.fraction == 1.0 and report.near_ties == pytest.approx(1 / 20)
    assert "5.000% near-ties left out" in report.summary()
    assert not compare("segment", reference, [flipped_at_tie], required=0.999).passed  # counted without ties

    flipped_decided = reference[0].copy()
    flipped_decided[3, 4] = 2
    report = compare("segment", reference, [flipped_decided], required=0.999, ties=ties)
    assert not report.passed and report.fraction == pytest.approx(18 / 19)
    assert report.to_dict()["near_ties"] == pytest.approx(0.05)


def test_one_mask_per_output():
    with pytest.raises(ValueError, match="one near-tie mask per output"):
        compare("segment", [np.zeros((2, 2), np.uint8)] * 2, [np.zeros((2, 2), np.uint8)] * 2, 0.9, ties=[])
