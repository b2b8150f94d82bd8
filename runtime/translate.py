"""batch-translate: run a translator artifact (or FDA) over a whole dataset and write it back in the input's layout.

Decode-and-resize and encode run in a thread pool around the runner, with bounded prefetch, so memory depends on the
batch size and worker count, never on the dataset size. Outputs are written atomically and journalled
(runtime.jobs.state); a rerun of the same command resumes. Batches are fixed slices of the sorted sample list, also on
resume, so every image goes through the engine in the same company and a resumed run is byte-identical to an
uninterrupted one. FDA (`--fda`, runtime.fda_translator) plugs in as the translator instead of an artifact's
runner: its donors are read by the decode threads, and its manifest records the donor list instead of an artifact.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import click
import numpy as np
from PIL import Image

from uda_trt.runtime.datasets import Sample, detect_layout, folder_hint, has_labels, samples_for
from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.fda_translator import FdaTranslator, list_donors
from uda_trt.runtime.imageio import LogOnce, encode_image, encode_label_image, load_checked, read_rgb, resize_rgb
from uda_trt.runtime.jobs.files import atomic_write_bytes, write_json
from uda_trt.runtime.jobs.interrupts import JobInterrupted, exit_code_of, held
from uda_trt.runtime.jobs.logs import log_file
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.jobs.shards import Shard
from uda_trt.runtime.jobs.state import InputStamp, JobState, input_stamps
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.pipeline import EngineFeed, batched, prefetch
from uda_trt.runtime.runners import open_runner
from uda_trt.runtime.safepaths import check_input_inside, output_path
from uda_trt.runtime.sidecar import file_sha256

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpg")
# write errors that stop the job (every later write would fail too) instead of skipping one sample
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
OUTPUT_SIZES = ("working", "original")
LOG_NAME = "batch-translate.log"
# identity key -> the option a user changes it with (for the one-line refusal to resume)
RESUME_FLAGS = {
    "artifact_sha256": "--engine (sha256)",
    "input_root": "--input",
    "layout": "--layout",
    "split": "--split",
    "working_size": "--size",
    "output_size": "--output-size",
    "image_format": "--format",
    "png_compression": "--png-compression",
    "jpeg_quality": "--jpeg-quality",
    "batch_size": "--batch-size",
    "backend": "--backend",
    # FDA runs (no artifact_sha256, batch_size or backend: those do not change FDA's bytes)
    "fda_target_root": "--fda",
    "fda_donors_sha256": "--fda (the target images changed)",
    "fda_beta": "--beta",
    "fda_seed": "--seed",
}


@dataclass(frozen=True)
class TranslateJob:
    """Everything one batch-translate run needs; written to the manifest as the resolved config."""

    artifact: Path | None  # None: FDA (fda_target)
    input_root: Path
    output_root: Path
    layout: str = "auto"
    split: str = "train"
    size: tuple[int, int] | None = None  # working size (w, h); None: the artifact's own
    output_size: str = "original"  # each input's own size, so a translated dataset is a drop-in for its source
    image_format: str = "png"
    png_compression: int = 1
    jpeg_quality: int = 95
    batch_size: int | None = None  # None: the backend's default (Runner.default_batch_size), resolved on opening
    workers: int = field(default_factory=default_workers)
    backend: str = "auto"
    strict: bool = False
    overwrite: bool = False  # redo everything, even when OUT holds a run with other options or another artifact
    fda_target: Path | None = None  # FDA instead of an artifact: the amplitude donors' root (runtime.fda_translator)
    fda_beta: float = 0.01
    fda_seed: int = 0
    shard: Shard | None = None  # --shard I/N: only this shard's samples, with its own bookkeeping (runtime.jobs.shards)


@dataclass
class DecodedSample:
    """One sample read for translation (in one process or a Ray decode task), or the reason it could not be."""

    sample: Sample
    image: np.ndarray | None  # at the working size
    original_size: tuple[int, int]
    seconds: float = 0.0
    error: str | None = None
    label: Image.Image | None = None  # resized to the output size; None: copied byte for byte
    donor: np.ndarray | None = None  # FDA: the donor's low-frequency amplitudes at the image's (working) size


@dataclass(frozen=True)
class _Inputs:
    """What batch-translate found under --input: the layout, the samples, whether labels go along, and warnings."""

    layout: str
    split: str | None  # Cityscapes only
    samples: list[Sample]
    labels: bool
    warnings: list[str]
    shard: Shard | None = None
    listed: frozenset[str] | None = None  # with a shard: the key of every sample of the input, not only the shard's


def _find_inputs(job: TranslateJob) -> _Inputs:
    """List the input's samples, saying (as warnings) where a guessed layout drops labels a user likely wants."""
    if not job.input_root.is_dir():
        raise UserError(f"--input: {job.input_root} is not a folder")
    layout = detect_layout(job.input_root) if job.layout == "auto" else job.layout
    labels = has_labels(job.input_root, layout, job.split)
    _, samples = samples_for(job.input_root, layout, job.split, require_labels=labels)
    warnings = []
    if layout == "gta5" and not labels:
        warnings.append(f"{job.input_root}: no labels/ folder; images are translated without labels")
    elif layout == "cityscapes" and not labels:
        warnings.append(f"{job.input_root}: no gtFine/{job.split}/ folder; images are translated without labels")
    elif layout == "folder":
        hint = folder_hint(job.input_root)
        if hint:
            warnings.append(f"{job.input_root}: read as a plain image folder, no labels carried; {hint}")
    return _Inputs(layout, job.split if layout == "cityscapes" else None, samples, labels, warnings)


def _describe(inputs: _Inputs) -> str:
    """e.g. "gta5 layout, labels carried" or "cityscapes layout, split train, no labels"."""
    parts = [f"{inputs.layout} layout"]
    if inputs.split is not None:
        parts.append(f"split {inputs.split}")
    parts.append("labels carried" if inputs.labels else "no labels")
    if inputs.shard is not None:
        parts.append(f"shard {inputs.shard}: {len(inputs.samples)} of {len(inputs.listed)} images")
    return ", ".join(parts)


def _shard_of(job: TranslateJob, inputs: _Inputs, runner) -> _Inputs:
    """The inputs of shard `job.shard` (all of them without one). Its unit is an engine batch, so each image meets
    the engine with the neighbours it has in an unsharded run; FDA translates each image alone."""
    if job.shard is None:
        return inputs
    unit = 1 if isinstance(runner, FdaTranslator) else job.batch_size
    listed = frozenset(sample.key for sample in inputs.samples)
    return replace(inputs, samples=job.shard.select(inputs.samples, unit), shard=job.shard, listed=listed)


def _stamps(sample: Sample, root: Path) -> list[InputStamp]:
    return input_stamps([sample.image] + ([sample.label] if sample.label is not None else []), root)


@dataclass
class _Stats:
    done: int = 0
    already_done: int = 0
    skipped: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "infer": 0.0, "encode": 0.0})

    def counts(self, total: int) -> dict[str, int]:
        return {"total": total, "done": self.done + self.already_done, "skipped": len(self.skipped)}


def _output_paths(job: TranslateJob, sample: Sample) -> tuple[Path, Path | None]:
    """Where a sample's image and label go: the input's relative path under OUT, never outside it."""
    image_rel = sample.image.relative_to(job.input_root).with_suffix(f".{job.image_format}").as_posix()
    image_out = output_path(job.output_root, image_rel, sample.image)
    if sample.label is None:
        return image_out, None
    label_rel = sample.label.relative_to(job.input_root).as_posix()
    return image_out, output_path(job.output_root, label_rel, sample.label)


def decode_sample(
    sample: Sample,
    root: Path,
    working_size: tuple[int, int] | None,
    label_size: tuple[int, int] | None,
    log_once: LogOnce,
    donor_of: Callable[[str, tuple[int, int], LogOnce], np.ndarray] | None = None,
) -> DecodedSample:
    """The image at the working size (None: its own), its label checked (and resized to `label_size` unless that
    is None), and with `donor_of` (FDA) what the translator needs of the sample's donor at the image's size."""
    start = time.perf_counter()
    try:
        check_input_inside(sample.image, root)
        image = read_rgb(sample.image, log_once)
        original_size = (image.shape[1], image.shape[0])
        label = None
        if sample.label is not None:
            check_input_inside(sample.label, root)
            label = _carried_label(sample.label, original_size, label_size)
        size = working_size or original_size
        resized = image if original_size == size else resize_rgb(image, size)
        donor = None if donor_of is None else donor_of(sample.key, size, log_once)
        return DecodedSample(sample, resized, original_size, time.perf_counter() - start, label=label, donor=donor)
    except SampleError as exc:
        return DecodedSample(sample, None, (0, 0), time.perf_counter() - start, error=str(exc))


def _carried_label(path: Path, image_size: tuple[int, int], size: tuple[int, int] | None) -> Image.Image | None:
    """Check a label against its image (decoded fully, so a corrupt one fails before inference, once); returns it
    resized to `size` with nearest neighbour, or None when it is copied byte for byte (no size, or the same)."""
    with load_checked(path) as label:
        if label.size != image_size:
            raise SampleError(
                path, f"label is {label.size[0]}x{label.size[1]}, image is {image_size[0]}x{image_size[1]}"
            )
        return None if size is None or size == image_size else label.resize(size, Image.NEAREST)


def _label_bytes(sample: Sample, label: Image.Image | None) -> bytes:
    """The label file byte for byte, or `label` (resized) as PNG with its mode and palette."""
    return sample.label.read_bytes() if label is None else encode_label_image(label)


def _write(path: Path, data: bytes) -> tuple[Path, int, str]:
    atomic_write_bytes(path, data)
    return path, len(data), hashlib.sha256(data).hexdigest()


def encode_sample(job: TranslateJob, decoded: DecodedSample, translated: np.ndarray) -> tuple[float, list]:
    """Write one sample (label first, image last) and return (seconds, [(path, size, sha256), ...])."""
    start = time.perf_counter()
    image_out, label_out = _output_paths(job, decoded.sample)
    keep_original = job.output_size == "original" and decoded.original_size != translated.shape[1::-1]
    if keep_original:
        translated = resize_rgb(translated, decoded.original_size)
    written = []
    if label_out is not None:
        written.append(_write(label_out, _label_bytes(decoded.sample, decoded.label)))
    image_bytes = encode_image(translated, image_out.suffix, job.png_compression, job.jpeg_quality)
    written.append(_write(image_out, image_bytes))
    return time.perf_counter() - start, written


def _validate_common(job: TranslateJob) -> None:
    """Checks that hold for every translator: formats, sizes, and an output folder outside the input."""
    if job.image_format not in IMAGE_FORMATS:
        raise UserError(f"--format: {job.image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if job.output_size not in OUTPUT_SIZES:
        raise UserError(f"--output-size: {job.output_size!r} is not one of {', '.join(OUTPUT_SIZES)}")
    if job.batch_size is not None and job.batch_size < 1:
        raise UserError("--batch-size: must be at least 1")
    output, source = job.output_root.resolve(), job.input_root.resolve()
    if output == source:
        raise UserError(f"--output: {job.output_root} is the input folder; choose another folder")
    if output.is_relative_to(source):
        raise UserError(f"--output: {job.output_root} is inside the input folder; choose a folder outside it")


def _validate(job: TranslateJob, sidecar) -> tuple[int, int]:
    """The engine's working size, after checking the artifact is a translator and the size suits it."""
    if sidecar.task != "translate":
        raise UserError(f"{job.artifact}: is a '{sidecar.task}' artifact; batch-translate needs a translator")
    _validate_common(job)
    working_size = tuple(job.size or sidecar.working_size or ())
    if len(working_size) != 2:
        raise UserError(f"{job.artifact}: the artifact records no working size; pass --size WIDTHxHEIGHT")
    divisor = sidecar.size_divisor
    if working_size[0] % divisor or working_size[1] % divisor:
        raise UserError(
            f"--size: {working_size[0]}x{working_size[1]} is not a multiple of {divisor} (the model's size divisor)"
        )
    return working_size


def _identity(job: TranslateJob, layout: str, working_size: tuple[int, int] | None, runner) -> dict:
    """What must not change for a rerun to resume: the artifact (or FDA's donors and settings) and every option
    that changes output bytes. FDA translates each image alone on the CPU: batch size and backend change nothing."""
    common = {
        "input_root": str(job.input_root.resolve()),
        "layout": layout,
        "split": job.split,
        "working_size": list(working_size) if working_size else None,
        "output_size": job.output_size,
        "image_format": job.image_format,
        "png_compression": job.png_compression,
        "jpeg_quality": job.jpeg_quality,
    }
    if isinstance(runner, FdaTranslator):
        fda = runner.settings()
        return {
            "fda_target_root": fda["target_root"],
            "fda_donors_sha256": fda["donors_sha256"],
            "fda_beta": fda["beta"],
            "fda_seed": fda["seed"],
            **common,
        }
    return {
        "artifact_sha256": file_sha256(job.artifact),
        **common,
        "batch_size": job.batch_size,
        "backend": runner.backend,
    }


def _open_translator(job: TranslateJob):
    """(translator, working size, job): an artifact's runner (not yet entered) at its working size, or FDA's
    translator at --size (None: each image at its own size, no resizing), and the job with its batch size resolved
    (the translator's default when it gave none; from then on the batch plan is a pure function of the job)."""
    if job.fda_target is not None:
        if job.artifact is not None:
            raise UserError("--fda: give either --engine or --fda, not both")
        if job.backend != "auto":
            raise UserError(f"--backend: {job.backend} runs artifacts; --fda runs on the CPU with numpy")
        _validate_common(job)
        translator = FdaTranslator(list_donors(job.fda_target), job.fda_beta, job.fda_seed, threads=job.workers)
        return translator, job.size, _with_batch_size(job, translator)
    if job.artifact is None:
        raise UserError("--engine: give a translator artifact (--engine ART) or --fda TARGET_ROOT")
    runner = open_runner(job.artifact, backend=job.backend)  # reads the sidecar; the session opens with `with`
    working_size = _validate(job, runner.sidecar)
    job = _with_batch_size(job, runner)
    runner.expect_inputs(job.batch_size, working_size)
    return runner, working_size, job


def _with_batch_size(job: TranslateJob, translator) -> TranslateJob:
    return job if job.batch_size is not None else replace(job, batch_size=translator.default_batch_size)


class Execution(Protocol):
    """Another way to run the translation itself (runtime.ray_translate: a Ray cluster); the job's bookkeeping (inputs,
    manifest, journal, resume, report) stays here and is the same."""

    def describe(self, runner) -> dict:
        """Keys added to the manifest and the report (what ran the job)."""

    def run(
        self,
        job: TranslateJob,
        runner,
        todo: list[Sample],
        finished: set[str],
        stamps: dict[str, list[InputStamp]],
        working_size: tuple[int, int] | None,
        stats: _Stats,
        state: JobState,
        total: int,
    ) -> None:
        """What `_run` does: translate `todo` (whole batches of `batch_plan`), journal each sample written."""


def batch_translate(job: TranslateJob, execution: Execution | None = None) -> dict:
    """Translate every image of `job.input_root`; return the report (also written to OUT/report.json).

    A failed write stops the job in one line (exit 1); on a full disk the line says how many images are complete,
    and the same command, rerun after freeing space, finishes the job. `execution`: run the translation elsewhere
    (runtime.ray_translate); default, in this process.
    """
    stats = _Stats()
    try:
        return _batch_translate(job, stats, execution)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM inside runtime.jobs.interrupts.stop_on_signals()
        raise JobInterrupted(
            f"{stats.done + stats.already_done} images are complete and kept in {job.output_root}; "
            "rerun the same command to finish",
            exit_code_of(exc),
        ) from None
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise click.ClickException(
                f"{job.output_root}: {os.strerror(exc.errno).lower()}; {stats.done + stats.already_done} images are "
                "complete and kept: free space and rerun the same command to finish"
            ) from None
        raise click.ClickException(f"{exc.filename or job.output_root}: {exc.strerror or exc}") from None


def _batch_translate(job: TranslateJob, stats: _Stats, execution: Execution | None = None) -> dict:
    inputs = _find_inputs(job)
    layout, samples = inputs.layout, inputs.samples
    runner, working_size, job = _open_translator(job)
    with runner:  # `runner.backend` is now what runs (auto may have fallen back), recorded with its providers
        inputs = _shard_of(job, inputs, runner)
        samples = inputs.samples
        identity = _identity(job, layout, working_size, runner)
        state = JobState(
            job.output_root, "batch-translate", identity, RESUME_FLAGS, overwrite=job.overwrite, shard=job.shard
        )
        fda = {"fda": runner.settings()} if isinstance(runner, FdaTranslator) else {}
        executed = execution.describe(runner) if execution is not None else {}
        try:
            state.open(
                {
                    "config": asdict(job)
                    | {"working_size": list(working_size) if working_size else None, "layout": layout},
                    "artifact_sha256": identity.get("artifact_sha256"),
                    **fda,
                    "backend": runner.backend,
                    "providers": runner.active_providers,
                    **executed,
                    "total": len(samples),
                    "progress": {"total": len(samples), "done": 0, "skipped": 0},
                }
            )
            with log_file(job.output_root / state.own_name(LOG_NAME)):
                report = _translate_all(job, runner, inputs, working_size, state, stats, execution, executed)
            state.close("complete", stats.counts(len(samples)))
        finally:
            state.close()  # releases the journal and lock when the job stopped early; a no-op after completion
    return report


def _translate_all(
    job: TranslateJob,
    runner,
    inputs: _Inputs,
    working_size: tuple[int, int] | None,
    state: JobState,
    stats: _Stats,
    execution: Execution | None = None,
    executed: dict | None = None,
) -> dict:
    """Translate what is not done yet (after removing outputs of inputs that are gone); write the report."""
    samples = inputs.samples
    log.info("batch-translate %s -> %s (%s)", job.input_root, job.output_root, _describe(inputs))
    for warning in inputs.warnings:
        log.warning("%s", warning)
    keys = {s.key for s in samples}
    state.forget_except(keys if inputs.listed is None else set(inputs.listed), owned=keys)
    stamps = {s.key: _stamps(s, job.input_root) for s in samples}
    finished = {s.key for s in samples if state.finished(s.key, stamps[s.key])}
    stats.already_done = len(finished)
    todo = [s for chunk in batch_plan(samples, finished, job.batch_size) for s in chunk]
    started = time.perf_counter()
    run = execution.run if execution is not None else _run
    run(job, runner, todo, finished, stamps, working_size, stats, state, len(samples))
    wall = time.perf_counter() - started
    report = {
        "command": "batch-translate",
        "layout": inputs.layout,
        "split": inputs.split,
        "labels": inputs.labels,
        "input": _describe(inputs),
        "warnings": inputs.warnings,
        "working_size": list(working_size) if working_size else None,
        "output_size": job.output_size,
        "batch_size": job.batch_size,
        "images_total": len(samples),
        "images_translated": stats.done,
        "images_already_done": stats.already_done,
        "images_skipped": len(stats.skipped),
        "skipped": stats.skipped,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(stats.done / wall, 3) if wall > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in stats.seconds.items()},
        "backend": runner.backend,
        "providers": runner.active_providers,
        **({"fda": runner.settings()} if isinstance(runner, FdaTranslator) else {}),
        **(executed or {}),
    }
    if inputs.shard is not None:
        report["shard"] = inputs.shard.record(len(samples))
    write_json(state.report_path, report)
    log.info("%s", summary_line(report, job.output_root))
    return report


def batch_plan(samples: list[Sample], finished: set[str], batch_size: int) -> list[list[Sample]]:
    """The engine batches still to run: fixed `batch_size` slices of the sorted sample list (the last may be
    shorter), kept whole when any of their samples is unfinished, so a resumed image meets the engine with the
    same neighbours as the first time. A pure function of the job: every way of running it uses this plan."""
    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    return [chunk for chunk in chunks if any(sample.key not in finished for sample in chunk)]


def summary_line(report: dict, output_root: Path) -> str:
    """The one line a finished batch-translate ends with."""
    return (
        f"translated {report['images_translated']} images ({report['images_already_done']} already done, "
        f"{report['images_skipped']} skipped; {report['input']}) in {report['wall_seconds']:.1f} s -> {output_root}"
    )


def _run(
    job: TranslateJob,
    runner,
    todo: list[Sample],
    finished: set[str],
    stamps: dict[str, list[InputStamp]],
    working_size: tuple[int, int] | None,
    stats: _Stats,
    state: JobState,
    total: int,
) -> None:
    log_once = LogOnce()
    fda = isinstance(runner, FdaTranslator)
    decode = functools.partial(
        decode_sample,
        root=job.input_root,
        working_size=working_size,
        label_size=working_size if job.output_size == "working" else None,  # "original": labels copied as they are
        log_once=log_once,
        donor_of=runner.donor_amplitude if fda else None,
    )

    def skip(sample: Sample, reason: str) -> None:
        if job.strict:
            raise UserError(f"{reason} (--strict stops at the first bad sample)")
        log.warning("skipped %s", reason)
        stats.skipped.append({"image": str(sample.image), "reason": reason})

    def finish(pending) -> None:
        item, future = pending
        try:
            seconds, written = future.result()
        except (SampleError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise
            skip(item.sample, f"{item.sample.image}: could not write output ({exc})")
        else:
            stats.seconds["encode"] += seconds
            stats.done += 1
            state.record(item.sample.key, stamps[item.sample.key], written)
        state.progress(stats.counts(total))
        progress.update(1)

    def finish_oldest(encodes: list) -> None:
        """Wait for the oldest write and journal it; a signal meanwhile takes effect once it is journalled, and
        until then the write stays in `encodes`, where `keep_written` finds it."""
        with held():
            finish(encodes[0])
            encodes.pop(0)

    def keep_written(pool: ThreadPoolExecutor, encodes: list) -> None:
        """After an interruption: let running writes end, drop queued work, and journal every sample written."""
        pool.shutdown(wait=True, cancel_futures=True)
        for item, future in encodes:
            if future.done() and not future.cancelled() and future.exception() is None:
                stats.done += 1
                state.record(item.sample.key, stamps[item.sample.key], future.result()[1])
        state.progress(stats.counts(total), force=True)

    def good_batches(pool: ThreadPoolExecutor, progress: Progress) -> Iterator[list[DecodedSample]]:
        """Decoded batches without their faulty samples (each logged and counted on the way)."""
        for batch in batched(prefetch(pool, decode, todo, depth), job.batch_size):
            decoded = [future.result() for future in batch]
            stats.seconds["decode"] += sum(d.seconds for d in decoded)
            for bad in (d for d in decoded if d.error and d.sample.key not in finished):
                skip(bad.sample, bad.error)
                progress.update(1)
            good = [d for d in decoded if d.error is None]
            if good:
                yield good

    depth = max(2 * job.batch_size, 2 * job.workers)
    with (
        ThreadPoolExecutor(job.workers) as pool,
        Progress(total, "translate", initial=len(finished)) as progress,
    ):
        encodes = []
        images_of = _fda_pairs if fda else _stacked_images
        feed = EngineFeed(runner, good_batches(pool, progress), images_of)
        try:
            for good, outputs in feed:
                for item, out in zip(good, outputs["translated"], strict=True):
                    if item.sample.key not in finished:  # done before: inferred only to keep the batch as it was
                        encodes.append((item, pool.submit(encode_sample, job, item, out)))
                while len(encodes) > depth:
                    finish_oldest(encodes)
            stats.seconds["infer"] += feed.engine_seconds
            while encodes:
                finish_oldest(encodes)
        except KeyboardInterrupt:
            keep_written(pool, encodes)
            raise


def _stacked_images(good: list[DecodedSample]) -> np.ndarray:
    """An engine's input batch: N x H x W x 3, every image at the working size."""
    return np.stack([d.image for d in good])


def _fda_pairs(good: list[DecodedSample]) -> list[tuple[np.ndarray, np.ndarray]]:
    """FDA's input batch: (source, donor amplitudes) pairs (image sizes may differ between pairs)."""
    return [(d.image, d.donor) for d in good]
