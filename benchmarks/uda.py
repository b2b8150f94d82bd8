"""run-uda: the whole study in one call, with every number from the real code paths.

data (synthetic, or GTA5 + Cityscapes roots) -> CycleGAN (PyTorch) -> ONNX export (parity-checked) -> batch-translate
all of the source with ONNX Runtime -> source-only, adapted and (synthetic only) oracle segmenters with identical
configs -> export -> evaluate on target val -> report.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from benchmarks.presets import PRESETS, Preset

log = logging.getLogger(__name__)

ARMS = ("source_only", "adapted", "oracle")


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


class StageTimer:
    """Wall-clock seconds per named stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        log.info("stage %s ...", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("stage %s done in %.1f s", name, self.seconds[name])


def make_data(config: StudyConfig, preset: Preset) -> tuple[Path, Path]:
    """The source (GTA5 layout) and target (Cityscapes layout) roots: the user's, or synthetic ones made now."""
    if not config.synthetic:
        return config.source_root, config.target_root
    from runtime.synthetic_datasets import write_synthetic_datasets

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
    from benchmarks.report import write_study_report
    from export.onnx_export import export_onnx
    from runtime.evaluate import evaluate_engine
    from runtime.translate import TranslateJob, batch_translate
    from train.cyclegan import CycleGANConfig, train_cyclegan
    from train.segmenter import SegmenterConfig, train_segmenter

    preset = config.resolved_preset()
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
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
        cyclegan_dir = train_cyclegan(cyclegan_config)
    with timer.stage("export_translator"):
        # The study runs ONNX Runtime on the CPU, where an FP16 model only costs export time (export-trt makes it).
        translator = export_onnx(
            cyclegan_dir / "latest_net_G_A.pth",
            output_dir=out / "artifacts",
            working_size=preset.translate_size,
            fp16=False,
        )
    with timer.stage("batch_translate"):
        translate_job = TranslateJob(
            artifact=translator.onnx_path,
            input_root=source_root,
            output_root=out / "translated",
            size=preset.translate_size,
            overwrite=True,  # the translator was retrained just now: a previous study's images are stale
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
            checkpoint = train_segmenter(arm_config)
        with timer.stage(f"export_segmenter_{arm}"):
            artifact = export_onnx(checkpoint, output_dir=out / "artifacts" / arm, fp16=False)
        with timer.stage(f"evaluate_{arm}"):
            metrics = evaluate_engine(
                artifact.onnx_path, target_root, split=config.cityscapes_val_split, output=out / "eval" / arm
            )
        arms[arm] = {
            "data": str(data_root),
            "config": asdict(arm_config),
            "checkpoint": str(checkpoint),
            "artifact": str(artifact.onnx_path),
            "metrics": metrics,
        }
    report = {
        "study": asdict(config),
        "preset": asdict(preset),
        "cyclegan_config": asdict(cyclegan_config),
        "translator_artifact": str(translator.onnx_path),
        "batch_translate": translate_report,
        "arms": arms,
        "stage_seconds": timer.seconds,
    }
    return write_study_report(out, report, target_root, config.cityscapes_val_split)
