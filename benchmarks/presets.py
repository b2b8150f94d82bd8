"""Fixed run-uda presets: every size, width and iteration count of a study, bounded by iterations, not wall time.

All three segmenter arms of one study share one preset's segmenter settings, so they differ only in their data.
`with_budget` sets another number of training iterations (run-uda's --cyclegan-iterations and
--segmenter-iterations) and scales every count that is a share of them, so a budget between two presets keeps the
shape of its schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class SyntheticData:
    """How much synthetic data to make, and at which sizes (WIDTH, HEIGHT)."""

    gta5_count: int
    cityscapes_train: int
    cityscapes_val: int
    preset: str  # runtime.synthetic size preset


@dataclass(frozen=True)
class Preset:
    """One study's budget: translator training, translation size, segmenter training."""

    name: str
    synthetic: SyntheticData
    cyclegan: dict = field(default_factory=dict)  # train.cyclegan.CycleGANConfig fields
    translate_size: tuple[int, int] | None = None  # working size of batch-translate (None: as exported)
    segmenter: dict = field(default_factory=dict)  # train.segmenter.SegmenterConfig fields


PRESETS: dict[str, Preset] = {
    # At most 15 minutes on 2 CPU cores: most of the budget goes to the translator, as adaptation depends on it.
    # Batches of 2 (the reference trains CycleGAN at 1) and 8 keep the number of updates at half the compute.
    "demo": Preset(
        name="demo",
        synthetic=SyntheticData(gta5_count=600, cityscapes_train=600, cityscapes_val=100, preset="demo"),
        cyclegan={
            "ngf": 16,
            "n_blocks": 6,
            "ndf": 32,
            "load_width": 160,
            "crop_size": (128, 64),
            "batch_size": 2,
            "iterations": 500,
            "decay_iterations": 250,
            "sample_every": 250,
            "save_every": 500,
            "log_every": 25,  # train.log's loss lines: the report's CycleGAN curves and run-uda's ETA
            "num_workers": 0,
        },
        translate_size=(160, 88),
        segmenter={
            "architecture": "lraspp_mobilenet_v3_large",
            "scale": 0.8,
            "crop_size": (128, 64),
            "batch_size": 8,
            "iterations": 400,
            "optimizer": "adamw",
            "lr": 1e-2,
            "val_every": 100,
            "log_every": 50,
            "num_workers": 0,
        },
    ),
    # Seconds, for tests of the harness: the numbers mean nothing.
    "smoke": Preset(
        name="smoke",
        synthetic=SyntheticData(gta5_count=8, cityscapes_train=8, cityscapes_val=4, preset="demo"),
        cyclegan={
            "ngf": 4,
            "n_blocks": 1,
            "ndf": 8,
            "load_width": 64,
            "crop_size": (48, 32),
            "batch_size": 2,
            "iterations": 2,
            "decay_iterations": 1,
            "sample_every": 2,
            "save_every": 2,
            "log_every": 1,
            "num_workers": 0,
        },
        translate_size=(160, 88),
        segmenter={
            "architecture": "lraspp_mobilenet_v3_large",
            "scale": 0.4,
            "crop_size": (64, 32),
            "batch_size": 4,
            "iterations": 2,
            "optimizer": "adamw",
            "lr": 1e-3,
            "val_every": 2,
            "log_every": 1,
            "num_workers": 0,
            "val_fraction": 0.25,
        },
    ),
    # Real GTA5 -> Cityscapes at the resolutions UDA papers use (GPU-sized budget).
    "full": Preset(
        name="full",
        synthetic=SyntheticData(gta5_count=2500, cityscapes_train=2975, cityscapes_val=500, preset="full"),
        cyclegan={
            "ngf": 64,
            "n_blocks": 9,
            "load_width": 1024,
            "crop_size": (512, 256),
            "batch_size": 1,
            "iterations": 200_000,
            "decay_iterations": 100_000,
            "sample_every": 400,
            "save_every": 5000,
        },
        translate_size=(1024, 564),
        segmenter={
            "architecture": "deeplabv3_resnet50",
            "scale": 0.5,
            "crop_size": (512, 512),
            "batch_size": 8,
            "iterations": 40_000,
            "optimizer": "sgd",
            "lr": 0.01,
        },
    ),
}


# Counts that are a share of a stage's iterations, scaled with them by `with_budget`; each stays at least 1.
_CYCLEGAN_SHARES = ("sample_every", "save_every", "log_every")
_SEGMENTER_SHARES = ("val_every", "save_every", "log_every")


def _scaled(settings: dict, iterations: int | None, shares: tuple[str, ...]) -> dict:
    """`settings` with `iterations` and every count in `shares` scaled by iterations / the preset's iterations."""
    if iterations is None or iterations == settings["iterations"]:
        return settings
    ratio = iterations / settings["iterations"]
    scaled = {**settings, "iterations": iterations}
    for key in shares:
        if settings.get(key) is not None:
            scaled[key] = min(iterations, max(1, round(settings[key] * ratio)))
    if "decay_iterations" in settings:  # the linear decay may be empty, as in the reference's --n_epochs_decay 0
        scaled["decay_iterations"] = min(iterations, round(settings["decay_iterations"] * ratio))
    return scaled


def with_budget(preset: Preset, cyclegan_iterations: int | None, segmenter_iterations: int | None) -> Preset:
    """`preset` trained for other iteration counts (None: the preset's own).

    CycleGAN keeps its constant-then-linear-decay schedule in proportion (200k with 100k decaying becomes 2k with
    1k), and the cadence of samples, saves, log lines and held-out scores follows the new length, so a short run
    still gets several held-out scores and a long one is not saved every few iterations.
    """
    return replace(
        preset,
        cyclegan=_scaled(preset.cyclegan, cyclegan_iterations, _CYCLEGAN_SHARES),
        segmenter=_scaled(preset.segmenter, segmenter_iterations, _SEGMENTER_SHARES),
    )
