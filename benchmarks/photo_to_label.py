"""run-uda --study photo-to-label: pix2pix as a segmenter (photo -> colour label map) against a U-Net and a
DeepLabV3+ trained on the same images, all scored on the same val split (issue 17 item 4, user study 002).

Stages: data (synthetic Cityscapes-like photo/label pairs, or the user's Cityscapes root) -> pix2pix on train photo ->
gtFine colour pairs -> ONNX export -> batch-translate of the val photos into colour label maps -> evaluate-seg on
those maps with nearest-palette-colour decoding (`color-nearest`: a GAN's colours are never exactly the palette's)
-> U-Net and DeepLabV3+ on the same train photos with their labelIds -> export -> evaluate-seg of each artifact ->
report (photo_to_label_report). Every model sees the photos at one working size: pix2pix translates at it, and the
segmenters' working scale is that width over the photos' width, so no model sees more detail than another.

Resume is the translation study's (benchmarks.uda): rerun the same command; trainers resume from their states, an
export is kept when its sidecar records the checkpoint, batch-translate resumes with the same translator, and the
evaluations are redone.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

from uda_trt.benchmarks.presets import _scaled
from uda_trt.benchmarks.progress import logged_eta
from uda_trt.benchmarks.uda import StudyConfig, _is_export_of, export_once, translation_resumable
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.train.stopping import StopRequest

log = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
PIX2PIX_ARM = "pix2pix"
# arm -> train-segmenter --arch; DeepLabV3+ on MobileNetV3-Large: the ResNet-50 one costs ~4x on the CPU demo
SEGMENTER_ARMS = {"unet": "unet", "deeplabv3plus": "deeplabv3plus_mobilenet"}
ARMS = (PIX2PIX_ARM, *SEGMENTER_ARMS)
PARITY_PHOTOS = 2  # train photos each segmenter export is checked on
ARM_TITLES = {"pix2pix": "pix2pix", "unet": "U-Net", "deeplabv3plus": "DeepLabV3+"}


@dataclass(frozen=True)
class PairedData:
    """Synthetic Cityscapes-like photo/label pairs to make (ignored with --target)."""

    train: int
    val: int
    size: tuple[int, int]  # (width, height) of the written images


@dataclass(frozen=True)
class PairedPreset:
    """One photo-to-label budget. `working_size` (w, h) is the resolution every model sees the photos at."""

    name: str
    data: PairedData
    working_size: tuple[int, int]
    pix2pix: dict = field(default_factory=dict)  # train.pix2pix.Pix2PixConfig fields
    segmenter: dict = field(default_factory=dict)  # train.segmenter.SegmenterConfig fields, shared by both arms


PRESETS: dict[str, PairedPreset] = {
    # <= 12 minutes on 2 CPU cores (issue 17): 128x64 photos (2:1, as Cityscapes), 64x64 crops for all three models.
    # The U-Net (31 M parameters at full width, as in the study) is most of the cost.
    "demo": PairedPreset(
        name="demo",
        data=PairedData(train=300, val=50, size=(128, 64)),
        working_size=(128, 64),
        pix2pix={
            "num_downs": 6,  # 64x64 crops halve six times to 1x1, as unet_256 does 256x256 in eight
            "ngf": 16,
            "ndf": 32,
            "load_size": (144, 72),  # the reference's 286 -> 256 resize-and-crop jitter, in proportion
            "crop_size": (64, 64),
            "batch_size": 4,
            "iterations": 400,
            "decay_iterations": 200,
            "sample_every": 200,
            "save_every": 200,
            "log_every": 25,
            "num_workers": 0,
        },
        segmenter={
            "crop_size": (64, 64),
            "batch_size": 4,
            "iterations": 160,
            "optimizer": "adamw",
            "lr": 1e-3,
            "val_every": 40,
            "log_every": 20,
            "num_workers": 0,
        },
    ),
    # Seconds, for tests of the harness: the numbers mean nothing.
    "smoke": PairedPreset(
        name="smoke",
        data=PairedData(train=6, val=3, size=(64, 32)),
        working_size=(64, 32),
        pix2pix={
            "num_downs": 5,
            "ngf": 4,
            "ndf": 8,
            "load_size": (72, 36),
            "crop_size": (32, 32),
            "batch_size": 2,
            "iterations": 2,
            "decay_iterations": 1,
            "sample_every": 2,
            "save_every": 2,
            "log_every": 1,
            "num_workers": 0,
        },
        segmenter={
            "crop_size": (32, 32),
            "batch_size": 2,
            "iterations": 2,
            "optimizer": "adamw",
            "lr": 1e-3,
            "val_every": 2,
            "log_every": 1,
            "num_workers": 0,
            "val_fraction": 0.25,
            "precise_bn_batches": 1,
        },
    ),
    # Real Cityscapes at a quarter of its 2048x1024 (the pix2pix paper's cityscapes is 256x256): a GPU budget.
    "full": PairedPreset(
        name="full",
        data=PairedData(train=2975, val=500, size=(2048, 1024)),
        working_size=(512, 256),
        pix2pix={
            "num_downs": 8,
            "ngf": 64,
            "ndf": 64,
            "load_size": (572, 286),
            "crop_size": (512, 256),
            "batch_size": 1,
            "iterations": 200_000,
            "decay_iterations": 100_000,
            "sample_every": 2000,
            "save_every": 5000,
            "log_every": 100,
        },
        segmenter={
            "crop_size": (512, 256),
            "batch_size": 8,
            "iterations": 40_000,
            "optimizer": "adamw",
            "lr": 1e-3,
        },
    ),
}
_PIX2PIX_SHARES = ("sample_every", "save_every", "log_every")
_SEGMENTER_SHARES = ("val_every", "save_every", "log_every")


def resolved_preset(config: StudyConfig) -> PairedPreset:
    """The study's preset with run-uda's budget flags applied: --cyclegan-iterations sets the translator's (here
    pix2pix's) iterations, --segmenter-iterations both segmenters'; decay and cadences scale with them."""
    preset = PRESETS[config.preset]
    return replace(
        preset,
        pix2pix=_scaled(preset.pix2pix, config.cyclegan_iterations, _PIX2PIX_SHARES),
        segmenter=_scaled(preset.segmenter, config.segmenter_iterations, _SEGMENTER_SHARES),
    )


def budget_iterations(config: StudyConfig) -> tuple[int, int]:
    """(pix2pix iterations, segmenter iterations) of the resolved preset: what OUT/study.json records."""
    preset = resolved_preset(config)
    return preset.pix2pix["iterations"], preset.segmenter["iterations"]


def make_paired_data(config: StudyConfig, preset: PairedPreset) -> Path:
    """The Cityscapes-layout root: the user's --target, or synthetic photo/label pairs written now (resumable)."""
    if not config.synthetic:
        return Path(config.target_root)
    from uda_trt.runtime.synthetic import write_synthetic_datasets

    data = config.output / "data"
    write_synthetic_datasets(
        data,
        gta5_count=0,
        cityscapes_train=preset.data.train,
        cityscapes_val=preset.data.val,
        cityscapes_size=preset.data.size,
        seed=config.seed,
    )
    return data / "cityscapes"


def photo_width(root: Path) -> int:
    """Width of the first train photo (header only): the segmenters' working scale is working width / this."""
    from uda_trt.runtime.datasets import cityscapes_samples

    first = cityscapes_samples(root, TRAIN_SPLIT, require_labels=True)[0].image
    with Image.open(first) as image:
        return image.width


def export_segmenter(checkpoint: Path, output_dir: Path, parity_photos: list[Path]) -> Path:
    """OUTPUT_DIR/STEM.onnx of a segmenter checkpoint, parity-checked against PyTorch on the study's own photos (the
    built-in 512x256 parity scenes cost the full-width U-Net a minute on a CPU), or kept when it is that export."""
    from uda_trt.export.onnx_export import export_onnx
    from uda_trt.runtime.imageio import read_rgb

    onnx_path = output_dir / f"{checkpoint.stem}.onnx"
    if _is_export_of(onnx_path, checkpoint, None):
        log.info("%s is the export of %s; kept", onnx_path, checkpoint)
        return onnx_path
    images = [read_rgb(path) for path in parity_photos]
    return export_onnx(checkpoint, output_dir=output_dir, fp16=False, parity_images=images).onnx_path


def run_photo_to_label_study(config: StudyConfig) -> dict:
    """The whole study (module docstring); returns the report with report["summary"]["miou"] per arm."""
    from uda_trt.benchmarks.photo_to_label_report import write_paired_report
    from uda_trt.runtime.datasets import cityscapes_samples
    from uda_trt.runtime.evaluate import evaluate_engine, evaluate_predictions
    from uda_trt.runtime.translate import TranslateJob, batch_translate
    from uda_trt.train.pix2pix import Pix2PixConfig, train_pix2pix
    from uda_trt.train.segmenter import SegmenterConfig, train_segmenter

    if config.target_root is not None:
        from uda_trt.benchmarks.inputs import check_paired_inputs

        check_paired_inputs(config.target_root, config.cityscapes_val_split)
    if config.preset not in PRESETS:
        raise UserError(f"--preset {config.preset}: the photo-to-label study has presets {', '.join(PRESETS)}")
    preset = resolved_preset(config)
    if config.cyclegan_iterations is not None:
        log.info(
            "--cyclegan-iterations %d sets pix2pix's iterations (this study's translator)", config.cyclegan_iterations
        )
    out, split = config.output, config.cityscapes_val_split
    timer = StageTimer(announce=log.info)
    with timer.stage("data"):
        root = make_paired_data(config, preset)
        scale = preset.working_size[0] / photo_width(root)
        parity_photos = [s.image for s in cityscapes_samples(root, TRAIN_SPLIT)[:PARITY_PHOTOS]]

    pix2pix_config = Pix2PixConfig(
        output=out / "pix2pix", data=root, split=TRAIN_SPLIT, direction="AtoB", seed=config.seed, **preset.pix2pix
    )
    with (
        timer.stage("train_pix2pix"),
        logged_eta("train_pix2pix", pix2pix_config.output, preset.pix2pix["iterations"]),
        StopRequest() as stop,
    ):
        pix2pix_dir = train_pix2pix(pix2pix_config, resume=True, stop=stop)
    with timer.stage("export_pix2pix"):
        translator = export_once(pix2pix_dir / "latest_net_G.pth", out / "artifacts", preset.working_size)
    translated = out / "pix2pix_val"
    with timer.stage("translate_val"):
        translate_report = batch_translate(
            TranslateJob(
                artifact=translator,
                input_root=root,
                output_root=translated,
                layout="cityscapes",
                split=split,
                size=preset.working_size,
                output_size="original",  # scored at each photo's own size, as the segmenters are
                overwrite=not translation_resumable(translated, translator),
            )
        )
    with timer.stage("evaluate_pix2pix"):
        pix2pix_metrics = evaluate_predictions(
            translated / "leftImg8bit" / split, root, split, "color-nearest", output=out / "eval" / PIX2PIX_ARM
        )
    arms = {
        PIX2PIX_ARM: {
            "model": "pix2pix unet generator (photo -> colour label map), scored with nearest-colour decoding",
            "config": asdict(pix2pix_config),
            "checkpoint": str(pix2pix_dir / "latest_net_G.pth"),
            "artifact": str(translator),
            "predictions": str(translated / "leftImg8bit" / split),
            "batch_translate": translate_report,
            "metrics": pix2pix_metrics,
        }
    }
    for arm, architecture in SEGMENTER_ARMS.items():
        seg_config = SegmenterConfig(
            data_root=root,
            output_dir=out / f"segmenter_{arm}",
            layout="cityscapes",
            split=TRAIN_SPLIT,
            architecture=architecture,
            scale=scale,
            seed=config.seed,
            **preset.segmenter,
        )
        with (
            timer.stage(f"train_{arm}"),
            logged_eta(f"train_{arm}", seg_config.output_dir, seg_config.iterations),
            StopRequest() as stop,
        ):
            checkpoint = train_segmenter(seg_config, resume=True, stop=stop)
        with timer.stage(f"export_{arm}"):
            artifact = export_segmenter(checkpoint, out / "artifacts" / arm, parity_photos)
        with timer.stage(f"evaluate_{arm}"):
            metrics = evaluate_engine(artifact, root, split=split, output=out / "eval" / arm)
        arms[arm] = {
            "model": architecture,
            "config": asdict(seg_config),
            "checkpoint": str(checkpoint),
            "artifact": str(artifact),
            "metrics": metrics,
        }
    report = {
        "study": asdict(config),
        "preset": asdict(preset),
        "data_root": str(root),
        "segmenter_scale": scale,
        "arms": arms,
        "stage_seconds": {name: round(seconds, 2) for name, seconds in timer.seconds.items()},
    }
    return write_paired_report(out, report, root, split)
