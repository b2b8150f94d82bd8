"""runtime.synthetic.writer: datasets on disk in the GTA5 and Cityscapes layouts, byte-identical per seed."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import png_digests
from uda_trt.runtime.synthetic.scene import render_scene
from uda_trt.runtime.synthetic.writer import LABEL_ID_COLOURS, generate, image_seeds, plan

GTA5_SIZE, CS_SIZE = (64, 36), (64, 32)


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
    a, b, c = (png_digests(tmp_path / name) for name in "abc")
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
    digest = png_digests(tmp_path)
    train = {h for k, h in digest.items() if k.startswith("leftImg8bit/train")}
    val = {h for k, h in digest.items() if k.startswith("leftImg8bit/val")}
    assert len(train) == len(val) == 6 and not train & val
