"""make-synthetic: deterministic procedural scenes in the GTA5 and Cityscapes layouts, two styles, one geometry."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.synthetic import (
    LABEL_ID_COLOURS,
    SOURCE_STYLE,
    TARGET_STYLE,
    apply_style,
    draw_scene,
    generate,
    image_seeds,
    plan,
    render_scene,
)

MAKE_SYNTHETIC = Path(sys.executable).parent / "make-synthetic"
GTA5_SIZE, CS_SIZE = (64, 36), (64, 32)
REQUIRED = {7, 8, 11, 17, 19, 20, 21, 22, 23, 24, 26}  # road ... car: the classes the issue asks for
INSTANCE_CLASSES = {24, 25, 26, 27, 28, 31, 32, 33}


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every dataset file under root (the manifest holds timings, so it is left out)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_scene_is_deterministic_and_seed_dependent():
    labels, instances = render_scene(7, (96, 48))
    assert labels.shape == instances.shape == (48, 96)
    assert labels.dtype == np.uint8 and instances.dtype == np.int32
    again = render_scene(7, (96, 48))
    assert np.array_equal(labels, again[0]) and np.array_equal(instances, again[1])
    assert not np.array_equal(labels, render_scene(8, (96, 48))[0])


def test_instance_ids_follow_the_cityscapes_convention():
    from cityscapesscripts.helpers.labels import id2label

    for seed in range(6):
        labels, instances = render_scene(seed, (128, 64))
        for label_id in np.unique(labels):
            assert int(label_id) in id2label, label_id
            inst = instances[labels == label_id]
            if id2label[int(label_id)].hasInstances:
                assert label_id in INSTANCE_CLASSES
                assert np.all(inst // 1000 == label_id) and np.all(inst >= 1000)
            else:
                assert np.all(inst == label_id)


def test_required_classes_appear_across_a_few_scenes():
    seen: set[int] = set()
    for seed in range(12):
        seen |= set(np.unique(render_scene(seed, (128, 64))[0]).tolist())
    assert seen >= REQUIRED, REQUIRED - seen
    assert len(seen) >= 15  # walls, fences, trucks, buses, riders, bicycles show up too


def test_styles_share_labels_but_not_colours():
    scene = draw_scene(3, (128, 64))
    before = scene.label_ids.copy()
    source = apply_style(scene.label_ids, SOURCE_STYLE, np.random.default_rng(0), scene.material, scene.tone)
    target = apply_style(scene.label_ids, TARGET_STYLE, np.random.default_rng(0), scene.material, scene.tone)
    assert np.array_equal(scene.label_ids, before)  # styling never touches labels
    assert source.shape == target.shape == (64, 128, 3) and source.dtype == np.uint8
    shifted = []
    for label_id in np.unique(scene.label_ids):
        mask = scene.label_ids == label_id
        if mask.sum() >= 20:
            shifted.append(np.linalg.norm(source[mask].mean(0) - target[mask].mean(0)) > 25)
    assert np.mean(shifted) > 0.8  # per-class colours differ between domains
    # source is saturated and clean, target desaturated and noisy
    assert _saturation(source) > 1.5 * _saturation(target)
    assert _high_freq(target[scene.label_ids == 23]) > _high_freq(source[scene.label_ids == 23])


def _saturation(rgb: np.ndarray) -> float:
    return float((rgb.max(-1).astype(float) - rgb.min(-1)).mean())


def _high_freq(pixels: np.ndarray) -> float:
    return float(np.abs(np.diff(pixels.astype(float), axis=0)).mean())


def test_domains_have_the_same_layout_statistics():
    """The GTA5 and Cityscapes streams draw different scenes from one generator: class frequencies match."""

    def frequencies(layout: str, size: tuple[int, int]) -> np.ndarray:
        counts = np.zeros(256)
        for index in range(40):
            labels, _ = render_scene(image_seeds(0, layout, "train", index)[0], size)
            counts += np.bincount(labels.ravel(), minlength=256)
        return counts / counts.sum()

    source, target = frequencies("gta5", GTA5_SIZE), frequencies("cityscapes", CS_SIZE)
    assert np.abs(source - target).sum() < 0.3
    assert set(np.flatnonzero(source)) == set(np.flatnonzero(target))


def test_gta5_layout(tmp_path: Path):
    images = generate(tmp_path, "gta5", 3, GTA5_SIZE, seed=1)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == [f"images/0000{i}.png" for i in (1, 2, 3)]
    items = plan(tmp_path, "gta5", 3, GTA5_SIZE, seed=1)
    for item in items:
        image = Image.open(tmp_path / "images" / f"{item.relative}.png")
        assert image.mode == "RGB" and image.size == GTA5_SIZE
        label = Image.open(tmp_path / "labels" / f"{item.relative}.png")
        assert label.mode == "P" and label.size == GTA5_SIZE
        expected, _ = render_scene(item.scene_seed, GTA5_SIZE)
        assert np.array_equal(np.asarray(label), expected)  # palette indices are the label IDs
        palette = np.array(label.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
        assert np.array_equal(palette[7], [128, 64, 128]) and np.array_equal(palette[26], [0, 0, 142])


def test_cityscapes_layout_is_read_by_the_official_tools(tmp_path: Path):
    from cityscapesscripts.helpers.labels import id2label

    generate(tmp_path, "cityscapes", 4, CS_SIZE, seed=1, split="val")
    left = sorted((tmp_path / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    assert len(left) == 4
    assert {p.parent.name for p in left} == {"frankfurt", "lindau", "munster"}
    for path in left:
        city = path.parent.name
        stem = path.name[: -len("_leftImg8bit.png")]
        assert stem.startswith(f"{city}_") and [len(part) for part in stem.split("_")[1:]] == [6, 6]
        assert Image.open(path).mode == "RGB" and Image.open(path).size == CS_SIZE
        gt = tmp_path / "gtFine" / "val" / city
        label_img = Image.open(gt / f"{stem}_gtFine_labelIds.png")
        assert label_img.mode == "L"
        labels = np.asarray(label_img)
        instances = np.asarray(Image.open(gt / f"{stem}_gtFine_instanceIds.png")).astype(np.int64)
        colour = np.asarray(Image.open(gt / f"{stem}_gtFine_color.png").convert("RGB"))
        assert instances.shape == labels.shape == (CS_SIZE[1], CS_SIZE[0])
        assert np.array_equal(np.where(instances >= 1000, instances // 1000, instances), labels)
        assert np.array_equal(colour, LABEL_ID_COLOURS[labels])
        for label_id in np.unique(labels):
            assert tuple(colour[labels == label_id][0]) == id2label[int(label_id)].color


def test_official_evaluator_scores_ground_truth_as_perfect(tmp_path: Path):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    generate(tmp_path, "cityscapes", 3, CS_SIZE, seed=2, split="val")
    gts = sorted(str(p) for p in tmp_path.rglob("*_gtFine_labelIds.png"))
    args = copy.deepcopy(official.args)  # the module-level default is shared with other tests
    args.quiet, args.JSONOutput = True, False
    args.evalInstLevelScore = False  # its instance-level path calls np.in1d, gone in NumPy 2.4
    args.exportFile = str(tmp_path / "result.json")
    result = official.evaluateImgLists(gts, gts, args)
    assert result["averageScoreClasses"] == pytest.approx(1.0)


def test_generation_is_byte_identical_per_seed(tmp_path: Path):
    generate(tmp_path / "a", "cityscapes", 3, CS_SIZE, seed=5)
    generate(tmp_path / "b", "cityscapes", 3, CS_SIZE, seed=5, workers=2)
    generate(tmp_path / "c", "cityscapes", 3, CS_SIZE, seed=6)
    a, b, c = (_digest(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 12
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if k.endswith("leftImg8bit.png"))


def test_streams_never_share_a_scene():
    seeds = {
        stream: {image_seeds(0, *stream, i)[0] for i in range(200)}
        for stream in (("gta5", "train"), ("cityscapes", "train"), ("cityscapes", "val"))
    }
    assert all(len(s) == 200 for s in seeds.values())
    streams = list(seeds.values())
    assert not (streams[0] & streams[1]) and not (streams[0] & streams[2]) and not (streams[1] & streams[2])


def test_train_and_val_images_are_disjoint(tmp_path: Path):
    generate(tmp_path, "cityscapes", 6, CS_SIZE, seed=0, split="train")
    generate(tmp_path, "cityscapes", 6, CS_SIZE, seed=0, split="val")
    digest = _digest(tmp_path)
    train = {h for k, h in digest.items() if k.startswith("leftImg8bit/train")}
    val = {h for k, h in digest.items() if k.startswith("leftImg8bit/val")}
    assert len(train) == len(val) == 6 and not train & val


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAKE_SYNTHETIC), *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_both_datasets_and_reruns_cheaply(tmp_path: Path):
    out = tmp_path / "synthetic"
    args = [
        "--out",
        str(out),
        "--gta5-count",
        "4",
        "--cityscapes-train",
        "3",
        "--cityscapes-val",
        "3",
        "--gta5-size",
        "64x36",
        "--cityscapes-size",
        "64x32",
        "--seed",
        "3",
        "--workers",
        "1",
    ]
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "gta5" / "images").iterdir()) == [f"0000{i}.png" for i in range(1, 5)]
    assert len(list((out / "gta5" / "labels").glob("*.png"))) == 4
    assert Image.open(out / "gta5" / "images" / "00001.png").size == (64, 36)
    for split in ("train", "val"):
        assert len(list((out / "cityscapes" / "leftImg8bit" / split).rglob("*_leftImg8bit.png"))) == 3
        assert len(list((out / "cityscapes" / "gtFine" / split).rglob("*_gtFine_instanceIds.png"))) == 3
    assert not list(out.rglob("*.partial"))
    before = _digest(out)
    again = _run(*args)
    assert again.returncode == 0 and "wrote 0 of 10" in again.stderr
    assert _digest(out) == before
    changed = _run(*args[:-4], "--seed", "4")  # another config replaces the datasets
    assert changed.returncode == 0 and "wrote 10 of 10" in changed.stderr


@pytest.mark.parametrize("make_bad", ["foreign_folder", "file"])
def test_cli_refuses_a_bad_out_in_one_line(tmp_path: Path, make_bad: str):
    out = tmp_path / "out"
    if make_bad == "foreign_folder":
        out.mkdir()
        (out / "holiday.jpg").write_bytes(b"not ours")
    else:
        out.write_text("a file")
    result = _run("--out", str(out), "--gta5-count", "1", "--cityscapes-train", "0", "--cityscapes-val", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "Traceback" not in result.stderr
    assert make_bad == "file" or sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_docs_state_the_style_parameters_in_use():
    """docs/synthetic-data.md documents the frozen styles: every value there is the value in the code."""
    from dataclasses import fields

    doc = (Path(__file__).parents[2] / "docs" / "synthetic-data.md").read_text()
    for field in fields(SOURCE_STYLE):
        if field.name in ("name", "class_colors"):
            continue
        row = f"| `{field.name}` | {getattr(SOURCE_STYLE, field.name)} | {getattr(TARGET_STYLE, field.name)} |"
        assert row in doc, row
    target = dict(TARGET_STYLE.class_colors)
    for label_id, colours in SOURCE_STYLE.class_colors:
        cells = [", ".join(str(tuple(c)) for c in cs) for cs in (colours, target[label_id])]
        assert f" | {cells[0]} | {cells[1]} |" in doc, label_id
