"""A runtime-only install (no extras, so no torch) runs batch-translate and evaluate-seg on tiny data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from helpers import EVAL_LABEL_IDS, run_once, write_cityscapes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory) -> Path:
    """A fresh venv holding REPO installed by pip with its base dependencies only, made once per session (every
    pytest-xdist worker shares it). Its bin/ folder.

    The venv has no pip of its own: this venv's pip installs into it (`pip --python`), from a wheel of REPO built
    beforehand, without byte-compiling what it installs (Python compiles the modules a run imports). What gets
    installed is what `pip install REPO` installs."""

    def make(root: Path) -> dict:
        venv.create(root / "venv", with_pip=False)
        # this venv's setuptools builds it when there is one (Python 3.12's venvs have none): no build venv to make
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        _pip("wheel", "--no-deps", *isolation, "--wheel-dir", root / "wheel", REPO)
        (wheel,) = (root / "wheel").glob("uda_trt-*.whl")
        _pip("--python", root / "venv" / "bin" / "python", "install", "--no-compile", wheel)
        return {}

    root, _ = run_once(tmp_path_factory, "base-venv", make)
    return root / "venv" / "bin"


def _pip(*args: object) -> None:
    """This venv's pip, quiet; its stderr is the failure message."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_base_install_has_no_torch(base_venv):
    code = "import importlib.util as u; print(u.find_spec('torch') is None and u.find_spec('onnx') is None)"
    result = subprocess.run([str(base_venv / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def _tiny_cityscapes(root: Path) -> Path:
    """Two val images' ground truth and matching label-ID predictions."""
    from PIL import Image

    truth = write_cityscapes(
        root / "cityscapes", cities={"frankfurt": 1, "lindau": 1}, size=(32, 16), label_ids=EVAL_LABEL_IDS
    )
    predictions = root / "predictions"
    predictions.mkdir()
    for stem, label_ids in truth.items():
        Image.fromarray(label_ids).save(predictions / f"{stem}_pred.png")
    return root


@pytest.mark.slow
def test_base_install_runs_batch_translate_and_evaluate_seg(base_venv, tmp_path, invert_translator):
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(np.full((16, 32, 3), 10, np.uint8)).save(images / "one.png")
    out = tmp_path / "translated"
    subprocess.run(
        [
            str(base_venv / "batch-translate"),
            "--engine",
            str(invert_translator),
            "--input",
            str(images),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "one.png").is_file() and (out / "report.json").is_file()

    data = _tiny_cityscapes(tmp_path / "eval")
    metrics_dir = tmp_path / "metrics"
    subprocess.run(
        [
            str(base_venv / "evaluate-seg"),
            "--predictions",
            str(data / "predictions"),
            "--id-type",
            "labelid",
            "--cityscapes",
            str(data / "cityscapes"),
            "--split",
            "val",
            "--output",
            str(metrics_dir),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert metrics["mean_iou"] == pytest.approx(1.0) and metrics["images_scored"] == 2


@pytest.mark.slow
def test_base_install_refuses_ray_in_one_line_naming_the_extra(base_venv, tmp_path, invert_translator):
    """Ray is an extra (runtime/ray_cluster.py): without it, `--ray` says what to install, exit 2, nothing written."""
    from helpers import write_gta5

    source, out = write_gta5(tmp_path / "gta5", count=1), tmp_path / "out"
    args = ["--engine", invert_translator, "--input", source, "--output", out, "--ray", "local"]
    result = subprocess.run([str(base_venv / "batch-translate"), *map(str, args)], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "pip install 'uda-trt[ray]'" in errors[0] and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_regular_install_puts_everything_under_one_namespace(base_venv, tmp_path):
    """Outside the repository, the installed code is uda_trt.*; no generic top-level package is installed."""
    code = (
        "import importlib.util as u, json, sysconfig\n"
        "import uda_trt.runtime, uda_trt.runtime.jobs, uda_trt.runtime.synthetic, uda_trt.runtime.commands\n"
        "names = ['uda_trt.train', 'uda_trt.export', 'uda_trt.benchmarks', 'uda_trt.benchmarks.throughput']\n"
        "bare = ['runtime', 'train', 'export', 'benchmarks']\n"
        "print(json.dumps({'namespaced': [u.find_spec(n) is not None for n in names],\n"
        "    'bare': [u.find_spec(n) is not None for n in bare], 'file': uda_trt.runtime.__file__,\n"
        "    'purelib': sysconfig.get_paths()['purelib']}))"
    )
    result = subprocess.run([str(base_venv / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["namespaced"] == [True] * 4 and found["bare"] == [False] * 4
    assert found["file"].startswith(found["purelib"])  # the installed copy, not the repository's
    top_level = {p.name for p in Path(found["purelib"]).iterdir()}
    assert "uda_trt" in top_level and not top_level & {"runtime", "train", "export", "benchmarks"}
