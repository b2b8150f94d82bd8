"""The README's "Real data, command by command" section, run as written on tiny data.

The commands are read from README.md itself, so the two cannot drift apart: the dataset paths point at tiny
datasets in the real layouts, and only budgets (sizes, iteration counts, model widths, the run-uda preset) are
swapped for tiny ones, by the tables below. A command added to the README is run here without a change.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli, write_cityscapes, write_gta5
from uda_trt.benchmarks.presets import PRESETS
from uda_trt.runtime.jobs.cli import SIZE

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Real data, command by command"
# the README's value -> a tiny one, per option (a budget, a size or the model's size; never a path): the smallest of
# the three segmenter architectures, as deeplabv3_resnet50's two trainings and exports alone take minutes on 2 cores
TINY_VALUES = {
    "--arch": "lraspp_mobilenet_v3_large",
    "--iterations": "2",
    "--decay-iterations": "1",
    "--load-width": "64",
    "--crop-size": "32x32",
    "--size": "64x36",
    "--preset": "smoke",
}
# options added to each command: tiny models and budgets where the README relies on the defaults
TINY_EXTRAS = {
    "train-cyclegan": ["--ngf", "4", "--ndf", "8", "--n-blocks", "1", "--sample-every", "1", "--workers", "0"],
    "train-segmenter": ["--iterations", "2", "--crop-size", "32x16", "--batch-size", "2", "--workers", "0"],
    "export-trt": ["--parity-images", "{root}/parity", "--no-fp16"],  # the FP16 path has its own tests
}


def readme_commands() -> list[list[str]]:
    """The commands of the README section, continuation lines joined, comments dropped, split as a shell would."""
    text = README.read_text()
    section = text[text.index(SECTION) + len(SECTION) :]
    section = section[: section.index("\n## ")]
    block = "\n".join(line[4:] for line in section.splitlines() if line.startswith("    "))
    block = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def tiny(argv: list[str], root: Path) -> list[str]:
    """`argv` with data paths under `root` and tiny budgets (TINY_VALUES, TINY_EXTRAS)."""
    out = []
    for previous, word in zip([None, *argv], argv, strict=False):
        if previous in TINY_VALUES:
            word = TINY_VALUES[previous]
        out.append(word.replace("/data/", f"{root}/data/"))
    return out + [extra.format(root=root) for extra in TINY_EXTRAS.get(argv[0], [])]


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """ROOT/data/gta5 (GTA5 layout, about GTA5's aspect), ROOT/data/cityscapes (train and val), ROOT/parity."""
    write_gta5(tmp_path / "data" / "gta5", count=6, size=(64, 36))
    write_cityscapes(tmp_path / "data" / "cityscapes", cities={"aachen": 3}, split="train", seed=1)
    write_cityscapes(tmp_path / "data" / "cityscapes", cities={"bremen": 2}, split="val", seed=2)
    (tmp_path / "parity").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)).save(tmp_path / "parity" / "0.png")
    return tmp_path


def test_the_section_holds_the_whole_study():
    names = [argv[0] for argv in readme_commands()]
    assert names[:3] == ["train-cyclegan", "export-trt", "batch-translate"]
    assert names.count("train-segmenter") == 2 and names.count("evaluate-seg") >= 2 and names[-1] == "run-uda"


def test_the_section_and_run_uda_translate_at_one_size():
    """The translator size the README exports at is the one run-uda's full preset uses (one number per fact)."""
    export = next(argv for argv in readme_commands() if argv[0] == "export-trt" and "--size" in argv)
    assert SIZE.convert(export[export.index("--size") + 1], None, None) == PRESETS["full"].translate_size


@pytest.mark.slow
def test_readme_commands_run_as_written(tiny_data: Path):
    commands = [argv for argv in readme_commands() if argv[0] != "run-uda"]
    for argv in commands:
        result = run_cli(*tiny(argv, tiny_data), cwd=tiny_data, timeout=900)
        assert result.returncode == 0, (shlex.join(argv), result.stderr[-3000:])
        assert "Traceback" not in result.stderr
    translated = tiny_data / "data" / "gta5-as-cs"
    assert Image.open(translated / "images" / "00001.png").size == (64, 36)  # the source's geometry
    for arm in ("source", "adapted", "adapted-files"):
        assert json.loads((tiny_data / "eval" / arm / "metrics.json").read_text())["images_scored"] == 2
    saved = json.loads((tiny_data / "eval" / "adapted" / "metrics.json").read_text())
    from_files = json.loads((tiny_data / "eval" / "adapted-files" / "metrics.json").read_text())
    assert from_files["confusion_matrix"] == saved["confusion_matrix"]


@pytest.mark.slow
def test_readme_run_uda_runs_as_written(tiny_data: Path):
    (argv,) = [argv for argv in readme_commands() if argv[0] == "run-uda"]
    result = run_cli(*tiny(argv, tiny_data), cwd=tiny_data, timeout=900)
    assert result.returncode == 0, (shlex.join(argv), result.stderr[-3000:])
    # on the user's datasets: no oracle arm, and the report says why there is no gap closed
    report = json.loads((tiny_data / "runs" / "uda" / "report.json").read_text())
    assert set(report["arms"]) == {"source_only", "adapted"} and report["summary"]["gap_closed"] is None
    assert report["images"]["target_val"]["count"] == 2 and report["images"]["target_train"]["sizes"] == {"64x32": 3}
    assert "gap closed: n/a.\n\nn/a: there is no oracle arm" in (tiny_data / "runs" / "uda" / "report.md").read_text()
