"""INT8 ONNX (export-trt --int8): calibrated on a dataset of the artifact's domain, gated against STEM.onnx on
held-out images, run through the runtime's own runner; a harmful setting fails the gate and writes nothing."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from helpers import GENERATOR_STEM, run_cli, write_generator, write_gta5
from helpers.int8_exports import (
    SEGMENTER_CALIBRATION_IMAGES,
    SEGMENTER_SPLIT,
    TRANSLATOR_SIZE,
    shared_int8_segmenter,
    shared_int8_translator,
)
from uda_trt.benchmarks.flops import count_macs
from uda_trt.export.int8 import (
    GATES,
    METHODS,
    QUANTIZED_OP_TYPES,
    _Quantizer,
    calibration_set,
    export_int8,
    gate,
    image_loader,
    quantized_nodes,
)
from uda_trt.export.int8_speed import TRIAL_SUMMARY, speed_pass
from uda_trt.export.onnx_export import export_onnx
from uda_trt.runtime.runners import open_runner
from uda_trt.runtime.sidecar import file_sha256, load_sidecar

SIZE = TRANSLATOR_SIZE
UPSAMPLING_LAYERS = ["/generator/model/model.12/ConvTranspose", "/generator/model/model.15/ConvTranspose"]
STEM = GENERATOR_STEM


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> tuple[Path, object]:
    """export-trt --int8 (auto method) on a barely trained generator, calibrated on a 12-image GTA5-layout root: 3
    images held out, the next 8 calibrate (helpers.int8_exports; test_int8_engine reads the same files)."""
    return shared_int8_translator(tmp_path_factory)


@pytest.mark.slow
def test_int8_translator_passes_its_gates_and_records_them(translator):
    run_dir, result = translator
    assert result.returncode == 0, result.stderr
    int8_path = run_dir / f"{STEM}.int8.onnx"
    assert f"wrote {int8_path}" in result.stdout and "PSNR" in result.stdout
    sidecar = json.loads((run_dir / f"{STEM}.json").read_text())
    assert sidecar["artifacts"]["int8_onnx"] == {"file": int8_path.name, "sha256": file_sha256(int8_path)}
    policy = sidecar["int8_policy"]
    assert policy["format"] == "QDQ" and policy["keep_float"] == "measured"
    assert set(policy["quantized_op_types"]) == {"Conv"} and policy["quantized_nodes"]
    # both upsampling ConvTransposes became phase Convs (export.transpose_phases): INT8 computes them too
    assert [entry["conv_transpose"] for entry in policy["conv_transpose_phases"]] == UPSAMPLING_LAYERS
    # measured: the speed pass kept some layers float (its own test); if the gate then failed, the sensitivity pass
    # ranked the other layers and the worst went back to float; every other layer computes in INT8
    for_speed = [entry["node"] for entry in policy["float_for_speed"]]
    ranked = [entry["node"] for entry in policy["sensitivity"]]
    assert policy["gates_required"] and not set(for_speed) & set(ranked)
    assert len(ranked) in (0, 10 - len(for_speed)) and policy["float_nodes"] == ranked[: len(policy["float_nodes"])]
    assert len(policy["float_nodes"]) <= len(ranked) // 2 and (policy["float_nodes"] or not ranked)
    assert len(policy["quantized_nodes"]) == 10 - len(policy["float_nodes"]) - len(for_speed)
    check_speed_record(policy, run_dir)
    calibration = policy["calibration"]
    assert calibration["method"] in METHODS and set(calibration["method_trials"]) == set(METHODS)
    assert calibration["images"] == 8 and calibration["held_out_images"] == 3 and calibration["seed"] == 0
    assert calibration["source"] == "gta5 layout" and len(calibration["list_sha256"]) == 64
    drawn = calibration_set(run_dir.parent / "gta5", 8)
    assert not set(drawn.calibration) & set(drawn.held_out)  # the gates judge on images calibration never saw
    figures = sidecar["validation"]["int8_onnx"]
    bounds = GATES["translate"]
    assert figures["passed"] and figures["reference"] == "onnx" and figures["images"] == 3
    assert figures["tolerance"] == bounds["tolerance"] and figures["fraction"] >= bounds["required"]
    assert figures["psnr_db"] is None or figures["psnr_db"] >= bounds["psnr_db"]
    assert load_sidecar(int8_path).int8_policy == policy  # the runtime reads and verifies the INT8 artifact


@pytest.mark.slow
def test_int8_graph_is_int8_where_measured_and_float_elsewhere(translator):
    run_dir, _ = translator
    model = onnx.load(run_dir / f"{STEM}.int8.onnx")
    nodes = model.graph.node
    producer = {name: node for node in nodes for name in node.output}
    quantize = [node for node in nodes if node.op_type == "QuantizeLinear"]
    zero_points = {init.name: init for init in model.graph.initializer}
    assert quantize and all(zero_points[node.input[2]].data_type == TensorProto.INT8 for node in quantize)
    # InstanceNorm computes in float: nothing quantizes its output; the uint8 edges are untouched
    quantized_sources = {producer[node.input[0]].op_type for node in quantize if node.input[0] in producer}
    assert "InstanceNormalization" not in quantized_sources
    assert nodes[-1].op_type == "Cast" and producer[nodes[-1].input[0]].op_type != "DequantizeLinear"
    # no ConvTranspose left; a quantized phase Conv's interleave moves int8 values, a float one's float values
    assert "ConvTranspose" not in {node.op_type for node in nodes}
    policy = load_sidecar(run_dir / f"{STEM}.int8.onnx").int8_policy
    consumers = {name: node for node in nodes for name in node.input}
    for entry in policy["conv_transpose_phases"]:
        interleave = next(node for node in nodes if node.name == entry["interleave"])
        quantized = entry["conv"] in policy["quantized_nodes"]
        assert (producer[interleave.input[0]].op_type == "DequantizeLinear") == quantized
        assert (consumers[interleave.output[0]].op_type == "QuantizeLinear") == quantized


@pytest.mark.slow
def test_int8_runs_through_open_runner_close_to_fp32(translator):
    """The runtime's runner, fed the held-out images as one batch, reproduces the gate the export measured."""
    run_dir, _ = translator
    held_out = calibration_set(run_dir.parent / "gta5", 8).held_out
    images = np.stack([image_loader("translate", (64, 32))(path) for path in held_out])
    with open_runner(run_dir / f"{STEM}.onnx") as fp32, open_runner(run_dir / f"{STEM}.int8.onnx") as int8:
        assert int8.backend == "onnxruntime-cpu"
        reference, candidate = fp32.infer({"images": images}), int8.infer({"images": images})
    assert candidate["translated"].dtype == np.uint8 and candidate["translated"].shape == (3, 32, 64, 3)
    report = gate("translate", list(reference["translated"]), list(candidate["translated"]))
    assert report.passed, report.summary()
    recorded = json.loads((run_dir / f"{STEM}.json").read_text())["validation"]["int8_onnx"]
    assert report.agreement.fraction == pytest.approx(recorded["fraction"])


def check_speed_trials(record: dict, float_nodes: list[str]) -> None:
    """A speed pass's trials agree with their own profiles: both sides profiled RUNS times, the compared kernels
    include the suspect's own (on the quantized side under its name; ONNX Runtime may rename its float form), the
    saving is the faster runs' kernel difference over the current model's faster run, and the layers kept float
    are exactly those saving enough."""
    for trial in record["trials"]:
        for side in ("quantized", "float"):
            assert len(trial[f"{side}_seconds"]) == len(trial[f"{side}_kernel_ms"]) == record["runs"]
            assert all(seconds > 0 for seconds in trial[f"{side}_seconds"])
            compared_seconds = [ms / 1000 for ms in trial[f"{side}_kernel_ms"]]
            assert all(0 < part < whole for part, whole in zip(compared_seconds, trial[f"{side}_seconds"], strict=True))
            assert trial["compared_kernels"][side]
        assert any(kernel.startswith(trial["node"]) for kernel in trial["compared_kernels"]["quantized"])
        saved = (min(trial["quantized_kernel_ms"]) - min(trial["float_kernel_ms"])) / 1000
        assert trial["saving"] == pytest.approx(saved / min(trial["quantized_seconds"]))
        assert trial["speedup"] == pytest.approx(1 / (1 - trial["saving"]))
        assert trial["kept_float"] == (trial["saving"] >= record["min_saving"])
    assert float_nodes == [trial["node"] for trial in record["trials"] if trial["kept_float"]]


def check_speed_record(policy: dict, run_dir: Path) -> None:
    """The speed pass of the tiny generator's export found every quantized layer in ONNX Runtime's profile with the
    MACs the benchmark's counter finds on the FP32 graph (a phase Conv does its ConvTranspose's 9 taps in a 2x2
    window per phase: 16/9 of them), took as suspects exactly the layers it says are slow per MAC, and kept float
    only the ones its profiled confirmation runs found worth it; the sensitivity pass never saw those. No speed is
    asserted."""
    speed = policy["speed"]
    assert speed["input_shape"] == [1, 32, 64, 3] and "onnxruntime-cpu" in speed["measured_on"]
    assert speed["not_profiled"] == [] and len(speed["layers"]) == 10
    layers = speed["layers"]
    fp32 = count_macs(run_dir / f"{STEM}.onnx", {"images": (1, 32, 64, 3)})
    assert all(layer["macs"] > 0 and layer["kernel_ms"] > 0 for layer in layers)
    phase_convs = {entry["conv"] for entry in policy["conv_transpose_phases"]}
    upsampling = sum(layer["macs"] for layer in layers if layer["node"] in phase_convs)
    assert upsampling * 9 == fp32.by_op_type["ConvTranspose"] * 16
    assert sum(layer["macs"] for layer in layers) - upsampling == fp32.total - fp32.by_op_type["ConvTranspose"]
    median = statistics.median(layer["ms_per_gmac"] for layer in layers)
    assert speed["median_ms_per_gmac"] == pytest.approx(median)
    for layer in layers:
        assert layer["ms_per_gmac"] == pytest.approx(layer["kernel_ms"] / (layer["macs"] / 1e9))
        assert layer["vs_median"] == pytest.approx(layer["ms_per_gmac"] / median)
    slow = [layer for layer in layers if layer["vs_median"] > speed["suspect_ratio"]]
    suspects = sorted(slow, key=lambda layer: -layer["vs_median"])[: speed["max_suspects"]]
    assert [trial["node"] for trial in speed["trials"]] == [layer["node"] for layer in suspects]
    for_speed = [entry["node"] for entry in policy["float_for_speed"]]
    check_speed_trials(speed, for_speed)
    kept = [trial for trial in speed["trials"] if trial["kept_float"]]
    assert policy["float_for_speed"] == [{key: trial[key] for key in TRIAL_SUMMARY} for trial in kept]
    assert not set(for_speed) & (set(policy["quantized_nodes"]) | set(policy["float_nodes"]))
    assert not set(for_speed) & {entry["node"] for entry in policy["sensitivity"]}


@pytest.mark.slow
def test_int8_speed_pass_confirms_each_suspect_by_profiling_both_models(translator, tmp_path):
    """With every layer a suspect (ratio 0), the pass profiles the two slowest per MAC in both forms, and the
    candidate it returns has exactly the confirmed ones in float."""
    run_dir, _ = translator
    onnx_path = run_dir / f"{STEM}.onnx"
    data = calibration_set(run_dir.parent / "gta5", 8)
    quantizer = _Quantizer(onnx_path, load_sidecar(onnx_path), data, QUANTIZED_OP_TYPES, tmp_path)
    feeds = {"images": quantizer.held_out[0][None]}

    def quantize(exclude):
        return quantizer.quantize("minmax", 8, exclude=exclude)

    speed = speed_pass(quantize, quantizer.layers, quantizer.weight_dims, feeds, 1, tmp_path, 0.0, 2)
    by_slowness = sorted(speed.record["layers"], key=lambda layer: -layer["vs_median"])
    assert [trial["node"] for trial in speed.record["trials"]] == [layer["node"] for layer in by_slowness[:2]]
    check_speed_trials(speed.record, speed.float_nodes)
    assert [entry["node"] for entry in speed.float_for_speed()] == speed.float_nodes
    quantized = quantized_nodes(onnx.load(speed.candidate), quantizer.eligible)
    assert quantized == [name for name in quantizer.eligible if name not in speed.float_nodes]


@pytest.mark.slow
def test_int8_without_required_gates_writes_the_artifact_and_records_the_failed_gate(tmp_path):
    """The benchmark's setting: an untrained generator (INT8 outputs far from FP32, see helpers.write_generator),
    MinMax on two images. The gate fails, the artifact is written anyway with the failure recorded beside it, and no
    sensitivity pass ran; the default still refuses (test_harmful_quantization_fails_...). The speed pass ran and
    recorded its measurements."""
    gta5 = write_gta5(tmp_path / "gta5", count=12, size=(80, 40))
    checkpoint = write_generator(tmp_path / "run")
    onnx_path = export_onnx(checkpoint, working_size=(64, 32), fp16=False).onnx_path  # as export-trt writes it
    assert onnx_path == tmp_path / "run" / f"{STEM}.onnx"
    result = export_int8(onnx_path, calibration_set(gta5, 2), "minmax", require_gates=False)
    assert not result.gate.passed and result.gate.failures()
    assert result.path == tmp_path / "run" / f"{STEM}.int8.onnx" and result.path.is_file()
    sidecar = load_sidecar(result.path)  # listed with its hash: the runtime accepts it
    assert sidecar.validation["int8_onnx"]["passed"] is False
    assert sidecar.validation["int8_onnx"]["fraction"] == pytest.approx(result.gate.agreement.fraction)
    policy = sidecar.int8_policy
    assert policy["gates_required"] is False and policy["sensitivity"] == [] and policy["float_nodes"] == []
    assert policy["calibration"]["method"] == "minmax" and policy["calibration"]["method_trials"] == {}
    assert len(policy["quantized_nodes"]) == 10 - len(policy["float_for_speed"])
    check_speed_record(policy, tmp_path / "run")
    with open_runner(result.path) as runner:
        out = runner.infer({"images": np.zeros((1, 32, 64, 3), np.uint8)})["translated"]
    assert out.shape == (1, 32, 64, 3) and out.dtype == np.uint8


@pytest.mark.slow
def test_harmful_quantization_fails_the_gate_and_writes_no_int8_file(tmp_path, translator):
    """Everything the quantizer can quantize (InstanceNorm and the output layers too), MinMax on two images, on a
    copy of the `translator` fixture's generator and its GTA5 root (only read)."""
    shared_run, _ = translator
    (tmp_path / "run").mkdir()
    checkpoint = shutil.copy(shared_run / f"{STEM}.pth", tmp_path / "run")
    args = ("--int8-keep-float", "none", "--calibration-method", "minmax", "--calibration-images", 2)
    int8 = ("--int8", "--calibration", shared_run.parent / "gta5", *args)
    result = run_cli("export-trt", checkpoint, "--size", SIZE, "--no-fp16", *int8)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "INT8 gate failed" in errors[0] and " under " in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == [f"{STEM}.json", f"{STEM}.onnx", f"{STEM}.pth"]
    sidecar = json.loads((run_dir / f"{STEM}.json").read_text())
    assert set(sidecar["artifacts"]) == {"onnx"} and sidecar["int8_policy"] is None


@pytest.mark.slow
def test_int8_segmenter_calibrates_on_a_cityscapes_split(tmp_path_factory):
    """The segmenter path: Cityscapes layout and split, label gate, every Conv quantized. An untrained segmenter
    predicts nearly one class everywhere, so this checks the plumbing; the gate's teeth are the translator tests'.
    The export (helpers.int8_exports) is shared with test_int8_engine and commands/test_int8_eval."""
    folder, result = shared_int8_segmenter(tmp_path_factory)
    assert result.returncode == 0, result.stderr
    sidecar = load_sidecar(folder / "seg" / "best.int8.onnx")
    calibration = sidecar.int8_policy["calibration"]
    assert calibration["source"] == f"cityscapes layout, split {SEGMENTER_SPLIT}" and SEGMENTER_SPLIT != "train"
    assert calibration["images"] == SEGMENTER_CALIBRATION_IMAGES
    assert sidecar.int8_policy["quantized_op_types"] == ["Conv"] and sidecar.int8_policy["quantized_nodes"]
    figures = sidecar.validation["int8_onnx"]
    assert figures["passed"] and figures["task"] == "segment" and figures["fraction"] >= GATES["segment"]["required"]


def test_int8_refuses_bad_calibration_input_before_exporting(tmp_path, user_error):
    checkpoint = write_generator(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    (tmp_path / "one" / "images").mkdir(parents=True)
    write_gta5(tmp_path / "one", count=1)
    cases = [
        ("--int8", "--calibration", tmp_path / "missing"),
        ("--int8", "--calibration", tmp_path / "empty"),
        ("--int8", "--calibration", tmp_path / "one"),
        ("--int8",),
        ("--calibration", tmp_path / "empty"),
    ]
    for args in cases:
        user_error(run_cli("export-trt", checkpoint, "--size", SIZE, *args), names="--calibration")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [f"{STEM}.pth"]  # nothing exported
