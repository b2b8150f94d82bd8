"""Score semantic segmentation on a Cityscapes-layout split: from prediction PNGs, or by running a segmenter artifact.

Both paths stream: each image becomes a 19 x 20 confusion matrix (runtime.metrics) that is summed, so memory does
not grow with the dataset. Decoding runs in a small thread pool (OpenCV, Pillow and numpy release the GIL).
Per-sample faults (unreadable file, size mismatch) are logged with their path, skipped and listed in the result;
layout mistakes are `UserError`s. `evaluate_predictions` / `evaluate_engine` also write OUT/metrics.{json,md} and
return the metrics dict; `score_predictions` / `score_engine` return the raw `EvalOutcome`.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from uda_trt.runtime.datasets import (
    CITYSCAPES_LABEL_SUFFIX,
    Sample,
    cityscapes_ground_truth,
    cityscapes_samples,
)
from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.eval_figures import OVERLAY_ROWS, write_eval_figures
from uda_trt.runtime.imageio import LogOnce, read_label, read_rgb, write_label
from uda_trt.runtime.jobs.files import remove_partials
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.jobs.shards import Shard
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.labels import (
    IGNORE,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    TRAIN_ID_IDENTITY,
    colors_to_train_ids,
    label_ids_to_train_ids,
    nearest_colors_to_train_ids,
    train_ids_to_label_ids,
)
from uda_trt.runtime.metrics import ConfusionMatrix, confusion_matrix, write_metrics
from uda_trt.runtime.pipeline import EngineFeed, prefetch
from uda_trt.runtime.sidecar import file_sha256

log = logging.getLogger(__name__)

# color: exact palette colours only; color-nearest: the nearest palette colour, for label maps drawn by a model
ID_TYPES = ("labelid", "trainid", "color", "color-nearest")
PREDICTION_SUFFIX = "_pred_labelIds.png"
# The official evaluator matches `{city}_{seq}_{frame}*.png` anywhere under the prediction folder.
_STEM_PREFIX = re.compile(r"^(.+?_\d+_\d+)(?!\d)")
_LOGGED_PER_KIND = 10


# Decoding is the bottleneck; it stops scaling at a few threads.
MAX_DEFAULT_WORKERS = 4


@dataclass
class EvalOutcome:
    """What a scoring run produced: the summed matrix, counts, and each skipped file with its reason."""

    cm: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    scored: int = 0
    skipped: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    # the first scored images in dataset order, for overlays.png: (RGB image, predicted and true train IDs)
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def keep_examples(self, images: Iterable[np.ndarray], predictions: Iterable[np.ndarray], truths: Iterable) -> None:
        """Keep (image, prediction, ground truth) triples, in the order given, until OVERLAY_ROWS are kept."""
        for triple in zip(images, predictions, truths, strict=True):
            if len(self.examples) >= OVERLAY_ROWS:
                return
            image, prediction, truth = triple
            self.examples.append((image, prediction, label_ids_to_train_ids(truth)))

    def skip(self, path: Path, reason: str) -> None:
        if len(self.skipped) < _LOGGED_PER_KIND:
            log.warning("skipped %s: %s", path, reason)
        elif len(self.skipped) == _LOGGED_PER_KIND:
            log.warning("more files skipped; metrics.json lists them all")
        self.skipped.append({"file": str(path), "reason": reason})


# ---------------------------------------------------------------------------------------------- prediction files


def index_predictions(pred_dir: Path, stems: set[str]) -> tuple[dict[str, Path], int]:
    """Map each ground-truth stem to its prediction PNG under `pred_dir` (recursive); count unmatched PNGs.

    Two predictions for one stem are ambiguous, as in the official evaluator: a UserError naming both.
    """
    found: dict[str, Path] = {}
    unmatched = 0
    for dirpath, dirnames, filenames in os.walk(pred_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(".png"):
                continue
            match = _STEM_PREFIX.match(name)
            stem = match.group(1) if match else None
            if stem not in stems:
                unmatched += 1
                continue
            path = Path(dirpath) / name
            if stem in found:
                raise UserError(f"{path}: a second prediction for {stem} (the first is {found[stem]}); keep one")
            found[stem] = path
    return found, unmatched


def decode_prediction(path: Path, id_type: str, log_once: LogOnce | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a prediction file as H x W uint8 IDs and the 256-entry table mapping them to train IDs (anything
    outside 0..18 counts as 'other'). The table is applied inside the confusion matrix, not per pixel here."""
    if id_type == "color":
        return colors_to_train_ids(read_rgb(path, log_once)), TRAIN_ID_IDENTITY
    if id_type == "color-nearest":
        return nearest_colors_to_train_ids(read_rgb(path, log_once)), TRAIN_ID_IDENTITY
    try:
        values = read_label(path)
    except SampleError as exc:
        if "single-channel" in exc.problem:
            raise SampleError(path, f"{exc.problem} (colour predictions need --id-type color)") from exc
        raise
    return values, LABEL_ID_TO_TRAIN_ID if id_type == "labelid" else TRAIN_ID_IDENTITY


def _check_same_size(path: Path, array: np.ndarray, gt_path: Path, gt: np.ndarray) -> None:
    if array.shape[:2] != gt.shape[:2]:
        h, w = array.shape[:2]
        gh, gw = gt.shape[:2]
        raise SampleError(path, f"size {w}x{h} differs from its ground truth {gt_path} ({gw}x{gh})")


def score_predictions(
    pred_dir: Path,
    cityscapes_root: Path,
    split: str = "val",
    id_type: str = "labelid",
    strict: bool = False,
    workers: int | None = None,
    examples: bool = True,
    shard: Shard | None = None,
) -> EvalOutcome:
    """Score prediction PNGs (any tool's) against gtFine/{split} labelIds, as the official evaluator does; with
    `examples`, keep the first few with their photos for the overlays; with `shard`, only that shard's images."""
    pred_dir = Path(pred_dir)
    if id_type not in ID_TYPES:
        raise UserError(f"--id-type {id_type!r}: use one of {', '.join(ID_TYPES)}")
    if not pred_dir.is_dir():
        raise UserError(f"{pred_dir}: no such folder (--predictions)")
    ground_truth = cityscapes_ground_truth(cityscapes_root, split)
    predictions, unmatched = index_predictions(pred_dir, {stem for stem, _ in ground_truth})
    if not predictions:
        raise UserError(
            f"{pred_dir}: no prediction PNG matches a ground-truth image of "
            f"{Path(cityscapes_root) / 'gtFine' / split} (expected names like {ground_truth[0][0]}*.png)"
        )
    if unmatched:
        log.info("%d PNG file(s) under %s match no ground truth of split %s; ignored", unmatched, pred_dir, split)
    split_images = len(ground_truth)
    if shard is not None:
        ground_truth = shard.select(ground_truth)

    outcome = EvalOutcome()
    missing = [gt_path for stem, gt_path in ground_truth if stem not in predictions]
    if missing and strict:
        raise UserError(f"{missing[0]}: no prediction for this ground truth ({len(missing)} missing in all; --strict)")
    for gt_path in missing:
        outcome.skip(gt_path, f"no prediction file under {pred_dir}")

    pairs = [(predictions[stem], gt_path) for stem, gt_path in ground_truth if stem in predictions]
    log_once = LogOnce()

    # Label-ID predictions of street scenes hold values above 18 (sky, car, ...) other than the 255 a train-ID map uses
    # for void; once one was seen, stop looking.
    looks_like_train_ids = [id_type == "labelid"]

    def score(pair: tuple[Path, Path]) -> np.ndarray | SampleError:
        pred_path, gt_path = pair
        try:
            gt = read_label(gt_path)  # label IDs, mapped to train IDs inside the confusion matrix
            pred, pred_to_train = decode_prediction(pred_path, id_type, log_once)
            _check_same_size(pred_path, pred, gt_path, gt)
        except SampleError as exc:
            return exc
        if looks_like_train_ids[0] and ((pred >= NUM_CLASSES) & (pred != IGNORE)).any():
            looks_like_train_ids[0] = False
        return confusion_matrix(gt, pred, gt_to_train=LABEL_ID_TO_TRAIN_ID, pred_to_train=pred_to_train)

    workers = workers or default_workers(MAX_DEFAULT_WORKERS)
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        Progress(len(pairs), "scoring") as bar,
    ):
        for result in (f.result() for f in prefetch(pool, score, pairs, depth=4 * workers)):
            if isinstance(result, SampleError):
                outcome.skip(result.path, result.problem)
            else:
                outcome.cm.add(result)
                outcome.scored += 1
            bar.update(1)
    if looks_like_train_ids[0] and outcome.scored:
        raise UserError(
            f"{pred_dir}: no prediction holds a value above {NUM_CLASSES - 1}, so these look like train IDs, not "
            "label IDs (sky, car, person and most classes have label IDs above 18); pass --id-type trainid"
        )
    if examples:
        _keep_prediction_examples(outcome, pairs, cityscapes_root, split, id_type, log_once)
    outcome.info = {
        "mode": "predictions",
        "predictions": str(pred_dir),
        "id_type": id_type,
        "cityscapes": str(cityscapes_root),
        "split": split,
        "ground_truth_images": split_images,
    }
    if shard is not None:
        outcome.info["shard"] = shard.record(len(ground_truth))
    return outcome


def _keep_prediction_examples(
    outcome: EvalOutcome, pairs: list[tuple[Path, Path]], root: Path, split: str, id_type: str, log_once: LogOnce
) -> None:
    """The first prediction files that decode, with their photo when the Cityscapes root has it (leftImg8bit):
    the overlays of a --predictions run. Files that fail were already counted as skipped; no photo, no overlay."""
    photos = {sample.key: sample.image for sample in _photos(root, split)}
    for pred_path, gt_path in pairs:
        if len(outcome.examples) >= OVERLAY_ROWS:
            return
        key = f"{gt_path.parent.name}/{gt_path.name[: -len(CITYSCAPES_LABEL_SUFFIX)]}"
        if key not in photos:
            continue
        try:
            values, to_train = decode_prediction(pred_path, id_type, log_once)
            truth, image = read_label(gt_path), read_rgb(photos[key], log_once)
            _check_same_size(pred_path, values, gt_path, truth)
            _check_same_size(photos[key], image, gt_path, truth)
        except SampleError:
            continue
        outcome.keep_examples([image], [to_train[values]], [truth])


def _photos(root: Path, split: str) -> list[Sample]:
    try:
        return cityscapes_samples(root, split, require_labels=False)
    except UserError:  # predictions scored without the photos: no overlays
        return []


# ---------------------------------------------------------------------------------------------- segmenter artifacts


@dataclass
class LoadedSample:
    """One image and its ground truth read for scoring, or the reason it could not be."""

    sample: Sample
    image: np.ndarray | None = None
    gt: np.ndarray | None = None
    error: SampleError | None = None


def load_sample(sample: Sample, log_once: Callable[[str, str], None]) -> LoadedSample:
    """The sample's photo and label IDs, checked to be the same size; a faulty one carries its SampleError."""
    try:
        image = read_rgb(sample.image, log_once)
        gt = read_label(sample.label)  # label IDs
        _check_same_size(sample.image, image, sample.label, gt)
    except SampleError as exc:
        return LoadedSample(sample, error=exc)
    return LoadedSample(sample, image=image, gt=gt)


def same_size_batches(
    loaded: Iterable[LoadedSample], batch_size: int, on_fault: Callable[[LoadedSample], None]
) -> Iterator[list[LoadedSample]]:
    """Group consecutive same-size images into batches of at most `batch_size` (different sizes cannot stack)."""
    batch: list[LoadedSample] = []
    for item in loaded:
        if item.error is not None:
            on_fault(item)
            continue
        if batch and (len(batch) == batch_size or batch[0].image.shape != item.image.shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _stack_images(batch: list[LoadedSample]) -> np.ndarray:
    return np.stack([item.image for item in batch])


def score_engine(
    artifact: Path,
    cityscapes_root: Path,
    split: str = "val",
    batch_size: int = 1,
    backend: str = "auto",
    save_dir: Path | None = None,
    workers: int | None = None,
    shard: Shard | None = None,
) -> EvalOutcome:
    """Run a segmenter artifact over leftImg8bit/{split} at full resolution and score it against gtFine labelIds.

    With `save_dir`, also writes official-evaluator predictions `save_dir/{city}/{stem}_pred_labelIds.png`; with
    `shard`, runs only that shard's images (in units of `batch_size`, the batches an unsharded run makes).
    """
    import click

    artifact = Path(artifact)
    check_engine_args(artifact, batch_size)
    samples = cityscapes_samples(cityscapes_root, split, require_labels=True)
    split_images = len(samples)
    if shard is not None:
        samples = shard.select(samples, batch_size)
    outcome = EvalOutcome()
    log_once = LogOnce()

    def finish(batch: list[LoadedSample], labels: np.ndarray) -> np.ndarray:
        """Save the batch's predictions when asked; one confusion matrix (one bincount) for the whole batch."""
        if save_dir is not None:
            for item, item_labels in zip(batch, labels, strict=True):
                path = Path(save_dir) / f"{item.sample.key}{PREDICTION_SUFFIX}"
                write_label(path, train_ids_to_label_ids(item_labels))
        gt = np.stack([item.gt for item in batch])
        return confusion_matrix(gt, labels, gt_to_train=LABEL_ID_TO_TRAIN_ID)

    workers = workers or default_workers(MAX_DEFAULT_WORKERS)
    started = time.perf_counter()
    runner = open_segmenter(artifact, batch_size, backend)
    with runner:
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            Progress(len(samples), "segmenting") as bar,
        ):
            pending: collections.deque[tuple[int, Future]] = collections.deque()

            def drain(keep: int) -> None:
                while len(pending) > keep:
                    count, future = pending.popleft()
                    outcome.cm.add(future.result())
                    outcome.scored += count

            def on_fault(item: LoadedSample) -> None:
                outcome.skip(item.error.path, item.error.problem)
                bar.update(1)

            load = partial(load_sample, log_once=log_once)
            depth = max(2 * batch_size, 2 * workers)
            loaded = (future.result() for future in prefetch(pool, load, samples, depth=depth))
            feed = EngineFeed(runner, same_size_batches(loaded, batch_size, on_fault), _stack_images)
            try:
                for batch, outputs in feed:
                    labels = outputs["labels"]
                    if labels.shape != (len(batch), *batch[0].image.shape[:2]):
                        raise click.ClickException(
                            f"{artifact}: returned labels of shape {labels.shape} for {len(batch)} image(s) of "
                            f"{batch[0].image.shape[1]}x{batch[0].image.shape[0]}; expected N x H x W "
                            "(is it a segmenter exported at full resolution?)"
                        )
                    outcome.keep_examples((item.image for item in batch), labels, (item.gt for item in batch))
                    pending.append((len(batch), pool.submit(finish, batch, labels)))
                    drain(keep=2 * workers)
                    bar.update(len(batch))
            except click.ClickException:
                raise
            except Exception as exc:  # the backend's own error types vary; any of them fails the job
                log.debug("inference failed", exc_info=True)
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                where = f" on {feed.oldest_in_flight[0].sample.image}" if feed.oldest_in_flight else ""
                raise click.ClickException(f"{artifact}: inference failed{where}: {first_line}") from exc
            drain(keep=0)
        # runner.backend is what ran: auto may have fallen back (runtime.runners)
        outcome.info = engine_info(artifact, runner, batch_size, cityscapes_root, split, split_images)
        if shard is not None:
            outcome.info["shard"] = shard.record(len(samples))
    finish_info(outcome, started, save_dir)
    return outcome


def check_engine_args(artifact: Path, batch_size: int) -> None:
    """The checks every engine evaluation makes before listing the split (in one process or on Ray)."""
    if not artifact.is_file():
        raise UserError(f"{artifact}: no such file (--engine)")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")


def open_segmenter(artifact: Path, batch_size: int, backend: str):
    """A segmenter's runner, not yet entered (the session opens with `with`); any other artifact is refused."""
    from uda_trt.runtime.runners import open_runner  # lazy: pulls in ONNX Runtime / TensorRT

    runner = open_runner(artifact, backend=backend)  # reads the sidecar
    if runner.sidecar.task != "segment":
        raise UserError(f"{artifact}: a {runner.sidecar.task} model; evaluate-seg needs a segmenter artifact")
    runner.expect_inputs(batch_size)  # images of any size: the segmenter's whole size range
    return runner


def engine_info(artifact: Path, runner, batch_size: int, cityscapes_root: Path, split: str, images: int) -> dict:
    """What metrics.json records of an engine evaluation: the artifact, what ran it, and the split scored."""
    return {
        "mode": "engine",
        "artifact": str(artifact),
        "artifact_sha256": file_sha256(artifact),
        "architecture": runner.sidecar.architecture,
        "backend": runner.backend,
        "providers": runner.active_providers,
        "batch_size": batch_size,
        "cityscapes": str(cityscapes_root),
        "split": split,
        "ground_truth_images": images,
    }


def finish_info(outcome: EvalOutcome, started: float, save_dir: Path | None) -> None:
    """Add the run's time, rate and predictions folder to `outcome.info`."""
    elapsed = time.perf_counter() - started
    outcome.info["elapsed_s"] = round(elapsed, 3)
    outcome.info["images_per_s"] = round(outcome.scored / elapsed, 3) if elapsed > 0 else None
    if save_dir is not None:
        outcome.info["predictions_saved_to"] = str(save_dir)


def clean_output(output: Path) -> None:
    """Remove the hidden temporaries a killed run left in OUT: every output is written to `.NAME.partial` and
    renamed, so readers never see half a file, and a rerun starts from a clean folder."""
    if output.is_dir():
        remove_partials(output)


def write_outcome(outcome: EvalOutcome, output: Path, figures: bool = True) -> dict:
    """OUT/metrics.{json,md}, and with `figures` the pictures (OUT/confusion.png, OUT/overlays.png when images were
    scored)."""
    figures = write_eval_figures(Path(output), outcome.cm.matrix, outcome.examples) if figures else []
    extra = {**outcome.info, "skipped": outcome.skipped, "figures": [path.name for path in figures]}
    return write_metrics(Path(output), outcome.cm, outcome.scored, len(outcome.skipped), extra)


def evaluate_predictions(
    pred_dir: Path,
    cityscapes_root: Path,
    split: str = "val",
    id_type: str = "labelid",
    *,
    output: Path,
    strict: bool = False,
    workers: int | None = None,
    figures: bool = True,
    shard: Shard | None = None,
) -> dict:
    """`score_predictions`, then write OUT/metrics.json + metrics.md (and the pictures with `figures`); returns the
    metrics.json dict."""
    clean_output(Path(output))
    outcome = score_predictions(
        pred_dir, cityscapes_root, split, id_type, strict=strict, workers=workers, examples=figures, shard=shard
    )
    return write_outcome(outcome, output, figures)


def evaluate_engine(
    artifact: Path,
    cityscapes_root: Path,
    split: str = "val",
    *,
    output: Path,
    batch_size: int = 1,
    backend: str = "auto",
    save_predictions: bool = False,
    workers: int | None = None,
    figures: bool = True,
    shard: Shard | None = None,
) -> dict:
    """`score_engine` (predictions saved under OUT/predictions when asked), then write OUT/metrics.{json,md} (and
    the pictures with `figures`).

    Returns the metrics.json dict (the one `run-uda` puts in its report).
    """
    output = Path(output)
    clean_output(output)
    outcome = score_engine(
        artifact,
        cityscapes_root,
        split,
        batch_size=batch_size,
        backend=backend,
        save_dir=output / "predictions" if save_predictions else None,
        workers=workers,
        shard=shard,
    )
    return write_outcome(outcome, output, figures)
