"""The pass/fail criteria of the standard suite: each a ratio (or a difference) measured in one run.

A criterion keeps its operands, so a reader (and the tests) can check that the value is their quotient and the
verdict is the comparison of the value with the threshold. Benchmarks report; tests never assert a speed.
"""

from __future__ import annotations

import math

# Thresholds of issue 4's "Done when"; D's 10 % slack absorbs allocator noise, not growth with dataset size.
THRESHOLDS = {
    "A1": 0.80,  # ORT generator GFLOP/s / ORT float32 MatMul GFLOP/s
    "A2": 0.95,  # end-to-end images/s / engine-only images/s (compute-bound)
    "A3": 1.0,  # end-to-end images/s / reference script images/s (compute-bound)
    "A4": 1,  # max grey-level difference between the two ways' PNGs
    "B1": 0.80,  # pass-through end-to-end images/s / codec limit images/s
    "B2": 1.6,  # small generator end-to-end images/s / reference script images/s
    "C1": 10.0,  # official evaluator seconds / evaluate-seg seconds
    "C2": 0.0,  # max |IoU difference| over the 19 classes
    "D1": 1.10,  # peak RSS on the large dataset / on the small one
}


def ratio_criterion(
    key: str, name: str, numerator: float, denominator: float, numerator_label: str, denominator_label: str
) -> dict:
    """A "value = numerator / denominator >= threshold" criterion (D1: <=, as memory must not grow)."""
    value = numerator / denominator if denominator else math.nan
    op = "<=" if key == "D1" else ">="
    return _verdict(
        {
            "id": key,
            "name": name,
            "kind": "ratio",
            "numerator": numerator,
            "denominator": denominator,
            "numerator_label": numerator_label,
            "denominator_label": denominator_label,
            "value": value,
        },
        op,
    )


def bound_criterion(key: str, name: str, value: float, label: str) -> dict:
    """A "value <= threshold" criterion on a measured difference (grey levels, IoU)."""
    return _verdict({"id": key, "name": name, "kind": "bound", "value_label": label, "value": value}, "<=")


def _verdict(criterion: dict, op: str) -> dict:
    threshold = THRESHOLDS[criterion["id"]]
    value = criterion["value"]
    passed = bool(math.isfinite(value) and (value >= threshold if op == ">=" else value <= threshold))
    return {**criterion, "op": op, "threshold": threshold, "passed": passed}
