"""Hostile inputs to evaluate-seg, generated here: broken predictions, ground truth and images are skipped and
counted in metrics.json; broken artifacts are one-line errors (exit 2); never a traceback, never a file written
outside --output."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import run_cli
from uda_trt.runtime.sidecar import file_sha256

RNG = np.random.default_rng(7)
LABEL_SUFFIX = "_gtFine_labelIds.png"


def png_declaring(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def _gray(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


# case -> (damage(prediction, ground truth), text expected in the skip reason)
PREDICTION_CASES = {
    "prediction_truncated": (lambda p, g: p.write_bytes(p.read_bytes()[:70]), "not a readable label image"),
    "prediction_zero_bytes": (lambda p, g: p.write_bytes(b""), "empty file"),
    "prediction_random_bytes": (lambda p, g: p.write_bytes(RNG.bytes(2000)), "not a readable label image"),
    "prediction_rgb_as_label_ids": (
        lambda p, g: p.write_bytes(_png(cv2.cvtColor(_gray(p), cv2.COLOR_GRAY2BGR))),
        "single-channel",
    ),
    "prediction_16bit_over_255": (
        lambda p, g: p.write_bytes(_png(_gray(p).astype(np.uint16) * 300)),
        "outside 0..255",
    ),
    "prediction_bomb_header": (lambda p, g: p.write_bytes(png_declaring(30000, 30000)), "declares"),
    "prediction_wrong_size": (lambda p, g: p.write_bytes(_png(_gray(p)[:20, :30])), "differs from its ground truth"),
    "ground_truth_truncated": (lambda p, g: g.write_bytes(g.read_bytes()[:70]), "not a readable label image"),
    "ground_truth_zero_bytes": (lambda p, g: g.write_bytes(b""), "empty file"),
}


@pytest.fixture(scope="module")
def predictions_run(synthetic, tmp_path_factory, untouched):
    """Perfect predictions (copies of the ground truth) with hostile case k applied to the k-th stem."""
    base = tmp_path_factory.mktemp("hostile_evaluate")
    root, pred, out = base / "cityscapes", base / "pred", base / "out"
    shutil.copytree(synthetic / "cityscapes" / "gtFine", root / "gtFine")
    truths = sorted((root / "gtFine" / "val").glob(f"*/*{LABEL_SUFFIX}"))
    pred.mkdir()
    stems = {}
    for truth in truths:
        stem = truth.name[: -len(LABEL_SUFFIX)]
        shutil.copy(truth, pred / f"{stem}_pred.png")
    for (case, (damage, _)), truth in zip(PREDICTION_CASES.items(), truths, strict=False):
        stem = truth.name[: -len(LABEL_SUFFIX)]
        damage(pred / f"{stem}_pred.png", truth)
        stems[case] = (stem, truth, pred / f"{stem}_pred.png")
    with open(os.fsencode(pred) + b"/frankfurt_\xff\xfe_odd.png", "wb") as handle:  # matches no stem: ignored
        handle.write(b"not an image")
    check = untouched(base, out)
    result = run_cli("evaluate-seg", "--predictions", pred, "--cityscapes", root, "--output", out)
    check()
    return result, stems, json.loads((out / "metrics.json").read_text()), len(truths)


@pytest.mark.parametrize("case", list(PREDICTION_CASES))
def test_broken_prediction_or_ground_truth_is_skipped(predictions_run, case):
    result, stems, metrics, _ = predictions_run
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    stem, truth, prediction = stems[case]
    reasons = {Path(item["file"]).name: item["reason"] for item in metrics["skipped"]}
    culprit = truth.name if case.startswith("ground_truth") else prediction.name
    assert culprit in reasons and PREDICTION_CASES[case][1] in reasons[culprit], (culprit, reasons)


def test_prediction_counts_match(predictions_run):
    _, _, metrics, total = predictions_run
    assert metrics["images_skipped"] == len(metrics["skipped"]) == len(PREDICTION_CASES)
    assert metrics["images_scored"] == total - len(PREDICTION_CASES)
    assert metrics["pixel_accuracy"] == 1.0  # the untouched predictions are perfect


# case -> (damage(image, ground truth), text expected in the skip reason)
ENGINE_CASES = {
    "image_truncated": (lambda i, g: i.write_bytes(i.read_bytes()[:200]), "not a readable image"),
    "image_bomb_header": (lambda i, g: i.write_bytes(png_declaring(2**20, 2**20)), "declares"),
    "image_random_bytes_png": (lambda i, g: i.write_bytes(RNG.bytes(500)), "not a readable image"),
    "ground_truth_wrong_size": (lambda i, g: g.write_bytes(_png(_gray(g)[:10, :10])), "differs from its ground truth"),
}


def test_engine_mode_skips_broken_images_and_counts_them(synthetic, tmp_path, cli, shared_red_segmenter, untouched):
    root, out = tmp_path / "cityscapes", tmp_path / "out"
    shutil.copytree(synthetic / "cityscapes", root)
    images = sorted((root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    damaged = {}
    for (case, (damage, _)), image in zip(ENGINE_CASES.items(), images, strict=False):
        stem = image.name[: -len("_leftImg8bit.png")]
        truth = root / "gtFine" / "val" / image.parent.name / f"{stem}{LABEL_SUFFIX}"
        damage(image, truth)
        damaged[case] = image
    check = untouched(tmp_path, out)
    result = cli("evaluate-seg", "--engine", shared_red_segmenter, "--cityscapes", root, "--output", out)
    check()
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    reasons = {Path(item["file"]).name: item["reason"] for item in metrics["skipped"]}
    for case, image in damaged.items():
        assert image.name in reasons and ENGINE_CASES[case][1] in reasons[image.name], (case, reasons)
    assert metrics["images_skipped"] == len(ENGINE_CASES)
    assert metrics["images_scored"] == len(images) - len(ENGINE_CASES)


def _vouch(artifact: Path, data: bytes) -> None:
    """Replace the artifact's bytes and make its sidecar vouch for them: the runner meets the bytes themselves."""
    artifact.write_bytes(data)
    sidecar = artifact.with_suffix(".json")
    fields = json.loads(sidecar.read_text())
    fields["artifacts"]["onnx"]["sha256"] = file_sha256(artifact)
    sidecar.write_text(json.dumps(fields))


def _drop_class_table(artifact: Path) -> None:
    sidecar = artifact.with_suffix(".json")
    fields = json.loads(sidecar.read_text())
    fields["class_names"] = "road, sidewalk"
    sidecar.write_text(json.dumps(fields))


ARTIFACT_CASES = {
    "segmenter_onnx_random_bytes": (lambda a: _vouch(a, RNG.bytes(5000)), "seg.onnx"),
    "segmenter_onnx_truncated": (lambda a: _vouch(a, a.read_bytes()[:150]), "seg.onnx"),
    "segmenter_sidecar_class_names_not_a_list": (_drop_class_table, "class_names"),
}


@pytest.mark.parametrize("case", list(ARTIFACT_CASES))
def test_bad_segmenter_artifact_is_a_one_line_error(
    case, synthetic, tmp_path, cli, user_error, red_segmenter, untouched
):
    damage, names = ARTIFACT_CASES[case]
    damage(red_segmenter)
    out = tmp_path / "out"
    check = untouched(tmp_path, out)
    result = cli("evaluate-seg", "--engine", red_segmenter, "--cityscapes", synthetic / "cityscapes", "--output", out)
    check()
    user_error(result, names=names)
    assert not (out / "metrics.json").exists()
