"""FP32 ONNX -> INT8 ONNX (`STEM.int8.onnx`, QDQ), calibrated on images of the artifact's own domain and gated
against `STEM.onnx` on held-out images of that domain, in the same run.

ONNX Runtime's `quantize_static` does the quantization: QDQ format, int8 activations with symmetric ranges (zero
point 0) and per-channel symmetric int8 weights in a 7-bit range (WEIGHTS), the explicit-quantization form
TensorRT also builds from. This module only chooses what it quantizes, on which images, with which calibration
method, and checks the result.

What is quantized (policy "measured"):
  - Conv, ConvTranspose, MatMul and Gemm: the arithmetic that INT8 makes faster. A ConvTranspose is first rewritten
    as one Conv computing all its output phases and a DepthToSpace interleaving them (transpose_phases: ONNX
    Runtime's CPU provider has no integer ConvTranspose), and that DepthToSpace moves int8 values whenever its Conv
    is quantized;
  - everything else stays float: the in-graph pre- and post-processing (casts, normalisation, resize, NaN guard,
    round, clip, argmax), InstanceNormalization (per-image statistics of a whole feature map), residual adds and
    activations;
  - of those layers, the ones whose quantization makes the artifact slower on this machine's CPU stay float: a
    speed pass profiles the all-quantized model, takes the layers far slower per multiply-accumulate than the
    median as suspects and keeps each float only when profiling it both ways shows the saving (int8_speed);
  - of the rest, the ones whose quantization hurts most go back to float when the gate fails with them all
    quantized: a sensitivity pass quantizes one layer at a time and ranks the layers by the error each adds on
    held-out images; the worst are kept float one by one until the gate passes (at most half of the layers, else
    the gate fails). It never quantizes a layer the speed pass kept float.
The calibration method (MinMax, Percentile 99.999, Entropy) is chosen by measurement too: each calibrates on the
first METHOD_TRIAL_IMAGES calibration images, the one closest to STEM.onnx on the held-out images wins and
calibrates on all of them. Policy "none" (hidden, for tests) quantizes every op type the quantizer knows, with no
measured exclusions: the harmful setting that shows the gate can fail.

With `require_gates=False` (the throughput benchmark, which times an artifact whatever its quality and reports the
gate beside the speed; no command offers it) the artifact is written even when a gate fails, the failed gate is
recorded in the sidecar, and no sensitivity pass runs.

Images are drawn once, deterministically: the dataset's samples sorted by key, a seeded permutation, the first
HELD_OUT_IMAGES held out for the gate (so the gate set does not move with --calibration-images), the next N for
calibration. Translators see them at the working size, as batch-translate feeds them; segmenters at their own size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uda_trt.export.transpose_phases import split_conv_transposes
from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.jobs.files import atomic_write_bytes, json_plain
from uda_trt.runtime.sidecar import Sidecar, file_sha256, load_sidecar, sidecar_path

if TYPE_CHECKING:  # numpy, onnx, OpenCV and ONNX Runtime load when the step runs: export-trt --help stays fast
    import numpy as np
    import onnx

    from uda_trt.export.int8_speed import SpeedPass
    from uda_trt.export.parity import ParityReport

log = logging.getLogger(__name__)

# 128 frames at the 1024x512 working size are 6.7e7 values per activation tensor (ImageNet calibration's usual 500
# images at 224x224 are 2.5e7), enough for a stable 99.999th percentile, and 128 scenes of a 25k-frame dataset;
# each image costs one FP32 run per calibration pass, so more mostly adds minutes.
DEFAULT_CALIBRATION_IMAGES = 128
HELD_OUT_IMAGES = 8  # 4.2e6 pixels at 1024x512: a 1 % gate is measured far more finely than it needs
METHOD_TRIAL_IMAGES = 32  # calibration images each method is tried on before the winner calibrates on all
SENSITIVITY_IMAGES = 2  # held-out images the one-layer-at-a-time pass ranks layers on
CALIBRATION_SEED = 0
METHODS = ("minmax", "percentile", "entropy")
_ORT_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}  # CalibrationMethod names
KEEP_FLOAT = ("measured", "none")
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# Weights use 7 of the 8 bits (quantize_static's reduce_range). On x86 CPUs without VNNI (AVX2 only) ONNX Runtime
# multiplies uint8 activations by int8 weights with VPMADDUBSW, which saturates the int16 sum of two products when
# both weights are large: measured on such a machine, a test translator kept 83 % of its pixels within 3 grey levels
# of FP32 with 8-bit weights and passed the 99 % gate with 7-bit ones. A file quantized on a VNNI machine would
# saturate on an AVX2 one, so the range is reduced everywhere, not per machine.
WEIGHTS = "int8 in a 7-bit range (reduce_range), symmetric, per channel"
GATES = {
    "translate": {"tolerance": 3, "required": 0.99, "psnr_db": 35.0},
    "segment": {"tolerance": 0, "required": 0.99},
}


@dataclass(frozen=True)
class CalibrationSet:
    """Which images calibrate and which judge: paths under `root`, in the order they are used."""

    root: Path
    layout: str
    split: str | None  # Cityscapes only
    calibration: list[Path]
    held_out: list[Path]

    def describe(self) -> dict[str, Any]:
        """The sidecar's record of the data: where, how drawn, and hashes of both lists (contents and names)."""
        return {
            "source": f"{self.layout} layout" + (f", split {self.split}" if self.split else ""),
            "seed": CALIBRATION_SEED,
            "images": len(self.calibration),
            "list_sha256": _list_sha256(self.root, self.calibration),
            "held_out_images": len(self.held_out),
            "held_out_sha256": _list_sha256(self.root, self.held_out),
        }


def calibration_set(root: Path, count: int = DEFAULT_CALIBRATION_IMAGES, split: str = "train") -> CalibrationSet:
    """Draw the calibration and held-out images of a folder or dataset root (runtime.datasets layouts).

    Raises UserError (exit 2, naming --calibration) for a missing folder or fewer than two images. With fewer than
    count + HELD_OUT_IMAGES images, a quarter (at least one) is held out and the rest calibrates.
    """
    import numpy as np

    from uda_trt.runtime.datasets import samples_for

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--calibration {root}: folder not found")
    try:
        layout, samples = samples_for(root, "auto", split, require_labels=False)
    except UserError as error:
        raise UserError(f"--calibration {root}: {error.message}") from None
    if len(samples) < 2:
        raise UserError(f"--calibration {root}: {len(samples)} image found; the INT8 gate needs held-out images too")
    samples = sorted(samples, key=lambda sample: sample.key)
    order = np.random.default_rng(CALIBRATION_SEED).permutation(len(samples))
    held = min(HELD_OUT_IMAGES, max(1, len(samples) // 4))
    chosen = [samples[i].image for i in order]
    calibration = chosen[held : held + count]
    if len(calibration) < count:
        log.info("calibrating on %d images (%d held out): all that %s has", len(calibration), held, root)
    return CalibrationSet(root, layout, split if layout == "cityscapes" else None, calibration, chosen[:held])


def _list_sha256(root: Path, paths: Sequence[Path]) -> str:
    """sha256 of `sha256sum`-style lines (file hash, path relative to root), in use order."""
    lines = "".join(f"{file_sha256(path)}  {path.relative_to(root).as_posix()}\n" for path in paths)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class GateReport:
    """INT8 outputs against STEM.onnx on the held-out images: `agreement` (translators: pixels within 3 grey levels
    in every channel; segmenters: identical labels) and, for translators, the PSNR over all values (inf: identical)."""

    agreement: ParityReport
    psnr_db: float | None = None
    required_psnr_db: float | None = None

    @property
    def passed(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        """Each failed gate with its shortfall, in words; [] when all pass."""
        failed = []
        if self.required_psnr_db is not None and self.psnr_db < self.required_psnr_db:
            failed.append(
                f"PSNR {self.psnr_db:.2f} dB is {self.required_psnr_db - self.psnr_db:.2f} dB under "
                f"{self.required_psnr_db:.1f} dB"
            )
        report = self.agreement
        if not report.passed:
            what = "identical labels" if report.task == "segment" else f"pixels within {report.tolerance} grey levels"
            failed.append(
                f"{100 * report.fraction:.2f}% {what} is {100 * (report.required - report.fraction):.2f} points "
                f"under {100 * report.required:.2f}%"
            )
        return failed

    def summary(self) -> str:
        psnr = "" if self.psnr_db is None else f"PSNR {self.psnr_db:.2f} dB (need >= {self.required_psnr_db} dB), "
        return f"{psnr}{self.agreement.summary()}".replace(" vs onnx", " held out, vs STEM.onnx")

    def to_dict(self) -> dict[str, Any]:
        figures = {"psnr_db": self.psnr_db, "required_psnr_db": self.required_psnr_db, "passed": self.passed}
        return json_plain({**self.agreement.to_dict(), **figures})


def gate(task: str, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> GateReport:
    """Judge INT8 outputs against the FP32 ONNX's, image by image (GATES)."""
    import numpy as np

    from uda_trt.export.parity import compare

    bounds = GATES[task]
    agreement = compare(task, reference, candidate, bounds["required"], bounds["tolerance"], "onnx")
    if task != "translate":
        return GateReport(agreement)
    squared = sum(float(np.square(r.astype(np.float64) - c).sum()) for r, c in zip(reference, candidate, strict=True))
    mse = squared / sum(r.size for r in reference)
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return GateReport(agreement, psnr, bounds["psnr_db"])


def output_error(task: str, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """One number to rank candidates by, lower is closer: mean squared error (translators), share of labels
    that differ (segmenters)."""
    import numpy as np

    if task == "segment":
        return float(np.mean([np.mean(r != c) for r, c in zip(reference, candidate, strict=True)]))
    return float(
        np.mean([np.mean(np.square(r.astype(np.float64) - c)) for r, c in zip(reference, candidate, strict=True)])
    )


@dataclass(frozen=True)
class Int8Result:
    """What the INT8 step wrote and measured."""

    path: Path
    sidecar: Sidecar
    gate: GateReport
    method: str
    float_nodes: list[str]  # kept float for quality (the sensitivity pass)
    float_for_speed: list[str] = field(default_factory=list)  # kept float by the speed pass


class _Images:
    """Calibration data for ONNX Runtime's calibrators, read lazily one image per feed. `set_range` and `len` let
    quantize_static collect image by image (CalibStridedMinMax=1): calibrators otherwise hold every activation of
    every image in memory at once."""

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], np.ndarray]) -> None:
        self.paths, self.load = list(paths), load
        self.set_range(0, len(self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, min(end_index, len(self.paths))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= self.end:
            return None
        self.next += 1
        return {"images": self.load(self.paths[self.next - 1])[None]}


def image_loader(task: str, working_size: tuple[int, int] | None) -> Callable[[Path], np.ndarray]:
    """Path -> the uint8 RGB image the artifact is fed: at the working size (translators) or its own (segmenters).
    An unreadable calibration image is a user error naming it (exit 2)."""
    from uda_trt.runtime.imageio import LogOnce, read_rgb, resize_rgb

    log_once = LogOnce()

    def load(path: Path) -> np.ndarray:
        try:
            image = read_rgb(path, log_once)
        except SampleError as error:
            raise UserError(f"--calibration: {error}") from None
        if task == "translate" and image.shape[1::-1] != tuple(working_size):
            image = resize_rgb(image, working_size)
        return image

    return load


class _Quantizer:
    """quantize_static runs for one FP32 model: ranges calibrated once per (method, image list) and kept in a cache
    file, so trying exclusions costs a quantization and a held-out run, not a calibration."""

    def __init__(
        self, onnx_path: Path, sidecar: Sidecar, data: CalibrationSet, op_types: Sequence[str], folder: Path
    ) -> None:
        import onnx

        self.sidecar, self.data, self.folder = sidecar, data, folder
        self.count = 0  # candidates written
        model = onnx.load(onnx_path)
        for index, node in enumerate(model.graph.node):  # node names key the exclusion lists
            node.name = node.name or f"{node.op_type}_{index}"
        self.phase_convs = split_conv_transposes(model)
        self.source = folder / "source.onnx"
        onnx.save(model, self.source)
        self.op_types = list(op_types)
        # DepthToSpace is quantized for the interleaves only: one the model had of its own stays as the op types
        # asked (float under "measured", int8 under "none").
        added = "DepthToSpace" not in self.op_types
        self.quantize_op_types = [*self.op_types, "DepthToSpace"] if added else self.op_types
        interleaves = {phase_conv.interleave for phase_conv in self.phase_convs}
        own = [node.name for node in model.graph.node if node.op_type == "DepthToSpace"]
        self.float_depth_to_space = [name for name in own if name not in interleaves] if added else []
        self.layers = {node.name: node for node in model.graph.node if node.op_type in op_types}
        self.eligible = list(self.layers)
        self.weight_dims = {init.name: tuple(init.dims) for init in model.graph.initializer}
        self.quantized_op_types = sorted({node.op_type for node in model.graph.node} & set(op_types))
        self.load = image_loader(sidecar.task, sidecar.working_size)
        self.held_out = [self.load(path) for path in data.held_out]
        self.reference = self.run(onnx_path)

    def run(self, path: Path, images: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Outputs of an artifact on the held-out images (or `images`), one image per run, through the runtime's
        own CPU runner."""
        from uda_trt.runtime.runners import OnnxRuntimeRunner

        name = self.sidecar.output_name()
        with OnnxRuntimeRunner(path, self.sidecar, "onnxruntime-cpu") as runner:
            return [runner.infer({"images": image[None]})[name][0] for image in images or self.held_out]

    def quantize(self, method: str, images: int, exclude: Sequence[str] = (), only: Sequence[str] = ()) -> Path:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        self.count += 1
        out = self.folder / f"candidate-{self.count}.int8.onnx"
        paths = self.data.calibration[:images]
        exclude, only = self._interleaves(exclude, only)
        with _quiet():
            quantize_static(
                self.source,
                out,
                _Images(paths, self.load),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=self.quantize_op_types,
                per_channel=True,
                reduce_range=True,  # 7-bit weights: see WEIGHTS
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=list(only),
                nodes_to_exclude=list(exclude),
                calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[method]),
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "CalibStridedMinMax": 1},
                calibration_cache_path=self.folder / f"ranges-{method}-{len(paths)}.json",
            )
        return out

    def _interleaves(self, exclude: Sequence[str], only: Sequence[str]) -> tuple[list[str], list[str]]:
        """The exclusion and selection lists with each rewritten ConvTranspose's DepthToSpace following its Conv:
        quantized with it (int8 in, int8 out, the same scale: exact), float when it is float; and the model's own
        DepthToSpace nodes excluded when only the interleaves brought the op type in."""
        excluded, chosen = set(exclude), set(only)
        float_conv = [p.interleave for p in self.phase_convs if p.conv in excluded or (chosen and p.conv not in chosen)]
        int8_conv = [p.interleave for p in self.phase_convs if p.conv in chosen]
        return [*exclude, *float_conv, *self.float_depth_to_space], [*only, *int8_conv]

    def measure(self, path: Path) -> GateReport:
        return gate(self.sidecar.task, self.reference, self.run(path))

    def trial(
        self, method: str, images: int, only: Sequence[str] = (), held_out: int | None = None
    ) -> list[np.ndarray]:
        """Outputs on the first `held_out` held-out images (all by default) of a candidate that is then deleted."""
        candidate = self.quantize(method, images, only=only)
        try:
            return self.run(candidate, self.held_out[:held_out])
        finally:
            candidate.unlink()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """quantize_static prints its calibration progress to stdout (the command's stdout lists what it wrote) and logs
    a warning about its optional pre-processing on every call: both are hidden while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def export_int8(
    onnx_path: Path,
    data: CalibrationSet,
    method: str = "auto",
    keep_float: str = "measured",
    require_gates: bool = True,
) -> Int8Result:
    """Write `STEM.int8.onnx` beside `onnx_path` once it passes the gates, and extend the sidecar on disk.

    method: "auto" (measured, see the module doc) or one of METHODS. keep_float: "measured" or "none" (KEEP_FLOAT).
    Raises ParityError (exit 1, one line saying which gate failed by how much) and writes no INT8 artifact when the
    gates fail; STEM.onnx and the sidecar are left as they were. With `require_gates=False` (the benchmark's) a
    failed gate is recorded in the sidecar instead (validation.int8_onnx.passed false), the artifact is written,
    and no sensitivity pass runs: the speed measured is that of the artifact whose quality is reported.
    """
    import onnx

    from uda_trt.export.graph_checks import require_uint8_at_edges
    from uda_trt.export.parity import ParityError

    onnx_path = Path(onnx_path)
    json_path = sidecar_path(onnx_path)
    sidecar = load_sidecar(json_path)
    int8_path = onnx_path.with_name(onnx_path.name[: -len(".onnx")] + ".int8.onnx")
    int8_path.unlink(missing_ok=True)  # the sidecar on disk does not list it; never leave an old one beside
    op_types = QUANTIZED_OP_TYPES if keep_float == "measured" else _every_quantizable_op_type()
    with tempfile.TemporaryDirectory(prefix="uda-trt-int8-") as folder:
        quantizer = _Quantizer(onnx_path, sidecar, data, op_types, Path(folder))
        if not quantizer.eligible:  # ONNX Runtime's calibrators would fail with a traceback on an empty model
            raise UserError(
                f"{onnx_path.name} has no {', '.join(op_types)} layer for INT8 to quantize; no INT8 artifact written"
            )
        counts = (len(quantizer.eligible), len(data.calibration), len(data.held_out))
        log.info("INT8: %d layers to quantize, %d calibration and %d held-out images", *counts)
        method, trials = _choose_method(quantizer, method)
        speed = None
        if keep_float == "measured":
            speed = _speed(quantizer, method)
            candidate = speed.candidate
        else:
            candidate = quantizer.quantize(method, len(data.calibration))
        for_speed = speed.float_nodes if speed else []
        report = quantizer.measure(candidate)
        float_nodes: list[str] = []
        ranking: list[tuple[str, float]] = []
        if require_gates and not report.passed and keep_float == "measured":
            candidate, report, float_nodes, ranking = _keep_float_for_quality(
                quantizer, method, candidate, report, for_speed
            )
        if not report.passed and require_gates:
            raise ParityError(
                f"INT8 gate failed for {int8_path.name} ({method} calibration, {len(float_nodes)} layers kept "
                f"float for quality, {len(for_speed)} for speed): {'; '.join(report.failures())}; no INT8 artifact "
                f"written, {onnx_path.name} is fine"
            )
        if not report.passed:
            log.warning("INT8: %s fails its gates (%s); written anyway", int8_path.name, "; ".join(report.failures()))
        model = onnx.load(candidate)
        model.ir_version = min(model.ir_version, sidecar.ir_version)
        require_uint8_at_edges(model, int8_path.name, "; no INT8 artifact written")
        quantized = quantized_nodes(model, quantizer.eligible)
        atomic_write_bytes(int8_path, model.SerializeToString())
    policy = {
        "quantizer": f"onnxruntime {metadata.version('onnxruntime')} quantize_static",
        "format": "QDQ",
        "activations": "int8, symmetric, per tensor",
        "weights": WEIGHTS,
        "keep_float": keep_float,
        "gates_required": require_gates,
        "quantized_op_types": quantizer.quantized_op_types,
        "quantized_nodes": quantized,
        "conv_transpose_phases": [phase_conv.to_dict() for phase_conv in quantizer.phase_convs],
        "float_nodes": float_nodes,
        "float_for_speed": speed.float_for_speed() if speed else [],
        "speed": speed.record if speed else None,
        "sensitivity": [{"node": name, "error": error} for name, error in ranking],
        "calibration": {"method": method, "method_trials": trials, **data.describe()},
    }
    current = load_sidecar(json_path)  # as it is now: an engine step may have extended it since
    artifacts = {key: entry for key, entry in current.artifacts.items() if key != "int8_engine"}  # built from the old
    validation = {key: entry for key, entry in (current.validation or {}).items() if key != "int8_engine"}
    sidecar = dataclasses.replace(
        current,
        artifacts={**artifacts, "int8_onnx": {"file": int8_path.name, "sha256": file_sha256(int8_path)}},
        int8_policy=json_plain(policy),
        int8_engine=None,
        validation={**validation, "int8_onnx": report.to_dict()},
    )
    sidecar.write(json_path)
    return Int8Result(int8_path, sidecar, report, method, float_nodes, for_speed)


def _speed(quantizer: _Quantizer, method: str) -> SpeedPass:
    """int8_speed's pass on candidates calibrated with `method` on every calibration image, timed on the first
    held-out image as the artifact takes it."""
    from uda_trt.export.int8_speed import speed_pass, threads_per_run

    def quantize(exclude: Sequence[str]) -> Path:
        return quantizer.quantize(method, len(quantizer.data.calibration), exclude=exclude)

    feeds = {quantizer.sidecar.input_name(): quantizer.held_out[0][None]}
    threads = threads_per_run(quantizer.source, quantizer.sidecar)
    speed = speed_pass(quantize, quantizer.layers, quantizer.weight_dims, feeds, threads, quantizer.folder)
    log.info("INT8: %d layer(s) kept float for speed: %s", len(speed.float_nodes), ", ".join(speed.float_nodes))
    return speed


def _keep_float_for_quality(
    quantizer: _Quantizer, method: str, candidate: Path, report: GateReport, for_speed: Sequence[str]
) -> tuple[Path, GateReport, list[str], list[tuple[str, float]]]:
    """The sensitivity pass (module doc) over the layers the speed pass left quantized: the candidate it ends
    with, its gate, the layers it kept float and its ranking."""
    layers = [name for name in quantizer.eligible if name not in set(for_speed)]
    if len(layers) < 2:
        return candidate, report, [], []
    log.info("INT8: %s fails (%s); ranking layers by sensitivity", method, "; ".join(report.failures()))
    ranking = _sensitivity(quantizer, method, layers)
    float_nodes: list[str] = []
    for count in range(1, len(ranking) // 2 + 1):
        float_nodes = [name for name, _ in ranking[:count]]
        candidate = quantizer.quantize(method, len(quantizer.data.calibration), exclude=[*for_speed, *float_nodes])
        report = quantizer.measure(candidate)
        log.info("INT8: %d layer(s) kept float: %s", count, report.summary())
        if report.passed:
            break
    return candidate, report, float_nodes, ranking


def _choose_method(quantizer: _Quantizer, method: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The given method, or the one whose all-layers INT8 model is closest to STEM.onnx on the held-out images
    after calibrating on the first METHOD_TRIAL_IMAGES calibration images; with each trial's figures."""
    if method != "auto":
        return method, {}
    trials, errors = {}, {}
    images = min(METHOD_TRIAL_IMAGES, len(quantizer.data.calibration))
    for name in METHODS:
        outputs = quantizer.trial(name, images)
        errors[name] = output_error(quantizer.sidecar.task, quantizer.reference, outputs)
        report = gate(quantizer.sidecar.task, quantizer.reference, outputs)
        trials[name] = {"images": images, "error": errors[name], "psnr_db": report.psnr_db}
        trials[name]["fraction"] = report.agreement.fraction
        log.info("INT8: %s calibration on %d images: %s", name, images, report.summary())
    return min(METHODS, key=lambda name: errors[name]), trials


def _sensitivity(quantizer: _Quantizer, method: str, layers: Sequence[str]) -> list[tuple[str, float]]:
    """Each of `layers` with the error it alone adds on the first SENSITIVITY_IMAGES held-out images, worst
    first."""
    reference = quantizer.reference[:SENSITIVITY_IMAGES]
    scores = []
    for name in layers:
        outputs = quantizer.trial(method, len(quantizer.data.calibration), [name], SENSITIVITY_IMAGES)
        scores.append((name, output_error(quantizer.sidecar.task, reference, outputs)))
    return sorted(scores, key=lambda item: -item[1])


def quantized_nodes(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """Those of the named nodes whose weights (second input) come from a DequantizeLinear: the layers that really
    compute from INT8. Reading a dequantized activation is not enough: a layer kept float still reads one when
    another consumer of the same tensor is quantized (the quantizer puts one Q/DQ pair on a tensor for all)."""
    dequantized = {output for node in model.graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    wanted = set(names)
    return [
        node.name
        for node in model.graph.node
        if node.name in wanted and len(node.input) > 1 and node.input[1] in dequantized
    ]


def _every_quantizable_op_type() -> list[str]:
    """Every op type ONNX Runtime's QDQ quantizer can quantize (policy "none")."""
    from onnxruntime.quantization.registry import QDQRegistry

    return sorted(QDQRegistry)
