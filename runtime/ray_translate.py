"""`batch-translate --ray`: the translation job as a Ray Data pipeline over a Ray cluster.

One row per engine batch, planned by the driver exactly as the single-process run plans it (translate.batch_plan),
flows through decode tasks, a pool of actors that each hold one runner (one GPU each when the backend is a GPU one
and the cluster has GPUs), and encode-and-write tasks. Each batch reaches the engine with the same images as in one
process, and is written by the same functions, so the files are byte-identical.

The driver keeps all the bookkeeping, with the single-process code (translate.batch_translate's `Execution` hook):
it decides what is unfinished from the same journal, and journals each sample as its row streams back, after the
worker renamed its files into place. A killed driver leaves the journal and whole files only; a rerun, with or
without `--ray`, resumes (`--ray` is not part of the job's identity: it changes where the work runs, not the
bytes). Outputs a worker wrote whose rows had not reached the driver are simply written again, with the same bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.imageio import LogOnce
from uda_trt.runtime.jobs.interrupts import held
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

log = logging.getLogger(__name__)


class RayTranslation:
    """translate.Execution on a Ray cluster: `batch_translate(job, RayTranslation(cluster))`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def describe(self, runner) -> dict:
        return self.cluster.record(runner.backend)

    def run(self, job, runner, todo, finished, stamps, working_size, stats, state, total) -> None:
        import ray

        from uda_trt.runtime.pipeline import batched

        # Workers may start in another folder than the driver: they get absolute paths, the journal relative ones.
        remote_job = dataclasses.replace(
            job,
            artifact=absolute(job.artifact),
            input_root=absolute(job.input_root),
            output_root=absolute(job.output_root),
        )
        batches = [
            [dataclasses.replace(s, image=absolute(s.image), label=absolute(s.label)) for s in batch]
            for batch in batched(todo, job.batch_size)  # todo holds whole batches of translate.batch_plan
        ]
        if not batches:  # everything was done: no cluster work
            return
        writes = [[s.key for s in batch if s.key not in finished] for batch in batches]
        originals = {s.key: s for s in todo}  # as the report names them
        actors, resources = self.cluster.actors(runner.backend)
        label_size = working_size if job.output_size == "working" else None
        dataset = (
            ray.data.from_items(
                to_rows(list(zip(batches, writes, strict=True))), override_num_blocks=max(1, len(batches))
            )
            .map(_decode_batch, fn_kwargs={"job": remote_job, "working_size": working_size, "label_size": label_size})
            .map(
                _TranslatorActor,
                fn_constructor_kwargs={
                    "artifact": remote_job.artifact,
                    "backend": runner.backend,  # what the driver resolved: every actor runs it, or fails
                    "batch_size": job.batch_size,
                    "working_size": working_size,
                },
                compute=ray.data.ActorPoolStrategy(size=actors),
                **resources,
            )
            .map(_write_batch, fn_kwargs={"job": remote_job})
        )
        log_once = LogOnce()

        def skip(sample, reason: str) -> None:
            given = originals[sample.key]  # the paths as the single-process run names them
            for path, named in ((sample.image, given.image), (sample.label, given.label)):
                reason = reason.replace(str(path), str(named)) if path is not None else reason
            if job.strict:
                raise UserError(f"{reason} (--strict stops at the first bad sample)")
            log.warning("skipped %s", reason)
            stats.skipped.append({"image": str(given.image), "reason": reason})

        def journal(result: dict, progress: Progress) -> None:
            """One row's notes, faults and writes into the stats and the journal (its writes are already on disk)."""
            for key, message in result["notes"]:
                log_once(key, message)
            stats.seconds["decode"] += result["decode_s"]
            stats.seconds["infer"] += result["infer_s"]
            for sample, reason in result["faults"]:
                if sample.key not in finished:
                    skip(sample, reason)
                    progress.update(1)
            for sample, outcome in result["writes"]:
                if outcome[0] == "written":
                    _, seconds, files = outcome
                    out = remote_job.output_root
                    files = [(job.output_root / Path(p).relative_to(out), n, d) for p, n, d in files]
                    stats.seconds["encode"] += seconds
                    stats.done += 1
                    state.record(sample.key, stamps[sample.key], files)
                elif outcome[0] == "disk full":
                    raise OSError(outcome[1], os.strerror(outcome[1]), outcome[2])
                else:
                    skip(sample, f"{sample.image}: could not write output ({outcome[1]})")
                state.progress(stats.counts(total))
                progress.update(1)

        with Progress(total, "translate", initial=len(finished)) as progress:
            try:
                for row in dataset.iter_rows():
                    with held():  # a signal waits until every write of the row is journalled
                        journal(from_row(row), progress)
            except ray.exceptions.RayError as exc:
                raise remote_failure(exc, f"{job.artifact}: the Ray pipeline failed") from None


def _decode_batch(row: dict, job, working_size, label_size) -> dict:
    """Decode task: one engine batch read and resized as `translate.decode_sample` does; faulty samples set aside."""
    from uda_trt.runtime.translate import decode_sample

    batch, writes = from_row(row)
    notes, start = Notes(), time.perf_counter()
    decoded = [decode_sample(sample, job.input_root, working_size, label_size, notes) for sample in batch]
    good = [d for d in decoded if d.error is None]
    images = np.stack([d.image for d in good]) if good else None
    for d in good:
        d.image = None  # travels once, stacked
    payload = {
        "good": good,
        "images": images,
        "faults": [(d.sample, d.error) for d in decoded if d.error is not None],
        "writes": writes,
        "notes": notes.notes,
        "decode_s": time.perf_counter() - start,
    }
    return to_row(row["index"], payload)


class _TranslatorActor(RunnerActor):
    """Actor: one engine batch per row through `infer_many` (ONNX Runtime on the CPU splits a batch between its
    runs exactly as in one process)."""

    def __call__(self, row: dict) -> dict:
        self.check()
        payload = from_row(row)
        start = time.perf_counter()
        images = payload.pop("images")
        payload["translated"] = None if images is None else next(self.runner.infer_many([images]))["translated"]
        payload["infer_s"] = time.perf_counter() - start
        return to_row(row["index"], payload)


def _write_batch(row: dict, job) -> dict:
    """Encode-and-write task: each unfinished sample of the batch written atomically by `translate.encode_sample`."""
    from uda_trt.runtime.translate import DISK_FULL, encode_sample

    payload = from_row(row)
    good, translated, wanted = payload.pop("good"), payload.pop("translated"), set(payload.pop("writes"))
    writes = []
    for item, image in zip(good, [] if translated is None else translated, strict=True):
        if item.sample.key not in wanted:  # done before: inferred only to keep the batch as it was
            continue
        try:
            seconds, files = encode_sample(job, item, image)
        except (SampleError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                writes.append((item.sample, ("disk full", exc.errno, exc.filename)))
                break  # every later write would fail too
            writes.append((item.sample, ("failed", str(exc))))
        else:
            writes.append((item.sample, ("written", seconds, [(str(p), n, d) for p, n, d in files])))
    return to_row(row["index"], {**payload, "writes": writes})


def batch_translate_on_ray(job, target: str) -> dict:
    """batch-translate on a Ray cluster (`--ray TARGET`); same outputs, manifest, journal and report, plus "ray"."""
    from uda_trt.runtime.jobs.interrupts import stop_on_signals
    from uda_trt.runtime.translate import batch_translate

    if job.fda_target is not None:
        raise UserError("--ray: runs --engine artifacts; FDA (--fda) runs in one process, without --ray")
    with ray_cluster(target) as cluster, stop_on_signals():  # after ray.init, which installs handlers of its own
        return batch_translate(job, RayTranslation(cluster))
