"""Fault injection for training: SIGKILL train-cyclegan, train-segmenter and run-uda at seeded random points, check
what a reader sees, rerun the same command, and compare with an uninterrupted run.

Kill points. The trainers are killed when their train.log shows a seeded random iteration (5 points, ascending, in
the first two thirds of the run); state is saved every 3 iterations (and, for the segmenter, at every held-out
score), so most kills lose iterations that the rerun redoes from the last save. run-uda is killed at 5 seeded
stage milestones (files that appear when a stage starts or finishes), one in each part of the study: data,
CycleGAN training, translator export and translation, the first segmenter, the later segmenters and evaluation.
The whole process group is killed, as a scheduler or the OOM killer would end a job and its workers.

After every kill, nothing a reader picks up is partial: every visible .pt/.pth loads with torch.load(weights_only=
True), every .onnx parses, every PNG decodes, every JSON parses. The final rerun must match the uninterrupted run:
each reference run is made in the folder the killed runs then use, and moved aside, so the paths recorded in configs
and states are the same and files compare byte for byte: CycleGAN networks (latest, numbered) and both training
states; segmenter best.pt and last.pt. The segmenter's training state and history.json record wall-clock seconds,
so they are compared without those fields (tensors exactly); run-uda's report metric for metric, timings aside.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent
SEED = 20261124
KILLED = -signal.SIGKILL


# --- helpers -------------------------------------------------------------------------------------------------------


def run_until(argv: list, trigger: Callable[[], bool], log: Path, timeout: float = 300) -> int:
    """Start `argv` in its own process group; SIGKILL the group the moment `trigger()` is true. Returns the exit
    status (-9 when killed)."""
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            [str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if trigger():
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        return process.wait(timeout=timeout)


def run(argv: list) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600)


def kill_points(low: int, high: int, count: int, seed: int) -> list[int]:
    """`count` distinct seeded values in [low, high], ascending: each kill leaves work for the next run."""
    rng = np.random.default_rng(seed)
    return sorted(int(n) for n in rng.choice(np.arange(low, high + 1), size=count, replace=False))


class LogProgress:
    """The highest iteration a train.log shows since this object was made (earlier runs' lines are ignored)."""

    def __init__(self, log: Path, pattern: str) -> None:
        self.log, self.pattern = log, re.compile(pattern.encode(), re.MULTILINE)
        self.offset = log.stat().st_size if log.exists() else 0

    def __call__(self) -> int:
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self.offset)
                text = handle.read()
        except FileNotFoundError:
            return 0
        return max((int(m) for m in self.pattern.findall(text)), default=0)


def visible(root: Path) -> list[Path]:
    """Files a reader would pick up: no hidden file or folder on the way."""
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


def assert_readable(root: Path, nothing_partial) -> None:
    """Every visible checkpoint loads with weights_only=True, ONNX parses, PNG decodes, JSON parses."""
    import onnx
    import torch

    nothing_partial(root)
    for path in visible(root):
        if path.suffix in (".pt", ".pth"):
            torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".onnx":
            onnx.load(path)


def kill_and_rerun(argv: list, out: Path, triggers: list, log: Path, nothing_partial) -> None:
    """Kill `argv` at each trigger (name, trigger factory), checking `out` after each; then finish it."""
    for name, make_trigger in triggers:
        status = run_until(argv, make_trigger(), log)
        assert status == KILLED, (name, status, log.read_text()[-3000:])
        if out.exists():
            assert_readable(out, nothing_partial)
    final = run(argv)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))


def pth_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".pt", ".pth")}


def copy_files(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    return folder


# --- train-cyclegan ------------------------------------------------------------------------------------------------

CYCLEGAN_ITERATIONS = 15


@pytest.fixture(scope="module")
def cyclegan_domains(synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """Image folders: 6 source images, 4 target images (batch 2: 3 batches per epoch, 5 epochs in a run)."""
    root = tmp_path_factory.mktemp("domains")
    a = copy_files(sorted((synthetic / "gta5" / "images").glob("*.png"))[:6], root / "a")
    b = copy_files(sorted((synthetic / "cityscapes" / "leftImg8bit" / "val").rglob("*.png"))[:4], root / "b")
    return a, b


def cyclegan_argv(domains: tuple[Path, Path], out: Path) -> list:
    return [
        BIN / "train-cyclegan", "--source", domains[0], "--target", domains[1], "--output", out,
        "--ngf", 4, "--n-blocks", 1, "--ndf", 4, "--load-width", 64, "--crop-size", "32x32", "--batch-size", 2,
        "--iterations", CYCLEGAN_ITERATIONS, "--decay-iterations", 6, "--save-every", 3, "--sample-every", 4,
        "--log-every", 1, "--num-workers", 0, "--threads", 1, "--device", "cpu", "--seed", 3,
    ]  # fmt: skip


@pytest.mark.slow
def test_train_cyclegan_killed_at_seeded_iterations_resumes_byte_identical(cyclegan_domains, tmp_path, nothing_partial):
    out = tmp_path / "run"
    argv = cyclegan_argv(cyclegan_domains, out)
    reference = run(argv)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = pth_bytes(out)
    out.rename(tmp_path / "reference")
    assert {"latest_net_G_A.pth", "15_net_G_A.pth", "latest_train_state.pt", "previous_train_state.pt"} <= set(expected)

    log = tmp_path / "stderr.log"
    points = kill_points(1, 2 * CYCLEGAN_ITERATIONS // 3, 5, SEED)
    triggers = [
        (f"iteration {n}", lambda n=n: lambda p=LogProgress(out / "train.log", r"^iter (\d+) "): p() >= n)
        for n in points
    ]
    triggers[0:0] = [("startup", lambda: lambda: (out / "config.json").exists())]
    kill_and_rerun([*argv, "--resume"], out, triggers, log, nothing_partial)
    assert pth_bytes(out) == expected  # every network file and both training states, byte for byte

    # A damaged latest state: one warning line naming both files, the previous state is used, same bytes at the end
    latest = out / "latest_train_state.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    done = run([*argv, "--resume"])
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and str(latest) in warnings[0] and "previous_train_state.pt" in warnings[0], warnings
    assert pth_bytes(out) == expected  # resumed at 12 (the previous save), redid 13..15

    # Both damaged: one line, exit 2; without --resume a folder holding a run is refused, naming --resume
    for name in ("latest_train_state.pt", "previous_train_state.pt"):
        (out / name).write_bytes(b"not a checkpoint")
    for args, names in (([*argv, "--resume"], "previous_train_state.pt"), (argv, "--resume")):
        refused = run(args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        errors = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and names in errors[0], refused.stderr


# --- train-segmenter -----------------------------------------------------------------------------------------------

SEGMENTER_ITERATIONS = 12
TIMINGS = ("seconds", "train_seconds", "validation_seconds", "train_images_per_second")  # wall clock


@pytest.fixture(scope="module")
def small_gta5(synthetic, tmp_path_factory) -> Path:
    """8 GTA5-layout pairs: 6 train (3 batches of 2 per epoch), 2 held out."""
    root = tmp_path_factory.mktemp("small") / "gta5"
    for kind in ("images", "labels"):
        copy_files(sorted((synthetic / "gta5" / kind).glob("*.png"))[:8], root / kind)
    return root


def segmenter_argv(data: Path, out: Path) -> list:
    return [
        BIN / "train-segmenter", "--data", data, "--output", out, "--scale", 0.5, "--crop-size", "32x24",
        "--batch-size", 2, "--iterations", SEGMENTER_ITERATIONS, "--optimizer", "adamw", "--lr", 1e-3,
        "--val-fraction", 0.25, "--val-every", 4, "--save-every", 3, "--precise-bn-batches", 2, "--log-every", 1,
        "--num-workers", 0, "--device", "cpu", "--seed", 2,
    ]  # fmt: skip


def state_without_timings(path: Path) -> dict:
    import torch

    state = torch.load(path, weights_only=True)
    state["progress"] = {k: v for k, v in state["progress"].items() if k not in TIMINGS}
    state["history"] = history_without_timings(state["history"])
    return state


def history_without_timings(history: dict) -> dict:
    history = {k: v for k, v in history.items() if k not in TIMINGS}
    history["validations"] = [{k: v for k, v in e.items() if k not in TIMINGS} for e in history["validations"]]
    return history


def assert_same_state(a: dict, b: dict, where: str = "state") -> None:
    """Nested equality with tensors compared exactly (dtype, shape, values); a failure names the key path."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (where, list(a), list(b))
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), (where, a, b)  # NaN equals NaN here


@pytest.mark.slow
def test_train_segmenter_killed_at_seeded_iterations_resumes_byte_identical(
    small_gta5, tmp_path, nothing_partial, cli, user_error
):
    out = tmp_path / "run"
    argv = segmenter_argv(small_gta5, out)
    reference = run(argv)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = {name: (out / name).read_bytes() for name in ("best.pt", "last.pt")}
    expected_state = state_without_timings(out / "latest_train_state.pt")
    expected_history = history_without_timings(json.loads((out / "history.json").read_text()))
    out.rename(tmp_path / "reference")

    log = tmp_path / "stderr.log"
    points = kill_points(1, 2 * SEGMENTER_ITERATIONS // 3, 5, SEED + 1)
    triggers = [
        (f"iteration {n}", lambda n=n: lambda p=LogProgress(out / "train.log", r"iteration (\d+):"): p() >= n)
        for n in points
    ]
    kill_and_rerun([*argv, "--resume"], out, triggers, log, nothing_partial)
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name
    assert_same_state(state_without_timings(out / "latest_train_state.pt"), expected_state)
    assert history_without_timings(json.loads((out / "history.json").read_text())) == expected_history

    # A training state is not a model: export-trt refuses it in one line
    user_error(cli("export-trt", out / "latest_train_state.pt"), names="is a training state")


# --- run-uda -------------------------------------------------------------------------------------------------------

# Files that appear as run-uda's stages start or finish (smoke preset, synthetic data), in the order they appear,
# in five consecutive groups; one kill point is drawn from each, so every part of the study is interrupted.
RUN_UDA_MILESTONES = [
    ["data/synthetic.json", "data/gta5/images/00004.png"],
    ["cyclegan/config.json", "cyclegan/latest_train_state.pt"],
    ["artifacts/latest_net_G_A.onnx", "translated/manifest.json", "translated/images/00004.png"],
    ["segmenter_source_only/config.json", "segmenter_source_only/best.pt", "artifacts/source_only/best.json"],
    ["eval/source_only", "segmenter_adapted/config.json", "artifacts/adapted/best.onnx", "eval/oracle"],
]
REPORT_TIMINGS = ("elapsed_s", "images_per_s", "seconds")


def report_values(out: Path) -> dict:
    """What run-uda's report says, without timings and without what describes the machine or its progress."""
    report = json.loads((out / "report.json").read_text())
    for arm in report["arms"].values():
        arm["metrics"] = {k: v for k, v in arm["metrics"].items() if k not in REPORT_TIMINGS}
    translate = report.pop("batch_translate")
    report["translated"] = translate["images_translated"] + translate.get("images_already_done", 0)
    for key in ("stage_seconds", "machine"):
        report.pop(key)
    return report


@pytest.mark.slow
def test_run_uda_killed_at_seeded_stages_resumes_to_the_same_report(tmp_path, nothing_partial):
    out = tmp_path / "study"
    argv = [BIN / "run-uda", "--preset", "smoke", "--output", out]
    reference = run(argv)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = report_values(out)
    expected_translated = {p.relative_to(out): p.read_bytes() for p in visible(out / "translated" / "images")}
    out.rename(tmp_path / "reference")

    rng = np.random.default_rng(SEED + 2)
    chosen = [str(rng.choice(group)) for group in RUN_UDA_MILESTONES]
    triggers = [(milestone, lambda m=milestone: (out / m).exists) for milestone in chosen]
    log = tmp_path / "stderr.log"
    kill_and_rerun(argv, out, triggers, log, nothing_partial)
    assert report_values(out) == expected  # metrics, summary, configs, artifact hashes
    assert {p.relative_to(out): p.read_bytes() for p in visible(out / "translated" / "images")} == expected_translated

    # Another seed into the same folder is refused in one line, and nothing is touched
    before = {p: p.stat().st_mtime_ns for p in visible(out)}
    refused = run([*argv, "--seed", 1])
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--seed 0, not 1" in errors[0], refused.stderr
    assert {p: p.stat().st_mtime_ns for p in visible(out)} == before
