"""INT8's speed pass: the quantized layers that make the artifact slower on this machine's CPU stay float, by
measurement.

Not every layer runs faster quantized. On ONNX Runtime's CPU provider a QLinearConv with few output channels (a
translator's last 7x7 conv, 64 -> 3 channels) took 2.2x its float time, and a ConvTranspose that int8.py could not
rewrite as phase Convs (transpose_phases) is not fused at all: it dequantizes and runs in float, paying the Q/DQ for
nothing. Which layers those are depends on the kernels of this ONNX Runtime on this CPU, so it is measured, not
listed:

1. Profile the all-quantized candidate (ONNX Runtime profiling, one held-out image at the size the artifact sees,
   one warm-up run, then the profiled run). Each fused kernel is named after the layer it came from
   (ORIGINAL_NAME + "_token_N"); an unfused layer keeps its own name. Kernels whose name names no quantized layer
   (Q/DQ, transposes) are not attributed.
2. Each profiled layer's kernel time per multiply-accumulate (MACs from its weight's shape and the element counts
   ONNX Runtime reports for its tensors). Suspects: layers above SUSPECT_RATIO x the median, slowest first, at most
   MAX_SUSPECTS of them.
3. Each suspect is confirmed by profiling both models: the current candidate and the same with the suspect kept
   float run alternately, RUNS profiled runs each after a warm-up. What differs between the two is confined to a
   few kernels: the suspect's own, its Q/DQ nodes and the layout conversions ONNX Runtime put around it (kernels
   found in only one of the two profiles, matched by op, shapes and name less ONNX Runtime's node numbers). Their
   summed time in each model (the faster run counts) is compared, not the whole model's: a whole-model run of
   several seconds on a shared machine varies by more than the layer is worth, and measured that way the decision
   flipped between runs of the same files. The suspect stays float when that saves at least MIN_SAVING of the
   current model's run time (then that model is the new current one), else it is quantized.

Every run uses the runtime's CPU session options (runtime.runners.session_options) with the threads one of its
concurrent runs gets, as batch-translate runs the artifact. Everything measured goes into the sidecar.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import re
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

log = logging.getLogger(__name__)

SUSPECT_RATIO = 2.0  # kernel time per MAC, as a multiple of the median over the quantized layers
MAX_SUSPECTS = 4  # each costs a quantization and 2 x (1 + RUNS) profiled runs
RUNS = 2  # profiled runs per model per suspect, alternating; the faster run of each side counts
MIN_SAVING = 0.01  # a suspect stays float only when that saves at least 1 % of the current model's run time
# what the sidecar's float_for_speed keeps of each confirmed trial
TRIAL_SUMMARY = (
    "node",
    "quantized_seconds",
    "float_seconds",
    "quantized_kernel_ms",
    "float_kernel_ms",
    "saving",
    "speedup",
)
_KERNEL = "_kernel_time"
_TOKEN = "_token_"
_GENERATED_NUMBER = re.compile(r"_token_\d+")


@dataclass(frozen=True)
class SpeedPass:
    """What the speed pass kept float, the candidate that results (all else quantized), and its sidecar record."""

    float_nodes: list[str]
    candidate: Path
    record: dict[str, Any]

    def float_for_speed(self) -> list[dict[str, Any]]:
        """The confirmed trials, one per layer kept float: node, both sides' run times and compared kernel times,
        the saving and the speed-up it makes."""
        return [{key: trial[key] for key in TRIAL_SUMMARY} for trial in self.record["trials"] if trial["kept_float"]]


def threads_per_run(path: Path, sidecar: Any) -> int:
    """Intra-op threads one of the runtime CPU runner's concurrent runs gets (what batch-translate gives a run)."""
    from uda_trt.runtime.runners import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, sidecar, "onnxruntime-cpu")  # not entered: no session is opened
    return max(1, runner.threads // runner.runs_in_flight)


def speed_pass(
    quantize: Callable[[Sequence[str]], Path],
    layers: Mapping[str, onnx.NodeProto],
    weight_dims: Mapping[str, tuple[int, ...]],
    feeds: dict[str, np.ndarray],
    threads: int,
    folder: Path,
    suspect_ratio: float = SUSPECT_RATIO,
    max_suspects: int = MAX_SUSPECTS,
) -> SpeedPass:
    """Run the pass (module doc). `quantize(exclude)` writes a candidate with every layer of `layers` quantized but
    those excluded; `weight_dims` holds the initializers' shapes; `feeds` is one image as the artifact takes it."""
    current = quantize([])
    profiled = profile_layers(current, feeds, threads, folder, layers, weight_dims)
    timed = [layer for layer in profiled if layer["ms_per_gmac"] is not None]
    median = statistics.median(layer["ms_per_gmac"] for layer in timed) if timed else None
    for layer in profiled:
        per_mac = layer["ms_per_gmac"]
        layer["vs_median"] = per_mac / median if per_mac is not None and median else None
    suspects = sorted(
        (layer for layer in profiled if layer["vs_median"] is not None and layer["vs_median"] > suspect_ratio),
        key=lambda layer: -layer["vs_median"],
    )[:max_suspects]
    seen = {layer["node"] for layer in profiled}
    float_nodes: list[str] = []
    trials = []
    for suspect in suspects:
        candidate = quantize([*float_nodes, suspect["node"]])
        trial = confirm(current, candidate, suspect["node"], feeds, threads, folder)
        trial["vs_median"] = suspect["vs_median"]
        trials.append(trial)
        log.info(
            "INT8 speed pass: %s (%.1fx the median time per MAC): the kernels that differ take %.1f ms as is, %.1f ms "
            "with it float (%.1f %% of the model's %.3f s): %s",
            suspect["node"],
            suspect["vs_median"],
            min(trial["quantized_kernel_ms"]),
            min(trial["float_kernel_ms"]),
            100 * trial["saving"],
            min(trial["quantized_seconds"]),
            "kept float" if trial["kept_float"] else "stays quantized",
        )
        if trial["kept_float"]:
            float_nodes.append(suspect["node"])
            current.unlink()
            current = candidate
        else:
            candidate.unlink()
    record = {
        "measured_on": f"onnxruntime-cpu, {threads} intra-op thread(s) per run (one of the runtime runner's runs)",
        "input_shape": list(next(iter(feeds.values())).shape),
        "suspect_ratio": suspect_ratio,
        "max_suspects": max_suspects,
        "runs": RUNS,
        "min_saving": MIN_SAVING,
        "median_ms_per_gmac": median,
        "layers": profiled,
        "not_profiled": [name for name in layers if name not in seen],
        "trials": trials,
    }
    return SpeedPass(float_nodes, current, record)


def confirm(
    current: Path,
    candidate: Path,
    suspect: str,
    feeds: dict[str, np.ndarray],
    threads: int,
    folder: Path,
) -> dict[str, Any]:
    """Step 3 of the module doc for one suspect: `current` (suspect quantized) and `candidate` (suspect float)
    profiled alternately. Returns the trial: each side's whole-model seconds and compared kernel milliseconds per
    run, the kernels compared, the saving (fraction of the current model's faster run), the whole-model speed-up
    that saving makes, and whether the suspect stays float."""
    sides = {"quantized": current, "float": candidate}
    sessions = {side: _session(path, threads, Path(folder) / f"confirm_{side}") for side, path in sides.items()}
    for session in sessions.values():
        session.run(None, feeds)  # warm-up
    for _ in range(RUNS):
        for session in sessions.values():
            session.run(None, feeds)
    runs = {}
    for side, session in sessions.items():
        profile = Path(session.end_profiling())
        runs[side] = run_kernels(json.loads(profile.read_text()))[1:]  # the warm-up run is not compared
        profile.unlink()
    compared = differing_kernels(runs["quantized"], runs["float"], suspect)
    seconds = {side: [run_seconds for run_seconds, _ in side_runs] for side, side_runs in runs.items()}
    kernel_ms = {
        side: [sum(us for key, us in kernels.items() if key in compared[side]) / 1000 for _, kernels in side_runs]
        for side, side_runs in runs.items()
    }
    saving = (min(kernel_ms["quantized"]) - min(kernel_ms["float"])) / 1000 / min(seconds["quantized"])
    return {
        "node": suspect,
        "quantized_seconds": seconds["quantized"],
        "float_seconds": seconds["float"],
        "quantized_kernel_ms": kernel_ms["quantized"],
        "float_kernel_ms": kernel_ms["float"],
        "compared_kernels": {side: sorted(f"{name} ({op})" for name, op, _ in keys) for side, keys in compared.items()},
        "saving": saving,
        "speedup": 1 / (1 - saving) if saving < 1 else math.inf,
        "kept_float": saving >= MIN_SAVING,
    }


KernelKey = tuple[str, str, str]  # kernel name, op type, its tensors' shapes


def run_kernels(events: Sequence[dict]) -> list[tuple[float, dict[KernelKey, float]]]:
    """Each `model_run` of an ONNX Runtime profile, in order: its seconds and its node kernels' microseconds by
    (name, op type, shapes); a kernel that ran twice in one run is summed."""
    found: list[tuple[float, dict[KernelKey, float]]] = []
    for run, run_events in kernel_events_by_run(events):
        kernels: dict[KernelKey, float] = {}
        for event in run_events:
            args = event.get("args", {})
            shapes = json.dumps([args.get("input_type_shape"), args.get("output_type_shape")], sort_keys=True)
            key = (event["name"][: -len(_KERNEL)], args.get("op_name", "?"), shapes)
            kernels[key] = kernels.get(key, 0.0) + event["dur"]
        found.append((run["dur"] / 1e6, kernels))
    return found


def kernel_events_by_run(events: Sequence[dict]) -> list[tuple[dict, list[dict]]]:
    """Each `model_run` event of an ONNX Runtime profile, in time order, with the node kernel events inside it."""
    runs = sorted(
        (event for event in events if event.get("cat") == "Session" and event.get("name") == "model_run"),
        key=lambda event: event["ts"],
    )
    kernels = [event for event in events if event.get("cat") == "Node" and event.get("name", "").endswith(_KERNEL)]
    return [(run, [event for event in kernels if run["ts"] <= event["ts"] <= run["ts"] + run["dur"]]) for run in runs]


def differing_kernels(
    quantized: Sequence[tuple[float, dict[KernelKey, float]]],
    float_: Sequence[tuple[float, dict[KernelKey, float]]],
    suspect: str,
) -> dict[str, set[KernelKey]]:
    """The kernels the two models do not share, per side, and the suspect's own (named after it, fused or not).
    Kernels are matched by name, op type and shapes, with ONNX Runtime's generated numbers (`_token_N`) left out of
    the name: they shift by one when the suspect's fusion changes. Where one side runs more kernels of a matched
    kind than the other (e.g. one more layout Transpose of a shape), all of that kind are compared."""
    counts = {
        side: collections.Counter(_generic(key) for key in runs[0][1])
        for side, runs in (("quantized", quantized), ("float", float_))
    }
    compared = {}
    for side, runs in (("quantized", quantized), ("float", float_)):
        compared[side] = {
            key
            for key in set().union(*(kernels.keys() for _, kernels in runs))
            if counts["quantized"][_generic(key)] != counts["float"][_generic(key)]
            or _kernel_layer(key[0], {suspect}) == suspect
        }
    return compared


def _generic(key: KernelKey) -> KernelKey:
    """A kernel's key without ONNX Runtime's generated node numbers."""
    name, op, shapes = key
    return _GENERATED_NUMBER.sub("", name), op, shapes


def _kernel_layer(kernel: str, layers: Collection[str]) -> str | None:
    """The layer of `layers` a kernel computes (named LAYER, or LAYER_token_N when fused), else None."""
    if kernel in layers:
        return kernel
    base, token, number = kernel.rpartition(_TOKEN)
    return base if token and number.isdigit() and base in layers else None


def _session(path: Path, threads: int, profile_prefix: Path | None = None):
    """An ONNX Runtime CPU session with the runtime runner's CPU options (and profiling, given a file prefix)."""
    import onnxruntime as ort

    from uda_trt.runtime.runners import session_options

    options = session_options(threads, memory_patterns=False)  # as OnnxRuntimeRunner opens CPU sessions
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def profile_layers(
    path: Path,
    feeds: dict[str, np.ndarray],
    threads: int,
    folder: Path,
    layers: Mapping[str, onnx.NodeProto],
    weight_dims: Mapping[str, tuple[int, ...]],
) -> list[dict[str, Any]]:
    """Each of `layers` found in a profiled run of `path` (after one warm-up run), in graph order: its kernels'
    op types, kernel milliseconds, MACs and milliseconds per 10^9 MACs (None where its MACs cannot be counted)."""
    session = _session(path, threads, Path(folder) / "profile")
    for _ in range(2):
        session.run(None, feeds)
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    found = attribute(last_run_kernels(events), layers)
    profiled = []
    for name, node in layers.items():
        if name not in found:
            continue
        kernels = found[name]
        microseconds = sum(event["dur"] for event in kernels)
        macs = layer_macs(node, weight_dims, kernels[0]["args"])
        profiled.append(
            {
                "node": name,
                "op_type": node.op_type,
                "kernels": sorted({event["args"].get("op_name", "?") for event in kernels}),
                "kernel_ms": microseconds / 1000,
                "macs": macs,
                "ms_per_gmac": microseconds / 1000 / (macs / 1e9) if macs else None,
            }
        )
    return profiled


def last_run_kernels(events: Sequence[dict]) -> list[dict]:
    """The node kernel events of the last `model_run` in an ONNX Runtime profile."""
    runs = kernel_events_by_run(events)
    if not runs:
        raise ValueError("the ONNX Runtime profile holds no model_run")
    return runs[-1][1]


def attribute(kernels: Sequence[dict], layers: Mapping[str, Any]) -> dict[str, list[dict]]:
    """Kernel events by the layer they compute: a kernel named LAYER (unfused) or LAYER_token_N (fused by ONNX
    Runtime from LAYER and its Q/DQ), checked against the layer names; any other kernel is left out."""
    found: dict[str, list[dict]] = {}
    for event in kernels:
        layer = _kernel_layer(event["name"][: -len(_KERNEL)], layers)
        if layer is not None:
            found.setdefault(layer, []).append(event)
    return found


def layer_macs(node: onnx.NodeProto, weight_dims: Mapping[str, tuple[int, ...]], args: Mapping) -> int | None:
    """Multiply-accumulates of one layer in one run, from its weight's shape (the source graph's initializer) and
    the element counts of the kernel's first input and output (layout-independent: fused kernels may run NHWC).

    Conv: output elements x C_in/group x kernel; ConvTranspose: input elements x C_out/group x kernel; MatMul and
    Gemm: output elements x K. None without a weight initializer or the shapes ONNX Runtime reports."""
    weight = weight_dims.get(node.input[1]) if len(node.input) > 1 else None
    if not weight:
        return None
    inputs, outputs = _elements(args.get("input_type_shape")), _elements(args.get("output_type_shape"))
    if node.op_type == "Conv" and outputs:
        return outputs * math.prod(weight[1:])
    if node.op_type == "ConvTranspose" and inputs:
        return inputs * math.prod(weight[1:])
    if node.op_type == "MatMul" and outputs and len(weight) >= 2:
        return outputs * weight[-2]
    if node.op_type == "Gemm" and outputs and len(weight) == 2:
        trans_b = next((attribute.i for attribute in node.attribute if attribute.name == "transB"), 0)
        return outputs * (weight[1] if trans_b else weight[0])
    return None


def _elements(shapes: Any) -> int | None:
    """Element count of the first tensor of a profile's `input_type_shape` / `output_type_shape` list."""
    if not shapes or not isinstance(shapes[0], dict) or not shapes[0]:
        return None
    dims = next(iter(shapes[0].values()))
    return math.prod(dims) if dims and all(isinstance(d, int) and d > 0 for d in dims) else None
