"""`--shard I/N` (batch-translate, evaluate-seg) and `merge-metrics`: N shards together equal one run, exactly.

Real CLI runs (subprocess) on tiny GTA5- and Cityscapes-layout sets with the real tiny ONNX models; the shards of
batch-translate run at the same time into one folder, as a Slurm job array runs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import BIN, EVAL_LABEL_IDS, png_digests, write_cityscapes, write_gta5, write_red_over_14_segmenter
from uda_trt.runtime.jobs.shards import Shard, parse_shard

SCORES = ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou", "per_class", "confusion_matrix")
CITIES = {"aachen": 3, "bremen": 2, "cologne": 2}  # 7 images: shards of 3 hold 3, 2 and 2 (or units of 2: 3, 2, 2)


# ---------------------------------------------------------------------------------------------- the split itself


def test_shard_values_parse_and_bad_ones_say_why():
    assert parse_shard("0/4") == Shard(0, 4) and parse_shard(" 3/4 ") == Shard(3, 4) and parse_shard("0/1")
    for bad, why in [("4/4", "below N"), ("0/0", "at least 1"), ("1", "form I/N"), ("-1/4", "form I/N")]:
        with pytest.raises(ValueError, match=why):
            parse_shard(bad)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("unit", [1, 2, 4])
def test_shards_are_disjoint_complete_and_whole_units(count, unit):
    items = list(range(11))
    parts = [Shard(index, count).select(items, unit) for index in range(count)]
    assert sorted(sum(parts, [])) == items  # complete, and disjoint (no item twice)
    assert parts == [Shard(index, count).select(list(items), unit) for index in range(count)]  # a pure function
    for index, part in enumerate(parts):
        assert all((item // unit) % count == index for item in part)  # whole units, round robin


# ---------------------------------------------------------------------------------------------- batch-translate


def start(*args: object) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "batch-translate"), *map(str, args)], stderr=subprocess.PIPE, text=True)


def test_translate_shards_run_together_into_one_folder_and_equal_one_run(cli, user_error, invert_translator, tmp_path):
    source = write_gta5(tmp_path / "gta5", count=7, size=(40, 24))
    common = ("--engine", invert_translator, "--input", source, "--batch-size", 2, "--workers", 1)
    one, many = tmp_path / "one", tmp_path / "many"
    assert cli("batch-translate", *common, "--output", one).returncode == 0
    shards = [start(*common, "--output", many, "--shard", f"{index}/3") for index in range(3)]  # all at once
    for shard in shards:
        assert shard.wait(timeout=120) == 0, shard.stderr.read()

    assert png_digests(many) == png_digests(one) and len(png_digests(one)) == 14  # images and labels
    assert not (many / "manifest.json").exists() and not (many / "report.json").exists()
    for index, images in enumerate([3, 2, 2]):  # units of one batch (2 images): 0 and 3 | 1 | 2
        manifest = json.loads((many / f"manifest.shard-{index}-of-3.json").read_text())
        assert manifest["status"] == "complete" and manifest["total"] == images
        assert manifest["identity"]["shard_index"] == index and manifest["identity"]["shard_count"] == 3
        assert manifest["config"]["shard"] == {"index": index, "count": 3}
        report = json.loads((many / f"report.shard-{index}-of-3.json").read_text())
        assert report["images_translated"] == images
        assert report["shard"] == {"index": index, "count": 3, "images": images}
        assert (many / f"batch-translate.shard-{index}-of-3.log").is_file()

    # a shard rerun resumes like an unsharded job: nothing redone
    before = {path: path.stat().st_mtime_ns for path in (many / "images").iterdir()}
    result = cli("batch-translate", *common, "--output", many, "--shard", "1/3")
    assert result.returncode == 0, result.stderr
    report = json.loads((many / "report.shard-1-of-3.json").read_text())
    assert report["images_already_done"] == 2 and report["images_translated"] == 0
    assert {path: path.stat().st_mtime_ns for path in (many / "images").iterdir()} == before
    # and repairs like one: a lost output is redone, a killed run's temporary removed (no other run is writing)
    (many / "images" / "00005.png").unlink()  # position 4: unit 2, shard 2
    (many / "images" / ".00001.png.partial").write_bytes(b"\x89PNG half")
    assert cli("batch-translate", *common, "--output", many, "--shard", "2/3").returncode == 0
    report = json.loads((many / "report.shard-2-of-3.json").read_text())
    assert report["images_translated"] == 1 and report["images_already_done"] == 1
    assert not (many / "images" / ".00001.png.partial").exists() and png_digests(many) == png_digests(one)

    # one folder holds one job: another N, another option, or an unsharded run is refused naming the option
    user_error(cli("batch-translate", *common, "--output", many, "--shard", "0/2"), names="--shard")
    refused = cli("batch-translate", *common, "--output", many, "--shard", "0/3", "--png-compression", 6)
    user_error(refused, names="--png-compression")
    user_error(cli("batch-translate", *common, "--output", many), names="--shard")
    assert png_digests(many) == png_digests(one)


@pytest.mark.parametrize("value", ["3/3", "0/0", "two/3"])
def test_a_bad_shard_is_one_line_exit_2(cli, user_error, tmp_path, value):
    command = "batch-translate" if value != "two/3" else "evaluate-seg"
    user_error(cli(command, "--shard", value, "--output", tmp_path / "out"), names="--shard")


@pytest.mark.parametrize("command", ["batch-translate", "evaluate-seg"])
def test_shard_with_ray_is_one_line_exit_2(cli, user_error, tmp_path, command):
    """Ray shares a job between its workers by itself: a shard of it on Ray is refused before anything starts."""
    data = "--input" if command == "batch-translate" else "--cityscapes"
    mode = ("--engine", tmp_path / "model.onnx", data, tmp_path)
    refused = cli(command, *mode, "--shard", "0/2", "--ray", "local", "--output", tmp_path / "out")
    user_error(refused, names="--shard")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- evaluate-seg


def write_predictions(truth: dict[str, np.ndarray], folder: Path, skip: str) -> Path:
    """Label-ID predictions: the ground truth with ~40 % of pixels replaced; none for `skip` (a counted skip)."""
    rng = np.random.default_rng(7)
    for stem, gt in truth.items():
        if stem == skip:
            continue
        noise = rng.choice(np.array(EVAL_LABEL_IDS, dtype=np.uint8), size=gt.shape)
        path = folder / stem.split("_")[0] / f"{stem}_pred.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(rng.random(gt.shape) < 0.4, noise, gt).astype(np.uint8)).save(path)
    return folder


def evaluate(cli, out: Path, mode: tuple, *extra: object) -> dict:
    result = cli("evaluate-seg", *mode, "--output", out, "--no-figures", "--workers", 1, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module", params=["engine", "predictions"])
def evaluated(request, tmp_path_factory, cli) -> dict:
    """One unsharded evaluate-seg run and its 3 shards, in --engine or --predictions mode."""
    root = tmp_path_factory.mktemp(f"eval-{request.param}")
    truth = write_cityscapes(root / "cityscapes", CITIES, size=(48, 24))
    if request.param == "engine":
        mode = ("--engine", write_red_over_14_segmenter(root / "model"), "--batch-size", 2)
    else:
        mode = ("--predictions", write_predictions(truth, root / "pred", skip="bremen_000001_000020"))
    mode = (*mode, "--cityscapes", root / "cityscapes")
    one = evaluate(cli, root / "one", mode)
    shards = [root / f"shard-{index}" for index in range(3)]
    for index, folder in enumerate(shards):
        evaluate(cli, folder, mode, "--shard", f"{index}/3")
    return {"root": root, "mode": mode, "one": one, "shards": shards}


def test_evaluate_shards_carry_their_matrix_and_merge_to_one_run(cli, evaluated):
    parts = [json.loads((folder / "metrics.json").read_text()) for folder in evaluated["shards"]]
    assert [part["shard"] for part in parts] == [{"index": i, "count": 3, "images": n} for i, n in enumerate([3, 2, 2])]
    assert sum(np.asarray(part["confusion_matrix"]) for part in parts).tolist() == evaluated["one"]["confusion_matrix"]

    out = evaluated["root"] / "merged"
    result = cli("merge-metrics", *evaluated["shards"], "--output", out)
    assert result.returncode == 0, result.stderr
    merged, one = json.loads((out / "metrics.json").read_text()), evaluated["one"]
    for key in (*SCORES, "images_scored", "images_skipped", "num_classes", "class_names", "mode", "split"):
        assert merged[key] == one[key], key
    assert merged["merged"]["missing"] == [] and (out / "metrics.md").is_file() and (out / "confusion.png").is_file()
    if one["mode"] == "predictions":
        assert one["images_skipped"] == 1 and merged["skipped"] == one["skipped"]


def test_merge_metrics_refuses_shards_that_do_not_belong_together(cli, user_error, evaluated):
    root, shards, out = evaluated["root"], evaluated["shards"], evaluated["root"] / "refused"
    user_error(cli("merge-metrics", shards[0], shards[2], "--output", out), names="1/3")
    user_error(cli("merge-metrics", *shards, shards[1], "--output", out), names="both shard 1/3")
    user_error(cli("merge-metrics", *shards, root / "one", "--output", out), names="no shard")
    user_error(cli("merge-metrics", *shards, root, "--output", out), names="no metrics.json")
    user_error(cli("merge-metrics", *shards, "--output", shards[0]), names="--output")
    other_n = root / "of-two"
    evaluate(cli, other_n, evaluated["mode"], "--shard", "0/2")
    user_error(cli("merge-metrics", *shards, other_n, "--output", out), names="shard 0/2")
    # a shard of an evaluation with another label set (a foreign or edited file)
    foreign = root / "foreign"
    shutil.copytree(shards[1], foreign)
    metrics = json.loads((foreign / "metrics.json").read_text())
    metrics["class_names"] = metrics["class_names"][::-1]
    (foreign / "metrics.json").write_text(json.dumps(metrics))
    user_error(cli("merge-metrics", shards[0], foreign, shards[2], "--output", out), names="class_names")
    assert not out.exists()

    # --allow-missing merges what is there, and says what is missing
    result = cli("merge-metrics", shards[0], shards[2], "--output", out, "--allow-missing", "--no-figures")
    assert result.returncode == 0, result.stderr
    merged = json.loads((out / "metrics.json").read_text())
    parts = [json.loads((shards[i] / "metrics.json").read_text()) for i in (0, 2)]
    assert merged["merged"]["missing"] == [1] and "missing shards 1/3" in (out / "metrics.md").read_text()
    assert merged["images_scored"] == sum(part["images_scored"] for part in parts)
