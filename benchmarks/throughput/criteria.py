"""The pass/fail criteria of the standard suite: each a ratio (or a difference) measured in one run.

A criterion keeps its operands, so a reader (and the tests) can check that the value is their quotient and the
verdict is the comparison of the value with the threshold. Benchmarks report; tests never assert a speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uda_trt.benchmarks.throughput.records import MatMulRate
    from uda_trt.benchmarks.throughput.results import CodecBound, ComputeBound, Evaluation, Int8Compute, Memory

# Thresholds of issue 4's "Done when" (E: issue 21's); D's 10 % slack absorbs allocator noise, not growth with
# dataset size.
THRESHOLDS = {
    "A1": 0.80,  # ORT generator GFLOP/s / ORT float32 MatMul GFLOP/s
    "A2": 0.95,  # end-to-end images/s / engine-only images/s (compute-bound)
    "A3": 1.0,  # end-to-end images/s / reference script images/s (compute-bound)
    "A4": 1,  # max grey-level difference between the two ways' PNGs
    "A5": 1.3,  # small job (4 images, default options): batch-translate images/s / reference script images/s
    "A6": 0.90,  # small job images/s / the compute-bound job's images/s (issue 23)
    "B1": 0.80,  # pass-through end-to-end images/s / codec limit images/s
    "B2": 1.6,  # small generator end-to-end images/s / reference script images/s
    "C1": 10.0,  # official evaluator seconds / evaluate-seg seconds
    "C2": 0.0,  # max |IoU difference| over the 19 classes
    "C3": 2.0,  # peer evaluator seconds / evaluate-seg seconds (issue 23)
    "C4": 0.0,  # max |IoU difference| between the peer and evaluate-seg
    "D1": 1.10,  # peak RSS on the large dataset / on the small one
    # Issue 21's "Done when": INT8 (export-trt --int8) against the same-run FP32 ONNX, compute-bound ResNet-9
    "E1": 1.8,  # INT8 engine-only images/s / FP32 engine-only images/s (same frames, batch and policy)
    "E2": 1.6,  # INT8 batch-translate images/s / FP32 batch-translate images/s (the same job)
}


@dataclass(frozen=True)
class RatioCriterion:
    """value = numerator / denominator, compared with the threshold by `op`."""

    id: str
    name: str
    kind: str = field(default="ratio", init=False)
    numerator: float
    denominator: float
    numerator_label: str
    denominator_label: str
    value: float
    op: str
    threshold: float
    passed: bool


@dataclass(frozen=True)
class BoundCriterion:
    """A measured difference (grey levels, IoU) that must stay at or below the threshold."""

    id: str
    name: str
    kind: str = field(default="bound", init=False)
    value_label: str
    value: float
    op: str
    threshold: float
    passed: bool


Criterion = RatioCriterion | BoundCriterion


def ratio_criterion(
    key: str, name: str, numerator: float, denominator: float, numerator_label: str, denominator_label: str
) -> RatioCriterion:
    """A "value = numerator / denominator >= threshold" criterion (D1: <=, as memory must not grow)."""
    value = numerator / denominator if denominator else math.nan
    op = "<=" if key == "D1" else ">="
    passed = _passes(value, op, THRESHOLDS[key])
    return RatioCriterion(
        key, name, numerator, denominator, numerator_label, denominator_label, value, op, THRESHOLDS[key], passed
    )


def bound_criterion(key: str, name: str, value: float, label: str) -> BoundCriterion:
    """A "value <= threshold" criterion on a measured difference (grey levels, IoU)."""
    return BoundCriterion(key, name, label, value, "<=", THRESHOLDS[key], _passes(value, "<=", THRESHOLDS[key]))


def _passes(value: float, op: str, threshold: float) -> bool:
    return bool(math.isfinite(value) and (value >= threshold if op == ">=" else value <= threshold))


def suite_criteria(
    matmul: MatMulRate,
    compute: ComputeBound,
    codec: CodecBound,
    evaluation: Evaluation | None,
    memory: Memory,
    int8: Int8Compute,
) -> list[Criterion]:
    """Every criterion of a suite from its stages' results (C1-C4 only where the evaluation ran)."""
    engine = compute.engine_only
    found: list[Criterion] = [
        ratio_criterion(
            "A1",
            "compute-bound: ONNX Runtime generator GFLOP/s vs float32 MatMul GFLOP/s",
            engine.gflops,
            matmul.gflops,
            "generator GFLOP/s (engine only)",
            "MatMul GFLOP/s",
        ),
        ratio_criterion(
            "A2",
            "compute-bound: end-to-end batch-translate vs engine-only images/s",
            compute.batch_translate.images_per_second,
            engine.images_per_second,
            "end-to-end images/s",
            "engine-only images/s",
        ),
        ratio_criterion(
            "A3",
            "compute-bound: end-to-end batch-translate vs the reference script",
            compute.batch_translate.images_per_second,
            compute.reference.images_per_second,
            "batch-translate images/s",
            "reference images/s",
        ),
        bound_criterion(
            "A4",
            "compute-bound: outputs of both ways within 1 grey level",
            compute.output_comparison.max_abs_diff,
            "max |difference| (grey levels)",
        ),
        ratio_criterion(
            "A5",
            f"small job ({compute.small_job.images} images, default options): batch-translate vs the reference script",
            compute.small_job.images_per_second,
            compute.small_reference.images_per_second,
            "batch-translate images/s",
            "reference images/s",
        ),
        ratio_criterion(
            "A6",
            f"small job's per-image rate vs the {compute.batch_translate.images}-image job's",
            compute.small_job.images_per_second,
            compute.batch_translate.images_per_second,
            "small job images/s",
            "compute-bound job images/s",
        ),
        ratio_criterion(
            "B1",
            "codec-bound: pass-through end-to-end vs the codec limit",
            codec.passthrough.images_per_second,
            codec.codec_limit.limit_images_per_second,
            "pass-through images/s",
            "codec limit images/s",
        ),
        ratio_criterion(
            "B2",
            f"codec-bound: {codec.model} end-to-end vs the reference script",
            codec.batch_translate.images_per_second,
            codec.reference.images_per_second,
            "batch-translate images/s",
            "reference images/s",
        ),
    ]
    if evaluation is not None:
        found += [
            ratio_criterion(
                "C1",
                "evaluate-seg --predictions vs the official evaluator (speed-up)",
                evaluation.official.seconds,
                evaluation.ours.seconds,
                "official seconds",
                "evaluate-seg seconds",
            ),
            bound_criterion(
                "C2",
                "evaluate-seg per-class IoU identical to the official evaluator's",
                evaluation.comparison.max_abs_diff,
                "max |IoU difference|",
            ),
            ratio_criterion(
                "C3",
                "evaluate-seg --predictions vs the straightforward NumPy peer, one process per core (speed-up)",
                evaluation.peer.seconds,
                evaluation.ours.seconds,
                "peer seconds",
                "evaluate-seg seconds",
            ),
            bound_criterion(
                "C4",
                "evaluate-seg per-class IoU identical to the peer's",
                evaluation.comparison_peer.max_abs_diff,
                "max |IoU difference|",
            ),
        ]
    found.append(
        ratio_criterion(
            "D1",
            f"batch-translate peak RSS does not grow: {memory.large.images} vs {memory.small.images} images",
            memory.large.peak_rss_mb,
            memory.small.peak_rss_mb,
            "peak RSS (large) MiB",
            "peak RSS (small) MiB",
        )
    )
    found += [
        ratio_criterion(
            "E1",
            f"INT8 {int8.model}: engine-only vs the same-run FP32 ONNX",
            int8.engine_only.images_per_second,
            compute.engine_only.images_per_second,
            "INT8 engine-only images/s",
            "FP32 engine-only images/s",
        ),
        ratio_criterion(
            "E2",
            "INT8: end-to-end batch-translate vs FP32 end to end, the same job",
            int8.batch_translate.images_per_second,
            compute.batch_translate.images_per_second,
            "INT8 end-to-end images/s",
            "FP32 end-to-end images/s",
        ),
    ]
    return found
