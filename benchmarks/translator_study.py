"""run-uda --study translators: one segmenter per translator, identical settings, scored side by side on target val.

Translators (run-uda --translators, default all four, in the order given):
- none: the raw source (the translation study's source-only arm);
- cyclegan: plain CycleGAN, exported, batch-translating the whole source (the translation study's adapted arm);
- cyclegan-sem: CycleGAN with CyCADA's semantic-consistency loss, driven by the `none` arm's segmenter (trained on
  source labels, as the loss requires: it is trained first, and trained even when `none` is not compared);
- fda: Fourier Domain Adaptation (runtime.fda_translator), no training, each source image at its own size.
Each translated dataset trains one segmenter with the preset's segmenter settings; with synthetic data an oracle
trained on target train labels is the ceiling. Both CycleGANs and every segmenter use the translation study's
preset (benchmarks.presets, with run-uda's iteration overrides), so `none`, `cyclegan` and `oracle` repeat the
translation study's source-only, adapted and oracle arms of the same seed.

Resume as in the translation study: rerun the same command; trainers resume, exports are kept when their sidecar
matches the checkpoint, translations resume when made with the same translator, evaluation is redone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from uda_trt.benchmarks.presets import Preset
from uda_trt.benchmarks.progress import logged_eta
from uda_trt.benchmarks.uda import (
    StudyConfig,
    _train_info,
    export_once,
    fcn_scores,
    make_data,
    translation_resumable,
)
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

TRANSLATORS = ("none", "cyclegan", "cyclegan-sem", "fda")
ORACLE = "oracle"
SEMANTIC_SOURCE = "none"  # the arm whose segmenter (source labels only) drives the semantic-consistency loss


@dataclass(frozen=True)
class TranslatorSettings:
    """What this study adds to a translation-study preset: the two translators' own settings.

    semantic_weight 1.0 is CyCADA's (its release adds the semantic terms unweighted); fda_beta 0.01 is the FDA
    paper's first value and batch-translate's default. Both are fixed before any run, never chosen on results.
    """

    semantic_weight: float = 1.0
    fda_beta: float = 0.01


# Per run-uda preset. The CycleGAN and segmenter budgets are the translation study's own presets (so --preset demo
# here is `make demo`'s budget), full included: real data, a GPU job. FDA's window is b = floor(min(H, W) * beta)
# frequencies: at the paper's 1024x512 beta 0.01 gives b = 5, at the synthetic 160x88 source b = 0 (the mean colour
# only). The small-image presets take the paper's next value, 0.05 (b = 4, the paper's window in frequencies); this
# was fixed before any FDA arm had run, from the image size alone.
SMALL_IMAGES = TranslatorSettings(fda_beta=0.05)
SETTINGS = {"smoke": SMALL_IMAGES, "demo": SMALL_IMAGES, "full": TranslatorSettings()}


def cpu_seconds() -> float:
    """User + sys seconds of this process and of its waited-for children so far."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class CpuStages:
    """StageTimer's wall seconds plus CPU seconds per stage (user + sys of every thread of this process and of the
    child processes it waited for, such as data generation's workers): on a shared machine the CPU time says what
    a stage costs, the wall time what it took."""

    def __init__(self) -> None:
        self.timer = StageTimer(announce=log.info)
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = cpu_seconds()
        with self.timer.stage(name):
            yield
        self.cpu[name] = cpu_seconds() - start
        log.info("stage %s: %.1f CPU s", name, self.cpu[name])

    def seconds(self) -> dict[str, dict[str, float]]:
        return {
            "wall": {name: round(s, 2) for name, s in self.timer.seconds.items()},
            "cpu": {name: round(s, 2) for name, s in self.cpu.items()},
        }


def run_translator_study(config: StudyConfig) -> dict:
    """The translators study end to end; writes OUT/report.{json,md} and samples.png, returns the report."""
    from uda_trt.benchmarks.translator_report import write_translator_report

    preset, settings = config.resolved_preset(), SETTINGS[config.preset]
    translators = tuple(config.translators or TRANSLATORS)
    out, stages = config.output, CpuStages()
    with stages.stage("data"):
        source_root, target_root = make_data(config, preset)
    study = _Study(config, preset, settings, stages, source_root, target_root)
    arms: dict[str, dict] = {}
    translations: dict[str, dict] = {}
    if SEMANTIC_SOURCE in translators or "cyclegan-sem" in translators:
        arms[SEMANTIC_SOURCE] = study.segment(SEMANTIC_SOURCE, source_root)
    for name in translators:
        if name == SEMANTIC_SOURCE:
            continue
        if name == "fda":
            translations[name] = study.translate_fda()
        else:
            semantic = Path(arms[SEMANTIC_SOURCE]["checkpoint"]) if name == "cyclegan-sem" else None
            translations[name] = study.translate_cyclegan(name, semantic)
        arms[name] = study.segment(name, Path(translations[name]["data"]))
    if config.synthetic:
        arms[ORACLE] = study.segment(ORACLE, target_root)
    with stages.stage("fcn_score"):  # each translation (and the raw source) as the oracle sees it
        image_sets = {SEMANTIC_SOURCE: source_root, **{name: Path(t["data"]) for name, t in translations.items()}}
        fcn = fcn_scores(arms, image_sets)
    semantic_segmenter = arms.get(SEMANTIC_SOURCE, {}).get("checkpoint")
    # in the order asked for, then the oracle; a `none` trained for the semantic loss only is not compared
    arms = {name: arms[name] for name in (*translators, ORACLE) if name in arms}
    report = {
        "study": asdict(config),
        "translators": list(translators),
        "preset": asdict(preset),
        "translator_settings": asdict(settings),
        "semantic_segmenter": semantic_segmenter,
        "translations": translations,
        "arms": arms,
        "fcn_score": fcn,
        "stage_seconds": stages.seconds(),
    }
    return write_translator_report(out, report, source_root, target_root, config.cityscapes_val_split)


def arm_folder(name: str) -> str:
    """A translator's name as a folder name part (cyclegan-sem -> cyclegan_sem)."""
    return name.replace("-", "_")


class _Study:
    """The stages of one translators study: one call per translation and per segmenter arm."""

    def __init__(
        self,
        config: StudyConfig,
        preset: Preset,
        settings: TranslatorSettings,
        stages: CpuStages,
        source_root: Path,
        target_root: Path,
    ) -> None:
        self.config, self.preset, self.settings, self.stages = config, preset, settings, stages
        self.source_root, self.target_root = source_root, target_root
        self.out = config.output

    def translate_cyclegan(self, name: str, semantic_loss: Path | None) -> dict:
        """Train CycleGAN (with the semantic loss when given a segmenter), export G_A, translate the source."""
        from uda_trt.runtime.translate import TranslateJob, batch_translate
        from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan

        folder = arm_folder(name)
        cyclegan = CycleGANConfig(
            source=self.source_root,
            target=self.target_root,
            output=self.out / folder,
            seed=self.config.seed,
            semantic_loss=semantic_loss,
            semantic_weight=None if semantic_loss is None else self.settings.semantic_weight,
            **self.preset.cyclegan,
        )
        stage = f"train_{folder}"
        fresh = not cyclegan.output.exists() or not any(cyclegan.output.iterdir())
        with (
            self.stages.stage(stage),
            logged_eta(stage, cyclegan.output, self.preset.cyclegan["iterations"]),
            StopRequest() as stop,
        ):
            trained = train_cyclegan(cyclegan, resume=True, stop=stop)
        with self.stages.stage(f"export_{folder}"):
            artifact = export_once(
                trained / "latest_net_G_A.pth", self.out / "translators" / folder, self.preset.translate_size
            )
        output_root = self.out / f"translated_{folder}"
        with self.stages.stage(f"translate_{folder}"):
            job = TranslateJob(
                artifact=artifact,
                input_root=self.source_root,
                output_root=output_root,
                size=self.preset.translate_size,
                overwrite=not translation_resumable(output_root, artifact),  # a changed translator starts over
            )
            translated = batch_translate(job)
        return {
            "translator": name,
            "data": str(output_root),
            "training_dir": str(trained),
            "config": asdict(cyclegan),
            "artifact": str(artifact),
            "batch_translate": translated,
            "training": _train_info(trained / "config.json", ("iterations", "decay_iterations", "device", "images")),
            # CPU seconds per iteration, only when this run trained from the start (a resumed stage did only part)
            "training_cpu_seconds_per_iteration": (
                round(self.stages.cpu[stage] / self.preset.cyclegan["iterations"], 4) if fresh else None
            ),
        }

    def translate_fda(self) -> dict:
        """FDA with target train images as amplitude donors, each source image at its own size (no working size:
        FDA has no network)."""
        from uda_trt.runtime.translate import TranslateJob, batch_translate

        output_root = self.out / "translated_fda"
        job = TranslateJob(
            artifact=None,
            input_root=self.source_root,
            output_root=output_root,
            fda_target=self.target_root,
            fda_beta=self.settings.fda_beta,
            fda_seed=self.config.seed,
        )
        with self.stages.stage("translate_fda"):
            translated = batch_translate(job)  # a rerun with the same settings resumes (or keeps a finished run)
        return {"translator": "fda", "data": str(output_root), "batch_translate": translated}

    def segment(self, arm: str, data_root: Path) -> dict:
        """Train the arm's segmenter on `data_root`, export it, score it on target val."""
        from uda_trt.runtime.evaluate import evaluate_engine
        from uda_trt.train.segmenter import SegmenterConfig, train_segmenter

        folder = arm_folder(arm)
        arm_config = SegmenterConfig(
            data_root=data_root,
            output_dir=self.out / f"segmenter_{folder}",
            seed=self.config.seed,
            **self.preset.segmenter,
        )
        stage = f"train_segmenter_{folder}"
        with (
            self.stages.stage(stage),
            logged_eta(stage, arm_config.output_dir, arm_config.iterations),
            StopRequest() as stop,
        ):
            checkpoint = train_segmenter(arm_config, resume=True, stop=stop)
        with self.stages.stage(f"export_segmenter_{folder}"):
            artifact = export_once(checkpoint, self.out / "artifacts" / folder)
        with self.stages.stage(f"evaluate_{folder}"):
            metrics = evaluate_engine(
                artifact, self.target_root, split=self.config.cityscapes_val_split, output=self.out / "eval" / folder
            )
        return {
            "data": str(data_root),
            "config": asdict(arm_config),
            "training": _train_info(
                arm_config.output_dir / "config.json",
                ("device_resolved", "val_every_resolved", "train_samples", "heldout_samples"),
            ),
            "checkpoint": str(checkpoint),
            "artifact": str(artifact),
            "metrics": metrics,
        }
