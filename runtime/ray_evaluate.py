"""`evaluate-seg --engine ... --ray`: scoring a segmenter as a Ray Data pipeline over a Ray cluster.

Rows are runs of consecutive same-size images, as evaluate-seg's single process batches them; they flow through
decode tasks, a pool of runner actors and scoring tasks (predictions written, one confusion matrix per row). The
driver sums the matrices and reports skips and overlays in dataset order, so metrics, skips and predictions equal
the single-process run's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import numpy as np

from uda_trt.runtime.imageio import LogOnce
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.ray_cluster import (
    Cluster,
    Notes,
    RunnerActor,
    absolute,
    from_row,
    ray_cluster,
    remote_failure,
    to_row,
    to_rows,
)


def _header_size(path: Path) -> tuple[int, int] | None:
    """An image's (w, h) from its header, without decoding it; None when it cannot be read (decoding will say why)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def segment_plan(samples: list, batch_size: int) -> list[list]:
    """evaluate-seg's batches: runs of consecutive same-size images, at most `batch_size` each (sizes read from the
    headers), as the single-process run forms them. A faulty image leaves its batch one shorter there, where the
    single-process run takes the next image in; each image's labels do not depend on its neighbours."""
    plan: list[list] = []
    previous = None
    for sample in samples:
        size = _header_size(sample.image)
        if plan and len(plan[-1]) < batch_size and size is not None and size == previous:
            plan[-1].append(sample)
        else:
            plan.append([sample])
        previous = size
    return plan


def _load_batch(row: dict) -> dict:
    """Decode task: images and ground truth of one planned batch, read and checked by `evaluate.load_sample`."""
    from uda_trt.runtime.evaluate import load_sample, same_size_batches

    batch, batch_size = from_row(row)
    notes = Notes()
    loaded = [load_sample(sample, notes) for sample in batch]
    faults = [(str(item.error.path), item.error.problem) for item in loaded if item.error is not None]
    groups = list(same_size_batches(loaded, batch_size, lambda item: None))  # sizes the headers hid split the batch
    return to_row(row["index"], {"groups": groups, "faults": faults, "notes": notes.notes})


class _SegmenterActor(RunnerActor):
    """Actor: each same-size group of a row through `infer_many`, its labels checked as score_engine checks them."""

    def __call__(self, row: dict) -> dict:
        self.check()
        payload = from_row(row)
        labels = []
        for group in payload["groups"]:
            out = next(self.runner.infer_many([np.stack([item.image for item in group])]))["labels"]
            height, width = group[0].image.shape[:2]
            if out.shape != (len(group), height, width):
                raise click.ClickException(
                    f"{self.artifact}: returned labels of shape {out.shape} for {len(group)} image(s) of "
                    f"{width}x{height}; expected N x H x W (is it a segmenter exported at full resolution?)"
                )
            labels.append(out)
        return to_row(row["index"], {**payload, "labels": labels})


def _score_batch(row: dict, save_dir: Path | None, with_examples: set[int]) -> dict:
    """Scoring task: the row's confusion matrix (one per group, summed), predictions written when asked, and, for
    the first rows, the (image, prediction, truth) triples the overlays are drawn from."""
    from uda_trt.runtime.evaluate import PREDICTION_SUFFIX
    from uda_trt.runtime.imageio import write_label
    from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID, train_ids_to_label_ids
    from uda_trt.runtime.metrics import confusion_matrix

    payload = from_row(row)
    matrix, scored, kept = None, 0, []
    for group, labels in zip(payload.pop("groups"), payload.pop("labels"), strict=True):
        if save_dir is not None:
            for item, item_labels in zip(group, labels, strict=True):
                write_label(
                    Path(save_dir) / f"{item.sample.key}{PREDICTION_SUFFIX}", train_ids_to_label_ids(item_labels)
                )
        counts = confusion_matrix(np.stack([item.gt for item in group]), labels, gt_to_train=LABEL_ID_TO_TRAIN_ID)
        matrix = counts if matrix is None else matrix + counts
        scored += len(group)
        if row["index"] in with_examples:
            kept += [(item.image, item_labels, item.gt) for item, item_labels in zip(group, labels, strict=True)]
    return to_row(row["index"], {**payload, "matrix": matrix, "scored": scored, "examples": kept})


def score_engine_on_ray(
    artifact: Path,
    cityscapes_root: Path,
    cluster: Cluster,
    split: str = "val",
    batch_size: int = 1,
    backend: str = "auto",
    save_dir: Path | None = None,
):
    """`evaluate.score_engine` on a Ray cluster: the same checks, batches, matrix and info (plus "ray")."""
    import ray

    from uda_trt.runtime.datasets import cityscapes_samples
    from uda_trt.runtime.eval_figures import OVERLAY_ROWS
    from uda_trt.runtime.evaluate import EvalOutcome, check_engine_args, engine_info, finish_info, open_segmenter

    artifact = Path(artifact)
    check_engine_args(artifact, batch_size)
    samples = cityscapes_samples(cityscapes_root, split, require_labels=True)
    started = time.perf_counter()
    runner = open_segmenter(artifact, batch_size, backend)  # the backend resolved here is the one every actor runs
    with runner:
        resolved = runner.backend
    actors, resources = cluster.actors(resolved)
    remote_samples = [dataclasses.replace(s, image=absolute(s.image), label=absolute(s.label)) for s in samples]
    plan = segment_plan(remote_samples, batch_size)
    originals = {str(a.image): s.image for a, s in zip(remote_samples, samples, strict=True)}
    originals |= {str(a.label): s.label for a, s in zip(remote_samples, samples, strict=True)}
    starts = np.cumsum([0] + [len(batch) for batch in plan[:-1]])
    # overlays show the first scored images: the first rows send theirs back (twice the rows' worth, for faults)
    with_examples = {index for index, start in enumerate(starts) if start < 2 * OVERLAY_ROWS}
    dataset = (
        ray.data.from_items(to_rows([(batch, batch_size) for batch in plan]), override_num_blocks=max(1, len(plan)))
        .map(_load_batch)
        .map(
            _SegmenterActor,
            fn_constructor_kwargs={"artifact": artifact.absolute(), "backend": resolved, "batch_size": batch_size},
            compute=ray.data.ActorPoolStrategy(size=actors),
            **resources,
        )
        .map(_score_batch, fn_kwargs={"save_dir": absolute(save_dir), "with_examples": with_examples})
    )
    outcome, log_once, results = EvalOutcome(), LogOnce(), {}
    with Progress(len(samples), "segmenting") as bar:
        try:
            for row in dataset.iter_rows():
                result = from_row(row)
                results[row["index"]] = result
                if result["matrix"] is not None:
                    outcome.cm.add(result.pop("matrix"))
                outcome.scored += result["scored"]
                for key, message in result["notes"]:
                    log_once(key, message)
                bar.update(result["scored"] + len(result["faults"]))
        except ray.exceptions.RayError as exc:
            raise remote_failure(exc, f"{artifact}: inference failed") from None
    for index in sorted(results):  # skips and overlays in dataset order, as in one process
        result = results[index]
        for path, problem in result["faults"]:
            outcome.skip(Path(originals.get(path, path)), problem)
        for image, prediction, truth in result["examples"]:
            outcome.keep_examples([image], [prediction], [truth])
    outcome.info = {
        **engine_info(artifact, runner, batch_size, cityscapes_root, split, len(samples)),
        **cluster.record(resolved),
    }
    finish_info(outcome, started, save_dir)
    return outcome


def evaluate_engine_on_ray(
    artifact: Path,
    cityscapes_root: Path,
    split: str = "val",
    *,
    output: Path,
    target: str,
    batch_size: int = 1,
    backend: str = "auto",
    save_predictions: bool = False,
    figures: bool = True,
) -> dict:
    """`evaluate.evaluate_engine` on a Ray cluster (`--ray TARGET`): OUT/metrics.{json,md} and the pictures."""
    from uda_trt.runtime.evaluate import clean_output, write_outcome

    output = Path(output)
    clean_output(output)
    with ray_cluster(target) as cluster:
        outcome = score_engine_on_ray(
            artifact,
            cityscapes_root,
            cluster,
            split,
            batch_size=batch_size,
            backend=backend,
            save_dir=output / "predictions" if save_predictions else None,
        )
    return write_outcome(outcome, output, figures)
