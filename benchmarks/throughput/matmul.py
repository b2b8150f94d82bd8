"""The machine's float32 arithmetic rate as ONNX Runtime reaches it: one large MatMul, same threads as the runner.

A convolutional generator cannot run faster than the GEMM kernels its convolutions become, so the GFLOP/s of a
one-node MatMul graph, measured in the same run with the same session options as `runtime.runners`, is the
yardstick the generator's GFLOP/s is compared against (criterion A).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from uda_trt.benchmarks.throughput.measure import RunPolicy, latency_summary, rate, time_runs
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.runners import session_options

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13
OPSET = 17


def matmul_model(m: int, k: int, n: int, seed: int = 0) -> onnx.ModelProto:
    """A (M x K, input) @ B (K x N, constant weight) -> C; B is an initializer, as convolution weights are."""
    weight = np.random.default_rng(seed).standard_normal((k, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(weight, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def measure_matmul(m: int, k: int, n: int, policy: RunPolicy, threads: int | None = None) -> dict:
    """Time the MatMul graph on ONNX Runtime's CPU provider; GFLOP/s = 2 * M * K * N * runs / seconds / 1e9."""
    import onnxruntime as ort

    threads = threads or default_workers()
    model = matmul_model(m, k, n)
    session = ort.InferenceSession(
        model.SerializeToString(), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    a = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
    times = time_runs(lambda: session.run(["c"], {"a": a}), policy)
    macs = m * k * n
    seconds = sum(times)
    return {
        "shape": {"m": m, "k": k, "n": n},
        "macs": macs,
        "intra_op_threads": threads,
        "inter_op_threads": 1,
        "warmup_runs": policy.warmup,
        "runs": len(times),
        "seconds": seconds,
        "runs_per_second": rate(len(times), seconds),
        "gflops": 2 * macs * rate(len(times), seconds) / 1e9,
        "latency_ms": latency_summary(times),
    }
