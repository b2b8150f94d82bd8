"""FCN-score: how well a segmenter trained on the target domain recognises translated images (CycleGAN, pix2pix).

The translated images are segmented by a segmenter artifact and scored against the labels of the images they were
translated from, with the same confusion matrix and scores as `evaluate-seg` (runtime.metrics). Images and labels
are paired by relative path without suffix, after dropping the Cityscapes name endings (`_leftImg8bit`,
`_gtFine_labelIds`, `_gtFine_labelTrainIds`), so three layouts pair as they come:
- a batch-translate output root (ROOT/images + ROOT/labels, the GTA5 layout; labels found beside the images);
- an image folder and a label folder of same-named files (label IDs, or train IDs with id_type="trainid");
- a Cityscapes split: leftImg8bit/SPLIT and gtFine/SPLIT (only its `_gtFine_labelIds.png` files are read).
An image without a label is skipped and counted; a size mismatch is a per-sample fault, as in evaluate-seg.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np

from uda_trt.runtime.datasets import CITYSCAPES_LABEL_SUFFIX, Sample, folder_samples
from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.evaluate import EvalOutcome
from uda_trt.runtime.imageio import LogOnce, read_label, read_rgb
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID, TRAIN_ID_IDENTITY
from uda_trt.runtime.metrics import confusion_matrix, scores_from_matrix
from uda_trt.runtime.pipeline import prefetch
from uda_trt.runtime.sidecar import file_sha256

log = logging.getLogger(__name__)

LABEL_ID_TYPES = {"labelid": LABEL_ID_TO_TRAIN_ID, "trainid": TRAIN_ID_IDENTITY}
_NAME_ENDINGS = ("_leftImg8bit", "_gtFine_labelIds", "_gtFine_labelTrainIds")
_MAX_WORKERS = 4


def _pair_key(key: str) -> str:
    for ending in _NAME_ENDINGS:
        if key.endswith(ending):
            return key[: -len(ending)]
    return key


def resolve_roots(images_root: Path, labels_root: Path | None) -> tuple[Path, Path]:
    """(image folder, label folder): a GTA5-layout root gives ROOT/images, and ROOT/labels when no labels are named."""
    images_root = Path(images_root)
    if (images_root / "images").is_dir():
        if labels_root is None and (images_root / "labels").is_dir():
            labels_root = images_root / "labels"
        images_root = images_root / "images"
    if labels_root is None:
        raise UserError(f"{images_root}: no labels/ folder beside these images; name one with --labels")
    labels_root = Path(labels_root)
    if not labels_root.is_dir():
        raise UserError(f"{labels_root}: no such folder (--labels)")
    return images_root, labels_root


def label_index(labels_root: Path) -> dict[str, Path]:
    """Pairing key -> label PNG. A Cityscapes gtFine folder keeps only its label-ID files (not colour, instances)."""
    pngs = [s.image for s in folder_samples(labels_root) if s.image.suffix.lower() == ".png"]
    if any(p.name.endswith(CITYSCAPES_LABEL_SUFFIX) for p in pngs):
        pngs = [p for p in pngs if p.name.endswith(CITYSCAPES_LABEL_SUFFIX)]
    index: dict[str, Path] = {}
    for path in pngs:
        key = _pair_key(path.relative_to(labels_root).with_suffix("").as_posix())
        if key in index:
            raise UserError(f"{path}: a second label for {key} (the first is {index[key]}); keep one")
        index[key] = path
    if not index:
        raise UserError(f"{labels_root}: no label PNGs found (--labels)")
    return index


def pair_translations(
    images_root: Path, labels_root: Path | None = None
) -> tuple[list[Sample], list[Path], Path, Path]:
    """(image + label samples, images without a label, image folder, label folder); UserError when nothing pairs.

    Only lists files, so a caller can check the inputs before any long job starts.
    """
    images_root, labels_root = resolve_roots(images_root, labels_root)
    labels = label_index(labels_root)
    samples = [Sample(s.key, s.image, labels.get(_pair_key(s.key))) for s in folder_samples(images_root)]
    paired = [s for s in samples if s.label is not None]
    if not paired:
        raise UserError(f"{images_root}: no image has a same-named label under {labels_root} (--labels)")
    return paired, [s.image for s in samples if s.label is None], images_root, labels_root


def score_translations(
    artifact: Path,
    images_root: Path,
    labels_root: Path | None = None,
    *,
    id_type: str = "labelid",
    backend: str = "auto",
    workers: int | None = None,
) -> EvalOutcome:
    """Segment every image under `images_root` with `artifact` and score it against its label: one EvalOutcome."""
    from uda_trt.runtime.runners import open_runner  # lazy: pulls in ONNX Runtime / TensorRT

    if id_type not in LABEL_ID_TYPES:
        raise UserError(f"--id-type {id_type!r}: use one of {', '.join(LABEL_ID_TYPES)}")
    artifact = Path(artifact)
    if not artifact.is_file():
        raise UserError(f"{artifact}: no such file (--segmenter)")
    paired, unpaired, images_root, labels_root = pair_translations(images_root, labels_root)
    outcome = EvalOutcome()
    for image in unpaired:
        outcome.skip(image, f"no label for it under {labels_root}")
    gt_to_train = LABEL_ID_TYPES[id_type]
    log_once = LogOnce()

    def load(sample: Sample) -> tuple[Sample, np.ndarray, np.ndarray] | SampleError:
        try:
            image, gt = read_rgb(sample.image, log_once), read_label(sample.label)
        except SampleError as exc:
            return exc
        if image.shape[:2] != gt.shape:
            return SampleError(
                sample.image,
                f"size {image.shape[1]}x{image.shape[0]} differs from its label {sample.label} "
                f"({gt.shape[1]}x{gt.shape[0]})",
            )
        return sample, image, gt

    started = time.perf_counter()
    runner = open_runner(artifact, backend=backend)
    if runner.sidecar.task != "segment":
        raise UserError(f"{artifact}: a {runner.sidecar.task} model; the FCN-score needs a segmenter artifact")
    runner.expect_inputs(1)
    workers = workers or default_workers(_MAX_WORKERS)
    with runner, ThreadPoolExecutor(max_workers=workers) as pool:
        for loaded in (f.result() for f in prefetch(pool, load, paired, depth=2 * workers)):
            if isinstance(loaded, SampleError):
                outcome.skip(loaded.path, loaded.problem)
                continue
            sample, image, gt = loaded
            try:
                predicted = runner.infer({"images": image[None]})["labels"][0]
            except Exception as exc:  # the backend's own error types vary; any of them fails the job (exit 1)
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise click.ClickException(f"{artifact}: inference failed on {sample.image}: {first_line}") from exc
            outcome.cm.add(confusion_matrix(gt, predicted, gt_to_train=gt_to_train))
            outcome.scored += 1
        backend_used = runner.backend
    elapsed = time.perf_counter() - started
    outcome.info = {
        "segmenter": str(artifact),
        "segmenter_sha256": file_sha256(artifact),
        "backend": backend_used,
        "images": str(images_root),
        "labels": str(labels_root),
        "label_id_type": id_type,
        "elapsed_s": round(elapsed, 3),
    }
    return outcome


def fcn_score(
    artifact: Path,
    images_root: Path,
    labels_root: Path | None = None,
    *,
    id_type: str = "labelid",
    backend: str = "auto",
    workers: int | None = None,
) -> dict:
    """The FCN-score of translated images as a plain dict: pixel_accuracy, mean_accuracy, mean_iou, fw_iou,
    per_class (fractions, NaN where undefined), confusion_matrix, images_scored, images_skipped, skipped and where
    the numbers came from. `run-uda` calls this for each translator it trains."""
    outcome = score_translations(artifact, images_root, labels_root, id_type=id_type, backend=backend, workers=workers)
    return {
        **scores_from_matrix(outcome.cm.matrix),
        "confusion_matrix": outcome.cm.matrix.tolist(),
        "images_scored": outcome.scored,
        "images_skipped": len(outcome.skipped),
        "skipped": outcome.skipped,
        **outcome.info,
    }
