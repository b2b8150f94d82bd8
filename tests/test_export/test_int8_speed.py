"""The INT8 speed pass's confirmation compares only the kernels two profiles do not share (export/int8_speed.py).

ONNX Runtime numbers the nodes it creates (`NAME_token_N`) in creation order, so making one layer float shifts the
number of every fused layer after it; those must still match, or every layer would count as changed and the
comparison would be as noisy as timing the whole model. The profiles here are written in ONNX Runtime's profile
format with made-up times; test_int8.py runs the pass on real profiles."""

from __future__ import annotations

from uda_trt.export.int8_speed import differing_kernels, run_kernels

SUSPECT = "/out/Conv"


def profile(runs: list[list[tuple[str, str, list[int], float]]]) -> list[dict]:
    """ONNX Runtime profile events: one `model_run` per list of (kernel name, op type, output shape, microseconds),
    its kernels back to back, with a session event in between that is not a kernel."""
    events, now = [], 0
    for kernels in runs:
        start = now
        for name, op, shape, microseconds in kernels:
            args = {"op_name": op, "input_type_shape": [{"float": [1, 8, 4, 4]}], "output_type_shape": [{"x": shape}]}
            events.append({"cat": "Node", "name": f"{name}_fence_before", "ts": now, "dur": 0, "args": {}})
            events.append({"cat": "Node", "name": f"{name}_kernel_time", "ts": now, "dur": microseconds, "args": args})
            now += microseconds
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": now - start + 10})
        now += 100
    return events


QUANTIZED = [
    ("/body/Conv_token_7", "QLinearConv", [1, 4, 4, 8], 500),
    ("Transpose_token_8", "Transpose", [1, 8, 4, 4], 20),
    ("Transpose_token_9", "Transpose", [1, 8, 4, 4], 20),
    ("/out/Conv_token_10", "QLinearConv", [1, 4, 4, 3], 300),
    ("/out/Conv_output_0_DequantizeLinear", "DequantizeLinear", [1, 3, 4, 4], 30),
    ("/tail/Tanh", "Tanh", [1, 3, 4, 4], 5),
]
FLOAT = [
    ("/body/Conv_token_6", "QLinearConv", [1, 4, 4, 8], 510),
    ("Transpose_token_7", "Transpose", [1, 8, 4, 4], 25),
    ("ReorderInput", "ReorderInput", [1, 8, 4, 4], 15),
    ("/out/Conv_output_0_nchwc", "Conv", [1, 8, 4, 4], 100),
    ("/tail/Tanh", "Tanh", [1, 3, 4, 4], 5),
]


def names(keys) -> set[str]:
    return {name for name, _, _ in keys}


def test_runs_are_split_by_model_run_and_kernels_keyed_by_name_op_and_shapes():
    runs = run_kernels(profile([QUANTIZED, [(name, op, shape, 2 * us) for name, op, shape, us in QUANTIZED]]))
    assert [round(seconds * 1e6) for seconds, _ in runs] == [885, 1760]
    for scale, (_, kernels) in zip((1, 2), runs, strict=True):
        assert sorted(kernels.values()) == sorted(scale * us for *_, us in QUANTIZED)
        assert {(name, op) for name, op, _ in kernels} == {(name, op) for name, op, _, _ in QUANTIZED}


def test_renumbered_layers_match_and_only_what_changed_is_compared():
    compared = differing_kernels(run_kernels(profile([QUANTIZED])), run_kernels(profile([FLOAT])), SUSPECT)
    # /body/Conv is the same QLinearConv under a shifted number; /tail/Tanh is untouched
    assert names(compared["quantized"]) == {
        "Transpose_token_8",  # two Transposes of that shape against one: all of that kind compared
        "Transpose_token_9",
        "/out/Conv_token_10",
        "/out/Conv_output_0_DequantizeLinear",
    }
    assert names(compared["float"]) == {"Transpose_token_7", "ReorderInput", "/out/Conv_output_0_nchwc"}


def test_the_suspect_is_compared_even_when_both_sides_run_it_alike():
    """An unfused suspect (a float Conv fed by DequantizeLinear) keeps its name, op and shapes in both models."""
    same = [("/out/Conv", "Conv", [1, 3, 4, 4], 300), ("/tail/Tanh", "Tanh", [1, 3, 4, 4], 5)]
    compared = differing_kernels(run_kernels(profile([same])), run_kernels(profile([same])), SUSPECT)
    assert names(compared["quantized"]) == names(compared["float"]) == {"/out/Conv"}
