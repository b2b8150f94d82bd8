"""run-uda: the whole study in one call, with every number from the real code paths.

data (synthetic, or GTA5 + Cityscapes roots) -> CycleGAN (PyTorch) -> ONNX export (parity-checked) -> batch-translate
all of the source with ONNX Runtime -> source-only, adapted and (synthetic only) oracle segmenters with identical
configs -> export -> evaluate on target val -> report.

A killed study is finished by rerunning the same command: every stage keeps what is complete and verified. The data
are completed (OUT/data/synthetic.json), CycleGAN and segmenter training resume from their training states (a
finished one returns at once), an export is skipped when its sidecar records the sha256 of the checkpoint it came
from and the ONNX file still matches, batch-translate resumes when its manifest records the same translator (and
starts over when the translator changed), and evaluation is redone (cheap). OUT/study.json records what defines the
study (preset, seed, data roots, training iterations): a rerun that asks for another one is refused in one line, never
mixed in. OUT/run-uda.log keeps the log lines of every run into OUT, timestamped, appended; each training stage logs
its seconds per iteration and an ETA (benchmarks.progress). With --int8 (StudyConfig.int8), the study's artifacts are
then quantized to INT8 and reported beside their FP32 figures (benchmarks.int8_study); study.json does not record it,
so adding --int8 to a finished study only adds the INT8 stages.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click

from uda_trt.benchmarks.presets import PRESETS, Preset, with_budget
from uda_trt.benchmarks.progress import format_duration, logged_eta
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import write_json
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.runtime.sidecar import file_sha256, load_sidecar
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

ARMS = ("source_only", "adapted", "oracle")
STUDY_FILE = "study.json"
LOG_FILE = "run-uda.log"
# The studies run-uda runs (--study), each a function of a StudyConfig returning its report (with report["summary"]
# ["miou"] per arm), named "module:function" so a study's modules load only when it runs.
STUDIES = {
    "translation": "uda_trt.benchmarks.uda:run_translation_study",
    "photo-to-label": "uda_trt.benchmarks.photo_to_label:run_photo_to_label_study",
    "label-fraction": "uda_trt.benchmarks.label_fraction:run_label_fraction_study",
    "translators": "uda_trt.benchmarks.translator_study:run_translator_study",
}
# Studies with presets of their own: "module:function" of StudyConfig -> (translator iterations, segmenter
# iterations), what OUT/study.json records for --cyclegan-iterations and --segmenter-iterations. The others use
# benchmarks.presets.
STUDY_BUDGETS = {
    "photo-to-label": "uda_trt.benchmarks.photo_to_label:budget_iterations",
    "label-fraction": "uda_trt.benchmarks.label_fraction:budget_iterations",
}
_STUDY_FLAGS = {
    "study": "--study",
    "fractions": "--fractions",
    "translators": "--translators",
    "preset": "--preset",
    "seed": "--seed",
    "source_root": "--source",
    "target_root": "--target",
    "cyclegan_iterations": "--cyclegan-iterations",
    "segmenter_iterations": "--segmenter-iterations",
}
# Seconds per iteration of the full preset's training on the CPU, measured on 2 cores (PyTorch 2, one iteration
# each after a warm-up): CycleGAN ResNet-9 ngf 64 at 512x256, batch 1; DeepLabV3-ResNet50 at 512x512, batch 8.
FULL_CPU_SECONDS_PER_ITERATION = {"cyclegan": 75.0, "segmenter": 110.0, "cores": 2}


@dataclass(frozen=True)
class StudyConfig:
    """One run-uda study: where data comes from, the preset, the seed, where everything goes."""

    output: Path
    study: str = "translation"  # a key of STUDIES
    preset: str = "demo"
    seed: int = 0
    source_root: Path | None = None  # GTA5 layout; None: synthetic
    target_root: Path | None = None  # Cityscapes layout; None: synthetic
    cityscapes_val_split: str = "val"
    cyclegan_iterations: int | None = None  # None: the preset's
    segmenter_iterations: int | None = None  # None: the preset's
    fractions: tuple[float, ...] | None = None  # label-fraction study: shares of labelled target images
    translators: tuple[str, ...] | None = None  # translators study: the translators compared
    # translation study: also INT8 artifacts beside the FP32 ones (benchmarks.int8_study). Not part of identity():
    # adding --int8 to a finished study reuses its FP32 stages and adds the INT8 ones.
    int8: bool = False
    int8_keep_float: str = "measured"  # export.int8's policy; "none" (hidden flag) only in tests

    @property
    def synthetic(self) -> bool:
        return self.target_root is None

    @property
    def arms(self) -> tuple[str, ...]:
        """The segmenter arms: an oracle only with synthetic data (trained on target train labels)."""
        return ARMS if self.synthetic else ARMS[:2]

    def resolved_preset(self) -> Preset:
        """The preset with the iteration overrides applied (schedules scaled with them, presets.with_budget)."""
        return with_budget(PRESETS[self.preset], self.cyclegan_iterations, self.segmenter_iterations)

    def identity(self) -> dict:
        """What a rerun into the same folder must repeat to continue the study (JSON-plain, roots resolved)."""

        def resolved(root: Path | None) -> str | None:
            return None if root is None else str(Path(root).resolve())

        if self.study in STUDY_BUDGETS:
            translator_iterations, segmenter_iterations = _named_function(STUDY_BUDGETS[self.study])(self)
        else:
            preset = self.resolved_preset()
            translator_iterations, segmenter_iterations = (
                preset.cyclegan["iterations"],
                preset.segmenter["iterations"],
            )
        study_options = {
            key: list(value)
            for key, value in (("fractions", self.fractions), ("translators", self.translators))
            if value is not None
        }
        return {
            "study": self.study,
            **study_options,
            "preset": self.preset,
            "seed": self.seed,
            "source_root": resolved(self.source_root),
            "target_root": resolved(self.target_root),
            "cityscapes_val_split": self.cityscapes_val_split,
            "cyclegan_iterations": translator_iterations,
            "segmenter_iterations": segmenter_iterations,
        }


def claim_output(config: StudyConfig) -> None:
    """Record the study in OUT/study.json, or check that OUT holds this same study (one-line UserError if not).

    A changed --preset, --seed, data root or iteration count is refused rather than redone: redoing would silently
    throw away a finished study's training. An OUT that is neither empty nor a study folder is refused too.
    """
    out, identity = config.output, config.identity()
    path = out / STUDY_FILE
    if not claim_output_folder(out, marker=STUDY_FILE, command="run-uda"):
        write_json(path, identity)
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); choose another --output") from None
    if not isinstance(previous, dict):
        raise UserError(f"{path}: not a run-uda study record; choose another --output")
    previous.setdefault("study", "translation")  # a record from before --study
    if previous.get("preset") in PRESETS:  # a record from before the iteration flags: the preset's own budget
        own = PRESETS[previous["preset"]]
        previous.setdefault("cyclegan_iterations", own.cyclegan["iterations"])
        previous.setdefault("segmenter_iterations", own.segmenter["iterations"])
    refuse_changed(
        path, previous, identity, _STUDY_FLAGS, "rerun with the same options to finish it, or choose another --output"
    )


def export_once(checkpoint: Path, output_dir: Path, working_size: tuple[int, int] | None = None) -> Path:
    """OUTPUT_DIR/STEM.onnx exported from `checkpoint`, or kept as it is when it is already that export (its
    sidecar records the checkpoint's sha256 and the ONNX file's, at the same working size)."""
    from uda_trt.export.onnx_export import export_onnx

    onnx_path = output_dir / f"{checkpoint.stem}.onnx"
    if _is_export_of(onnx_path, checkpoint, working_size):
        log.info("%s is the export of %s; kept", onnx_path, checkpoint)
        return onnx_path
    return export_onnx(checkpoint, output_dir=output_dir, working_size=working_size, fp16=False).onnx_path


def _is_export_of(onnx_path: Path, checkpoint: Path, working_size: tuple[int, int] | None) -> bool:
    try:
        sidecar = load_sidecar(onnx_path)  # checks the ONNX file against the sha256 its sidecar records
    except UserError:
        return False
    if working_size is not None and tuple(sidecar.working_size or ()) != tuple(working_size):
        return False
    return sidecar.source_checkpoint.get("sha256") == file_sha256(checkpoint)


def translation_resumable(output_root: Path, artifact: Path, input_root: Path | None = None) -> bool:
    """Whether OUTPUT_ROOT holds a batch-translate run (finished or killed) made with this same artifact (and, when
    given, of this same input folder: a study folder moved elsewhere translates its own data again)."""
    try:
        manifest = json.loads((output_root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    identity = manifest.get("identity") if isinstance(manifest, dict) else None
    if not isinstance(identity, dict) or identity.get("artifact_sha256") != file_sha256(artifact):
        return False
    return input_root is None or identity.get("input_root") == str(Path(input_root).resolve())


def make_data(config: StudyConfig, preset: Preset) -> tuple[Path, Path]:
    """The source (GTA5 layout) and target (Cityscapes layout) roots: the user's, or synthetic ones made now."""
    if not config.synthetic:
        return config.source_root, config.target_root
    from uda_trt.runtime.synthetic import write_synthetic_datasets

    data = config.output / "data"
    s = preset.synthetic
    write_synthetic_datasets(
        data,
        gta5_count=s.gta5_count,
        cityscapes_train=s.cityscapes_train,
        cityscapes_val=s.cityscapes_val,
        preset=s.preset,
        seed=config.seed,
    )
    return data / "gta5", data / "cityscapes"


def full_preset_cpu_warning(config: StudyConfig) -> str | None:
    """One line when --preset full would train on the CPU (PyTorch sees no CUDA GPU): roughly how long it would
    take, from FULL_CPU_SECONDS_PER_ITERATION scaled by this process's cores (at best: training rarely scales that
    well). None otherwise."""
    if config.preset != "full":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    if config.study != "translation":
        return (
            f"--preset full without a CUDA GPU (PyTorch sees none): the {config.study} study's real-data budget "
            "trains on the CPU for days; use a machine with a GPU, or a smaller budget with --cyclegan-iterations "
            "and --segmenter-iterations"
        )
    from uda_trt.runtime.jobs.workers import default_workers

    preset, rates, cores = config.resolved_preset(), FULL_CPU_SECONDS_PER_ITERATION, default_workers()
    cyclegan, segmenter, arms = preset.cyclegan["iterations"], preset.segmenter["iterations"], len(config.arms)
    seconds = (cyclegan * rates["cyclegan"] + arms * segmenter * rates["segmenter"]) * rates["cores"] / cores
    return (
        f"--preset full without a CUDA GPU (PyTorch sees none): training runs on the CPU, roughly "
        f"{format_duration(seconds)} with {cores} core(s) ({cyclegan} CycleGAN and {arms} x {segmenter} segmenter "
        f"iterations at ~{rates['cyclegan']:.0f} and ~{rates['segmenter']:.0f} s/it measured on {rates['cores']} "
        "cores); use a machine with a GPU, or a smaller budget with --cyclegan-iterations and --segmenter-iterations"
    )


@contextmanager
def study_log(out: Path) -> Iterator[None]:
    """While the block runs, every log line also goes to OUT/run-uda.log (appended, timestamped), and so does
    the error that stops the study: the console shows it already, the file keeps it with the study."""
    handler = logging.FileHandler(out / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    except BaseException as error:
        user_error = isinstance(error, click.ClickException)
        message = error.format_message() if user_error else f"{type(error).__name__}: {error}"
        quiet = user_error or isinstance(error, KeyboardInterrupt)  # no traceback for what the user caused
        exc_info = None if quiet else (type(error), error, error.__traceback__)
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "run-uda stopped: %s", (message,), exc_info)
        handler.handle(record)
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def run_study(config: StudyConfig) -> dict:
    """Run one study (config.study) end to end and write OUT/report.{json,md} plus figures; return the report."""
    run = _named_function(STUDIES[config.study])
    claim_output(config)
    with study_log(config.output):
        log.info("run-uda study in %s: %s", config.output, json.dumps(config.identity()))
        return run(config)


def _named_function(name: str):
    """The function a "module:function" string names (imported now, so a study's modules load only when used)."""
    module_name, function_name = name.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def run_translation_study(config: StudyConfig) -> dict:
    """The source-only vs adapted (vs oracle) study: CycleGAN, translation, one segmenter per arm, report."""
    return _run_stages(config, config.resolved_preset())


def _train_info(config_json: Path, keys: tuple[str, ...]) -> dict:
    """The resolved settings a trainer wrote to its config.json (device, counts), for the report."""
    try:
        written = json.loads(config_json.read_text())
    except (OSError, ValueError):  # the report says "not recorded" rather than losing the study's results
        return dict.fromkeys(keys)
    written = {**written.get("config", {}), **written}  # train-cyclegan nests its config; the segmenter does not
    return {key: written.get(key) for key in keys}


FCN_SCORE_KEYS = ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy", "images_scored", "images_skipped")


def fcn_scores(arms: dict[str, dict], image_sets: dict[str, Path]) -> dict:
    """The FCN-score of each labelled image set (GTA5 layout: the raw source, its translation): the oracle segmenter,
    trained on target images, scores them against the source labels, so a translation that makes the source look
    like the target scores higher than the raw source. Without an oracle (real data) the reason instead."""
    from uda_trt.runtime.fcn_score import fcn_score

    if "oracle" not in arms:
        reason = (
            "needs a segmenter trained on the target domain: the oracle arm, which only the synthetic data has "
            "(evaluate-translation --segmenter scores a translation with yours)"
        )
        return {"segmenter": None, "reason": reason}
    artifact = Path(arms["oracle"]["artifact"])
    scores = {}
    for name, root in image_sets.items():
        result = fcn_score(artifact, root)
        scores[name] = {key: result[key] for key in FCN_SCORE_KEYS}
    return {"segmenter": "oracle", "artifact": str(artifact), "sets": scores}


def _run_stages(config: StudyConfig, preset: Preset) -> dict:
    from uda_trt.benchmarks.report import write_study_report
    from uda_trt.runtime.evaluate import evaluate_engine
    from uda_trt.runtime.translate import TranslateJob, batch_translate
    from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan
    from uda_trt.train.segmenter import SegmenterConfig, train_segmenter

    out = config.output
    timer = StageTimer(announce=log.info)
    with timer.stage("data"):
        source_root, target_root = make_data(config, preset)
    cyclegan_config = CycleGANConfig(
        source=source_root, target=target_root, output=out / "cyclegan", seed=config.seed, **preset.cyclegan
    )
    # Ctrl-C / SIGTERM in a training stage: finish the iteration, save the state, stop (run-uda says how to go on)
    with (
        timer.stage("train_cyclegan"),
        logged_eta("train_cyclegan", out / "cyclegan", preset.cyclegan["iterations"]),
        StopRequest() as stop,
    ):
        cyclegan_dir = train_cyclegan(cyclegan_config, resume=True, stop=stop)
    with timer.stage("export_translator"):
        # The study runs ONNX Runtime on the CPU, where an FP16 model only costs export time (export-trt makes it).
        translator = export_once(cyclegan_dir / "latest_net_G_A.pth", out / "artifacts", preset.translate_size)
    with timer.stage("batch_translate"):
        translate_job = TranslateJob(
            artifact=translator,
            input_root=source_root,
            output_root=out / "translated",
            size=preset.translate_size,
            # resume a killed translation made with this translator; start over when the translator changed
            overwrite=not translation_resumable(out / "translated", translator, source_root),
        )
        translate_report = batch_translate(translate_job)

    arm_data = {"source_only": source_root, "adapted": out / "translated", "oracle": target_root}
    base_segmenter = SegmenterConfig(data_root=source_root, output_dir=out, seed=config.seed, **preset.segmenter)
    arms: dict[str, dict] = {}
    for arm in config.arms:
        arm_config = replace(base_segmenter, data_root=arm_data[arm], output_dir=out / f"segmenter_{arm}")
        stage = f"train_segmenter_{arm}"
        with (
            timer.stage(stage),
            logged_eta(stage, arm_config.output_dir, arm_config.iterations),
            StopRequest() as stop,
        ):
            checkpoint = train_segmenter(arm_config, resume=True, stop=stop)
        with timer.stage(f"export_segmenter_{arm}"):
            artifact = export_once(checkpoint, out / "artifacts" / arm)
        with timer.stage(f"evaluate_{arm}"):
            metrics = evaluate_engine(
                artifact, target_root, split=config.cityscapes_val_split, output=out / "eval" / arm
            )
        arms[arm] = {
            "data": str(arm_data[arm]),
            "config": asdict(arm_config),
            "training": _train_info(
                arm_config.output_dir / "config.json",
                ("device_resolved", "val_every_resolved", "train_samples", "heldout_samples"),
            ),
            "checkpoint": str(checkpoint),
            "artifact": str(artifact),
            "metrics": metrics,
        }
    with timer.stage("fcn_score"):
        fcn = fcn_scores(arms, {"source": source_root, "translated": out / "translated"})
    int8 = None
    if config.int8:
        from uda_trt.benchmarks.int8_study import run_int8_stages

        int8 = run_int8_stages(
            out,
            timer,
            translator=translator,
            translate_size=preset.translate_size,
            source_root=source_root,
            target_root=target_root,
            val_split=config.cityscapes_val_split,
            arms=arms,
            fcn=fcn,
            keep_float=config.int8_keep_float,
        )
    report = {
        "study": asdict(config),
        "preset": asdict(preset),
        "cyclegan_config": asdict(cyclegan_config),
        "cyclegan_training": _train_info(
            cyclegan_dir / "config.json", ("iterations", "decay_iterations", "device", "images")
        ),
        "translator_artifact": str(translator),
        "batch_translate": translate_report,
        "arms": arms,
        "fcn_score": fcn,
        **({"int8": int8} if int8 is not None else {}),
        "stage_seconds": {name: round(seconds, 2) for name, seconds in timer.seconds.items()},
    }
    written = write_study_report(out, report, target_root, config.cityscapes_val_split)
    if int8 is not None:
        from uda_trt.benchmarks.int8_study import add_int8_markdown

        add_int8_markdown(out / "report.md", int8)
    return written
