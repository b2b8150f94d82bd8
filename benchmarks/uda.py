"""run-uda: the whole study in one call, with every number from the real code paths.

data (synthetic, or GTA5 + Cityscapes roots) -> CycleGAN (PyTorch) -> ONNX export (parity-checked) -> batch-translate
all of the source with ONNX Runtime -> source-only, adapted and (synthetic only) oracle segmenters with identical
configs -> export -> evaluate on target val -> report.

A killed study is finished by rerunning the same command: every stage keeps what is complete and verified. The data
are completed (OUT/data/synthetic.json), CycleGAN and segmenter training resume from their training states (a
finished one returns at once), an export is skipped when its sidecar records the sha256 of the checkpoint it came
from and the ONNX file still matches, batch-translate resumes when its manifest records the same translator (and
starts over when the translator changed), and evaluation is redone (cheap). OUT/study.json records what defines the
study (preset, seed, data roots): a rerun that asks for another one is refused in one line, never mixed in.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from uda_trt.benchmarks.presets import PRESETS, Preset
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import write_json
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.runtime.sidecar import file_sha256, load_sidecar

log = logging.getLogger(__name__)

ARMS = ("source_only", "adapted", "oracle")
STUDY_FILE = "study.json"
_STUDY_FLAGS = {"preset": "--preset", "seed": "--seed", "source_root": "--source", "target_root": "--target"}


@dataclass(frozen=True)
class StudyConfig:
    """One run-uda study: where data comes from, the preset, the seed, where everything goes."""

    output: Path
    preset: str = "demo"
    seed: int = 0
    source_root: Path | None = None  # GTA5 layout; None: synthetic
    target_root: Path | None = None  # Cityscapes layout; None: synthetic
    cityscapes_val_split: str = "val"

    @property
    def synthetic(self) -> bool:
        return self.source_root is None

    def resolved_preset(self) -> Preset:
        return PRESETS[self.preset]

    def identity(self) -> dict:
        """What a rerun into the same folder must repeat to continue the study (JSON-plain, roots resolved)."""

        def resolved(root: Path | None) -> str | None:
            return None if root is None else str(Path(root).resolve())

        return {
            "preset": self.preset,
            "seed": self.seed,
            "source_root": resolved(self.source_root),
            "target_root": resolved(self.target_root),
            "cityscapes_val_split": self.cityscapes_val_split,
        }


def claim_output(config: StudyConfig) -> None:
    """Record the study in OUT/study.json, or check that OUT holds this same study (one-line UserError if not).

    A changed --preset, --seed or data root is refused rather than redone: redoing would silently throw away a
    finished study's training. An OUT that is neither empty nor a study folder is refused too.
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


def translation_resumable(output_root: Path, artifact: Path) -> bool:
    """Whether OUTPUT_ROOT holds a batch-translate run (finished or killed) made with this same artifact."""
    try:
        manifest = json.loads((output_root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    identity = manifest.get("identity") if isinstance(manifest, dict) else None
    return isinstance(identity, dict) and identity.get("artifact_sha256") == file_sha256(artifact)


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


def run_study(config: StudyConfig) -> dict:
    """Run one study end to end and write OUT/report.{json,md} plus figures; return the report."""
    from uda_trt.benchmarks.report import write_study_report
    from uda_trt.runtime.evaluate import evaluate_engine
    from uda_trt.runtime.translate import TranslateJob, batch_translate
    from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan
    from uda_trt.train.segmenter import SegmenterConfig, train_segmenter

    preset = config.resolved_preset()
    out = config.output
    claim_output(config)
    timer = StageTimer(announce=log.info)
    with timer.stage("data"):
        source_root, target_root = make_data(config, preset)
    with timer.stage("train_cyclegan"):
        cyclegan_config = CycleGANConfig(
            source=source_root,
            target=target_root,
            output=out / "cyclegan",
            seed=config.seed,
            **preset.cyclegan,
        )
        cyclegan_dir = train_cyclegan(cyclegan_config, resume=True)
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
            overwrite=not translation_resumable(out / "translated", translator),
        )
        translate_report = batch_translate(translate_job)

    arm_data = {"source_only": source_root, "adapted": out / "translated"}
    if config.synthetic:
        arm_data["oracle"] = target_root
    base_segmenter = SegmenterConfig(data_root=source_root, output_dir=out, seed=config.seed, **preset.segmenter)
    arms: dict[str, dict] = {}
    for arm, data_root in arm_data.items():
        arm_config = replace(base_segmenter, data_root=data_root, output_dir=out / f"segmenter_{arm}")
        with timer.stage(f"train_segmenter_{arm}"):
            checkpoint = train_segmenter(arm_config, resume=True)
        with timer.stage(f"export_segmenter_{arm}"):
            artifact = export_once(checkpoint, out / "artifacts" / arm)
        with timer.stage(f"evaluate_{arm}"):
            metrics = evaluate_engine(
                artifact, target_root, split=config.cityscapes_val_split, output=out / "eval" / arm
            )
        arms[arm] = {
            "data": str(data_root),
            "config": asdict(arm_config),
            "checkpoint": str(checkpoint),
            "artifact": str(artifact),
            "metrics": metrics,
        }
    report = {
        "study": asdict(config),
        "preset": asdict(preset),
        "cyclegan_config": asdict(cyclegan_config),
        "translator_artifact": str(translator),
        "batch_translate": translate_report,
        "arms": arms,
        "stage_seconds": {name: round(seconds, 2) for name, seconds in timer.seconds.items()},
    }
    return write_study_report(out, report, target_root, config.cityscapes_val_split)
