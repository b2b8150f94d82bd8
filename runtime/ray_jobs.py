"""`batch-translate --ray` and `evaluate-seg --ray`: the same jobs as a Ray Data pipeline over a Ray cluster.

One row per engine batch, planned by the driver exactly as the single-process run plans it (translate.batch_plan;
for evaluate-seg, consecutive same-size images as evaluate._batches groups them), flows through decode tasks, a pool
of actors that each hold one runner (one GPU each when the backend is a GPU one and the cluster has GPUs), and
encode-and-write tasks (evaluate-seg: prediction-writing and confusion-matrix tasks). Each batch reaches the engine
with the same images as in one process, and is written by the same functions, so the files are byte-identical.

The driver keeps all the bookkeeping, with the single-process code (translate.batch_translate's `Execution` hook):
it decides what is unfinished from the same journal, and journals each sample as its row streams back, after the
worker renamed its files into place. A killed driver leaves the journal and whole files only; a rerun, with or
without `--ray`, resumes (`--ray` is not part of the job's identity: it changes where the work runs, not the
bytes). Outputs a worker wrote whose rows had not reached the driver are simply written again, with the same bytes.

Every node must see the input, the output folder and the artifact at the same paths (a shared file system) and
run the same uda-trt install. Ray is an optional extra, imported only here and only when `--ray` is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.imageio import LogOnce
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.jobs.workers import available_cpus

log = logging.getLogger(__name__)

# the line of a remote traceback that names the error raised: `uda_trt.runtime.errors.UserError: message`
_RAISED = re.compile(r"^(?P<type>(?!ray\.)[A-Za-z_][\w.]*(Error|Exception)): (?P<message>.+)$")

INSTALL = "pip install 'uda-trt[ray]'"
CPU_BACKENDS = ("onnxruntime-cpu", "fda")
CONNECT_TIMEOUT_S = 10


# ---------------------------------------------------------------------------------------------- the cluster


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The Ray cluster a job runs on: how it was reached (`target`: "local", "auto" or an address) and its size."""

    target: str
    nodes: int
    cpus: float
    gpus: float

    def actors(self, backend: str) -> tuple[int, dict]:
        """How many runner actors and the Ray resources of each: one per GPU for a GPU backend, else one per node
        (a CPU runner already uses every core of its node; Ray Data then runs the decoding inside the actor, as both
        ask for one CPU)."""
        if backend in CPU_BACKENDS:
            return max(1, self.nodes), {"num_cpus": 1}
        if self.gpus < 1:
            raise UserError(f"--ray {self.target}: the backend is {backend}, a GPU backend, but the cluster has no GPU")
        return int(self.gpus), {"num_gpus": 1}

    def record(self, backend: str) -> dict:
        """What the manifest and report say about the run: {"ray": {target, nodes, cpus, gpus, actors, ...}}."""
        actors, resources = self.actors(backend)
        return {"ray": {**dataclasses.asdict(self), "actors": actors, "actor_resources": resources}}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs ray[data]; plain ray lacks it)
    except ImportError:
        raise UserError(f"--ray: Ray is not installed; {INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_cluster(target: str) -> Iterator[Cluster]:
    """Connect to (or, for "local", start) a Ray cluster for one job, and shut the connection down after it.

    "local" starts a private instance on this machine with its CPUs, no dashboard; "auto" joins the cluster this
    machine belongs to (`ray start`, or RAY_ADDRESS); anything else is an address, `host:port` or `ray://host:port`.
    """
    ray = _import_ray()
    options = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if target == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private instance reports nowhere
        options |= {"address": "local", "num_cpus": available_cpus()}
    else:
        _check_answers(target)
        options |= {"address": target}
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = "start one with `ray start --head` or set RAY_ADDRESS" if target == "auto" else "is it running?"
        raise UserError(f"--ray {target}: cannot reach a Ray cluster ({_first_line(exc)}); {hint}") from None
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job's own progress display says how far it is
        context.execution_options.verbose_progress = False
        for name in ("ray", "ray.data"):  # failures reach the driver as exceptions; the rest is noise to a user
            logging.getLogger(name).setLevel(logging.CRITICAL)
        resources = ray.cluster_resources()
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        yield Cluster(target, nodes, resources.get("CPU", 0.0), resources.get("GPU", 0.0))
    finally:
        ray.shutdown()


def _check_answers(address: str) -> None:
    """Refuse an address where nothing listens, in one line: Ray itself retries such an address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port (e.g. a name Ray resolves itself): Ray says what is wrong
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"--ray {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); is the Ray head running "
            "there (`ray start --head`)?"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remote_failure(exc: BaseException, what: str) -> click.ClickException:
    """A failure inside a Ray task or actor as one line: the original error's message (Ray hands it over as the
    text of a remote traceback, whose last `module.Type: message` line is the error raised), a UserError again as
    a UserError (exit 2), anything else as `what: message` (exit 1)."""
    raised = [match for match in map(_RAISED.match, str(exc).splitlines()) if match]
    if not raised:
        return click.ClickException(f"{what}: {_first_line(exc)}")
    kind, message = raised[-1]["type"], raised[-1]["message"]
    if kind.rsplit(".", 1)[-1] == UserError.__name__:
        return UserError(message)
    if kind.startswith("click.") or kind.endswith("ClickException"):
        return click.ClickException(message)
    return click.ClickException(f"{what}: {kind.rsplit('.', 1)[-1]}: {message}")


def _rows(payloads: list) -> list[dict]:
    """Dataset rows: an index and a pickled payload (plain bytes travel through Ray Data in any version)."""
    return [{"index": index, "payload": pickle.dumps(payload)} for index, payload in enumerate(payloads)]


def _row(index: int, payload) -> dict:
    return {"index": index, "payload": pickle.dumps(payload)}


def _payload(row: dict):
    return pickle.loads(row["payload"])


class _Notes:
    """A LogOnce for worker processes: keeps (key, message) pairs so the driver logs them, once per job."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    def __call__(self, key: str, message: str) -> None:
        if all(key != seen for seen, _ in self.notes):
            self.notes.append((key, message))


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(path).absolute()


# ---------------------------------------------------------------------------------------------- batch-translate


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
            artifact=_absolute(job.artifact),
            input_root=_absolute(job.input_root),
            output_root=_absolute(job.output_root),
        )
        batches = [
            [dataclasses.replace(s, image=_absolute(s.image), label=_absolute(s.label)) for s in batch]
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
                _rows(list(zip(batches, writes, strict=True))), override_num_blocks=max(1, len(batches))
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

        with Progress(total, "translate", initial=len(finished)) as progress:
            try:
                for row in dataset.iter_rows():
                    result = _payload(row)
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
            except ray.exceptions.RayError as exc:
                raise _remote_failure(exc, f"{job.artifact}: the Ray pipeline failed") from None


def _decode_batch(row: dict, job, working_size, label_size) -> dict:
    """Decode task: one engine batch read and resized as `translate._decode` does; faulty samples set aside."""
    from uda_trt.runtime.translate import _decode

    batch, writes = _payload(row)
    notes, start = _Notes(), time.perf_counter()
    decoded = [_decode(sample, job.input_root, working_size, label_size, notes) for sample in batch]
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
    return _row(row["index"], payload)


class _RunnerActor:
    """Base of the actors: one runner for the actor's life. A runner that cannot start is reported by the first
    row (raising in the constructor makes Ray retry the actor, with tracebacks on the driver's stderr)."""

    def __init__(self, artifact: Path, backend: str, batch_size: int, working_size=None) -> None:
        from uda_trt.runtime.runners import open_runner

        self.artifact, self.runner, self.failure = artifact, None, None
        try:
            runner = open_runner(artifact, backend=backend)
            runner.expect_inputs(batch_size, working_size)
            self.runner = runner.__enter__()
        except click.ClickException as exc:  # UserError among them: the provider did not start on this node, ...
            self.failure = exc

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure


class _TranslatorActor(_RunnerActor):
    """Actor: one engine batch per row through `infer_many` (ONNX Runtime on the CPU splits a batch between its
    runs exactly as in one process)."""

    def __call__(self, row: dict) -> dict:
        self.check()
        payload = _payload(row)
        start = time.perf_counter()
        images = payload.pop("images")
        payload["translated"] = None if images is None else next(self.runner.infer_many([images]))["translated"]
        payload["infer_s"] = time.perf_counter() - start
        return _row(row["index"], payload)


def _write_batch(row: dict, job) -> dict:
    """Encode-and-write task: each unfinished sample of the batch written atomically by `translate._encode`."""
    from uda_trt.runtime.translate import DISK_FULL, _encode

    payload = _payload(row)
    good, translated, wanted = payload.pop("good"), payload.pop("translated"), set(payload.pop("writes"))
    writes = []
    for item, image in zip(good, [] if translated is None else translated, strict=True):
        if item.sample.key not in wanted:  # done before: inferred only to keep the batch as it was
            continue
        try:
            seconds, files = _encode(job, item, image)
        except (SampleError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                writes.append((item.sample, ("disk full", exc.errno, exc.filename)))
                break  # every later write would fail too
            writes.append((item.sample, ("failed", str(exc))))
        else:
            writes.append((item.sample, ("written", seconds, [(str(p), n, d) for p, n, d in files])))
    return _row(row["index"], {**payload, "writes": writes})


def batch_translate_on_ray(job, target: str) -> dict:
    """batch-translate on a Ray cluster (`--ray TARGET`); same outputs, manifest, journal and report, plus "ray"."""
    from uda_trt.runtime.jobs.interrupts import stop_on_signals
    from uda_trt.runtime.translate import batch_translate

    if job.fda_target is not None:
        raise UserError("--ray: runs --engine artifacts; FDA (--fda) runs in one process, without --ray")
    with ray_cluster(target) as cluster, stop_on_signals():  # after ray.init, which installs handlers of its own
        return batch_translate(job, RayTranslation(cluster))


# ---------------------------------------------------------------------------------------------- evaluate-seg


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
    """Decode task: images and ground truth of one planned batch, checked as `evaluate.score_engine` does."""
    from uda_trt.runtime.evaluate import _batches, _check_same_size, _Loaded
    from uda_trt.runtime.imageio import read_label, read_rgb

    batch, batch_size = _payload(row)
    notes, loaded = _Notes(), []
    for sample in batch:
        try:
            image, gt = read_rgb(sample.image, notes), read_label(sample.label)
            _check_same_size(sample.image, image, sample.label, gt)
            loaded.append(_Loaded(sample, image=image, gt=gt))
        except SampleError as exc:
            loaded.append(_Loaded(sample, error=exc))
    faults = [(str(item.error.path), item.error.problem) for item in loaded if item.error is not None]
    groups = list(_batches(loaded, batch_size, lambda item: None))  # sizes the headers hid split the batch
    return _row(row["index"], {"groups": groups, "faults": faults, "notes": notes.notes})


class _SegmenterActor(_RunnerActor):
    """Actor: each same-size group of a row through `infer_many`, its labels checked as score_engine checks them."""

    def __call__(self, row: dict) -> dict:
        self.check()
        payload = _payload(row)
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
        return _row(row["index"], {**payload, "labels": labels})


def _score_batch(row: dict, save_dir: Path | None, with_examples: set[int]) -> dict:
    """Scoring task: the row's confusion matrix (one per group, summed), predictions written when asked, and, for
    the first rows, the (image, prediction, truth) triples the overlays are drawn from."""
    from uda_trt.runtime.evaluate import PREDICTION_SUFFIX
    from uda_trt.runtime.imageio import write_label
    from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID, train_ids_to_label_ids
    from uda_trt.runtime.metrics import confusion_matrix

    payload = _payload(row)
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
    return _row(row["index"], {**payload, "matrix": matrix, "scored": scored, "examples": kept})


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
    absolute = [dataclasses.replace(s, image=_absolute(s.image), label=_absolute(s.label)) for s in samples]
    plan = segment_plan(absolute, batch_size)
    originals = {str(a.image): s.image for a, s in zip(absolute, samples, strict=True)}
    originals |= {str(a.label): s.label for a, s in zip(absolute, samples, strict=True)}
    starts = np.cumsum([0] + [len(batch) for batch in plan[:-1]])
    # overlays show the first scored images: the first rows send theirs back (twice the rows' worth, for faults)
    with_examples = {index for index, start in enumerate(starts) if start < 2 * OVERLAY_ROWS}
    dataset = (
        ray.data.from_items(_rows([(batch, batch_size) for batch in plan]), override_num_blocks=max(1, len(plan)))
        .map(_load_batch)
        .map(
            _SegmenterActor,
            fn_constructor_kwargs={"artifact": artifact.absolute(), "backend": resolved, "batch_size": batch_size},
            compute=ray.data.ActorPoolStrategy(size=actors),
            **resources,
        )
        .map(_score_batch, fn_kwargs={"save_dir": _absolute(save_dir), "with_examples": with_examples})
    )
    outcome, log_once, results = EvalOutcome(), LogOnce(), {}
    with Progress(len(samples), "segmenting") as bar:
        try:
            for row in dataset.iter_rows():
                result = _payload(row)
                results[row["index"]] = result
                if result["matrix"] is not None:
                    outcome.cm.add(result.pop("matrix"))
                outcome.scored += result["scored"]
                for key, message in result["notes"]:
                    log_once(key, message)
                bar.update(result["scored"] + len(result["faults"]))
        except ray.exceptions.RayError as exc:
            raise _remote_failure(exc, f"{artifact}: inference failed") from None
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
    from uda_trt.runtime.evaluate import _clean, _write

    output = Path(output)
    _clean(output)
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
    return _write(outcome, output, figures)
