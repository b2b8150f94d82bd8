"""helpers.preloaded, which the other tests rely on: a console script run in a child of the preloaded server gives what
a fresh interpreter gives (exit status, stdout, stderr, working folder and environment applied), a timeout kills the
child, and the commands that must not or cannot run preloaded get a fresh interpreter."""

from __future__ import annotations

import os
import subprocess

import pytest
from PIL import Image

from helpers import BIN, run_cli, write_gta5
from helpers.preloaded import run_preloaded, runs_preloaded

pytestmark = pytest.mark.skipif(
    os.environ.get("UDA_TRT_TESTS_FRESH") == "1", reason="UDA_TRT_TESTS_FRESH=1: every command runs fresh"
)


def fresh(name: str, *args: object, cwd=None, env=None) -> subprocess.CompletedProcess:
    """`name` run in a fresh interpreter, as run_cli runs every command that is not preloaded."""
    environment = {**os.environ, **env} if env else None
    argv = [str(BIN / name), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=environment, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["train-segmenter", "--help"],  # click's help, exit 0, on stdout
        ["export-trt", "missing.pth"],  # a one-line refusal, exit 2, on stderr
        ["run-uda", "--preset", "smoke", "--output", "out", "--seed", "1", "--seeds", "0,1"],  # read in cwd
    ],
)
def test_a_preloaded_run_gives_what_a_fresh_interpreter_gives(argv, tmp_path) -> None:
    assert runs_preloaded(argv[0], None)
    preloaded = run_cli(*argv, cwd=tmp_path)
    expected = fresh(*argv, cwd=tmp_path)
    assert (preloaded.returncode, preloaded.stdout, preloaded.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
    assert expected.stdout or expected.stderr  # the comparison compared something
    assert sorted(os.listdir(tmp_path)) == []  # neither wrote anything


def test_the_environment_asked_for_reaches_the_command(tmp_path) -> None:
    """TORCH_HOME, read when the command looks for its weights, names the folder in evaluate-translation's refusal."""
    real, fake = tmp_path / "real", tmp_path / "fake"
    for folder in (real, fake):
        folder.mkdir()
        Image.new("RGB", (32, 24)).save(folder / "0.png")
    argv = ["--real", real, "--fake", fake, "--output", tmp_path / "out"]
    env = {"TORCH_HOME": str(tmp_path / "home")}
    preloaded = run_cli("evaluate-translation", *argv, env=env)
    expected = fresh("evaluate-translation", *argv, env=env)
    assert str(tmp_path / "home" / "hub" / "checkpoints") in preloaded.stderr
    assert preloaded.returncode == expected.returncode == 2 and preloaded.stderr == expected.stderr


def test_a_timeout_kills_the_child_and_raises_as_subprocess_does(tmp_path) -> None:
    """A long training run (no DataLoader workers, so the kill leaves no process behind) is killed after 1 s and
    reaped: the server replies only then, and serves the next command."""
    data = write_gta5(tmp_path / "gta5", count=2, size=(32, 16))
    argv = ["--data", str(data), "--output", str(tmp_path / "run"), "--iterations", "100000", "--workers", "0"]
    with pytest.raises(subprocess.TimeoutExpired):
        run_preloaded(BIN, "train-segmenter", argv, 1.0, None, None)
    assert run_cli("train-segmenter", "--help").returncode == 0


def test_commands_that_need_a_fresh_interpreter_get_one() -> None:
    assert not runs_preloaded("batch-translate", None)  # the runtime's commands never hold torch
    assert not runs_preloaded("export-trt", {"PYTHONPROFILEIMPORTTIME": "1"})  # acts at interpreter start
    assert not runs_preloaded("export-trt", {"OMP_NUM_THREADS": "7"})  # read when libgomp loads
    assert runs_preloaded("export-trt", {"TORCH_HOME": "/elsewhere"})  # read when used
