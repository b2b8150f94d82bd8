"""train-segmenter (train.segmenter) under fault injection: SIGKILL at seeded random iterations, check what a reader
sees, rerun the same command with --resume, and compare with an uninterrupted run.

The trainer is killed when its train.log shows a seeded random iteration (3 points, ascending, in the first two thirds
of the run); state is saved every 3 iterations and at every held-out score, so most kills lose iterations that the rerun
redoes from the last save. The whole process group is killed, as a scheduler or the OOM killer would end a job and its
workers. After every kill, nothing a reader picks up is partial: every visible .pt/.pth loads with
torch.load(weights_only=True), every .onnx parses, every PNG decodes, every JSON parses. The reference run is made in
the folder the killed runs then use, and moved aside, so the paths recorded in configs and states are the same and files
compare byte for byte. Compared: best.pt and last.pt byte for byte; the training state (kept with --keep-train-state)
and history.json record wall-clock seconds, so they are compared without those fields (tensors exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import LogProgress, copy_files, kill_and_rerun, kill_points, run_cli

SEED = 20261124

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
        "train-segmenter", "--data", data, "--output", out, "--scale", 0.5, "--crop-size", "32x24",
        "--batch-size", 2, "--iterations", SEGMENTER_ITERATIONS, "--optimizer", "adamw", "--lr", 1e-3,
        "--val-fraction", 0.25, "--val-every", 4, "--save-every", 3, "--precise-bn-batches", 2, "--log-every", 1,
        "--workers", 0, "--device", "cpu", "--seed", 2, "--keep-train-state",
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
def test_train_segmenter_killed_at_seeded_iterations_resumes_byte_identical(small_gta5, tmp_path, cli, user_error):
    out = tmp_path / "run"
    argv = segmenter_argv(small_gta5, out)
    reference = run_cli(*argv)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = {name: (out / name).read_bytes() for name in ("best.pt", "last.pt")}
    expected_state = state_without_timings(out / "latest_train_state.pt")
    expected_history = history_without_timings(json.loads((out / "history.json").read_text()))
    out.rename(tmp_path / "reference")

    log = tmp_path / "stderr.log"
    points = kill_points(1, 2 * SEGMENTER_ITERATIONS // 3, 3, SEED + 1)
    triggers = [
        (f"iteration {n}", lambda n=n: lambda p=LogProgress(out / "train.log", r"iteration (\d+):"): p() >= n)
        for n in points
    ]
    kill_and_rerun([*argv, "--resume"], out, triggers, log)
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name
    assert_same_state(state_without_timings(out / "latest_train_state.pt"), expected_state)
    assert history_without_timings(json.loads((out / "history.json").read_text())) == expected_history

    # A training state is not a model: export-trt refuses it in one line
    refused = cli("export-trt", out / "latest_train_state.pt")
    user_error(refused, names="is a training state (for train-segmenter --resume)")
