"""The Ray side shared by `batch-translate --ray` and `evaluate-seg --ray`: reaching a cluster, sizing the actor
pool, the rows that travel through Ray Data, the runner actor, and remote failures turned into one-line errors.

The jobs themselves are runtime.ray_translate and runtime.ray_evaluate. Every node must see the input, the output
folder and the artifact at the same paths (a shared file system) and run the same uda-trt install. Ray is an optional
extra, imported only by these modules and only when `--ray` is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.workers import available_cpus

# the line of a remote traceback that names the error raised: `uda_trt.runtime.errors.UserError: message`
_RAISED = re.compile(r"^(?P<type>(?!ray\.)[A-Za-z_][\w.]*(Error|Exception)): (?P<message>.+)$")

INSTALL = "pip install 'uda-trt[ray]'"
CPU_BACKENDS = ("onnxruntime-cpu", "fda")
CONNECT_TIMEOUT_S = 10


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


def import_ray():
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
    ray = import_ray()
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


def remote_failure(exc: BaseException, what: str) -> click.ClickException:
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


def to_rows(payloads: list) -> list[dict]:
    """Dataset rows: an index and a pickled payload (plain bytes travel through Ray Data in any version)."""
    return [to_row(index, payload) for index, payload in enumerate(payloads)]


def to_row(index: int, payload: object) -> dict:
    """One dataset row: the row's index (its place in the job's order) and its pickled payload."""
    return {"index": index, "payload": pickle.dumps(payload)}


def from_row(row: dict) -> object:
    """The payload of a row written by to_row."""
    return pickle.loads(row["payload"])


class Notes:
    """A LogOnce for worker processes: keeps (key, message) pairs so the driver logs them, once per job."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    def __call__(self, key: str, message: str) -> None:
        if all(key != seen for seen, _ in self.notes):
            self.notes.append((key, message))


def absolute(path: Path | None) -> Path | None:
    """Workers may start in another folder than the driver: paths they are given are absolute."""
    return None if path is None else Path(path).absolute()


class RunnerActor:
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
