"""Hostile inputs to batch-translate, generated here (no binary blobs in the repository).

Per-sample faults must be logged, skipped, listed in report.json and counted; conversions docs/contracts.md promises
(16-bit, 1/2/4 channels) must be made and logged; bad artifacts and sidecars must be one-line errors (exit 2).
Never a traceback, never a file written outside the output folder.
"""

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
from PIL import Image

from helpers import run_cli
from uda_trt.runtime.imageio import read_rgb
from uda_trt.runtime.sidecar import file_sha256

RNG = np.random.default_rng(5)


def png_declaring(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def encoded(array: np.ndarray, suffix: str = ".png") -> bytes:
    ok, data = cv2.imencode(suffix, array)
    assert ok
    return data.tobytes()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _as_jpeg_truncated(image: Path, label: Path) -> None:
    data = encoded(cv2.imread(str(image)), ".jpg")
    image.unlink()
    image.with_suffix(".jpg").write_bytes(data[: len(data) // 2])


def _pixels(image: Path) -> np.ndarray:
    return cv2.imread(str(image), cv2.IMREAD_UNCHANGED)


def _symlink_out(path: Path, outside: Path) -> None:
    target = outside / f"elsewhere_{path.name}"
    shutil.copy(path, target)
    path.unlink()
    path.symlink_to(target)


# case -> (damage(image, label, outside folder), "skip" or "translated", text expected in the log and reason)
SAMPLE_CASES = {
    "truncated_png": (lambda i, lb, o: _truncate(i), "skip", "not a readable image"),
    "truncated_jpeg": (lambda i, lb, o: _as_jpeg_truncated(i, lb), "skip", "not a readable image"),
    "zero_byte_image": (lambda i, lb, o: i.write_bytes(b""), "skip", "empty file"),
    "random_bytes_png": (lambda i, lb, o: i.write_bytes(RNG.bytes(3000)), "skip", "not a readable image"),
    "bomb_header_image": (lambda i, lb, o: i.write_bytes(png_declaring(40000, 40000)), "skip", "declares 40000x40000"),
    "huge_header_image": (lambda i, lb, o: i.write_bytes(png_declaring(2**31 - 1, 2**31 - 1)), "skip", "declares"),
    "large_header_image": (lambda i, lb, o: i.write_bytes(png_declaring(12000, 12000)), "skip", "declares 12000x12000"),
    "label_size_mismatch": (
        lambda i, lb, o: Image.open(lb).resize((20, 10), Image.NEAREST).save(lb),
        "skip",
        "label is 20x10",
    ),
    "bomb_header_label": (lambda i, lb, o: lb.write_bytes(png_declaring(40000, 40000)), "skip", "declares"),
    "zero_byte_label": (lambda i, lb, o: lb.write_bytes(b""), "skip", "labels/{name}.png: not a readable image"),
    "truncated_label": (lambda i, lb, o: _truncate(lb), "skip", "labels/{name}.png: not a readable image"),
    "label_pixels_cut": (lambda i, lb, o: lb.write_bytes(lb.read_bytes()[:-60]), "skip", "image file is truncated"),
    "image_symlink_outside": (lambda i, lb, o: _symlink_out(i, o), "skip", "outside the dataset"),
    "label_symlink_outside": (lambda i, lb, o: _symlink_out(lb, o), "skip", "outside the dataset"),
    "png_16bit": (
        lambda i, lb, o: i.write_bytes(encoded(_pixels(i).astype(np.uint16) * 257)),
        "translated",
        "16-bit image scaled",
    ),
    "gray_1_channel": (
        lambda i, lb, o: i.write_bytes(encoded(cv2.cvtColor(_pixels(i), cv2.COLOR_BGR2GRAY))),
        "translated",
        "grayscale image replicated",
    ),
    "gray_alpha_2_channels": (
        lambda i, lb, o: Image.open(i).convert("LA").save(i),
        "translated",
        "alpha channel dropped",
    ),
    "rgba_4_channels": (
        lambda i, lb, o: i.write_bytes(encoded(cv2.cvtColor(_pixels(i), cv2.COLOR_BGR2BGRA))),
        "translated",
        "alpha channel dropped",
    ),
}
NAMES = {case: f"{index + 1:05d}" for index, case in enumerate(SAMPLE_CASES)}


@pytest.fixture(scope="module")
def corpus_run(synthetic, shared_invert_translator, tmp_path_factory, untouched):
    """One batch-translate run over a GTA5 copy where sample k carries hostile case k (the rest are clean)."""
    base = tmp_path_factory.mktemp("hostile_translate")
    source, outside, out = base / "gta5", base / "outside", base / "out"
    shutil.copytree(synthetic / "gta5", source)
    outside.mkdir()
    for case, (damage, _, _) in SAMPLE_CASES.items():
        name = NAMES[case]
        damage(source / "images" / f"{name}.png", source / "labels" / f"{name}.png", outside)
    check = untouched(base, out)
    result = run_cli("batch-translate", "--engine", shared_invert_translator, "--input", source, "--output", out)
    check()
    return result, out, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_sample_fault_is_skipped_or_converted(corpus_run, case):
    result, out, report = corpus_run
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    _, expected, text = SAMPLE_CASES[case]
    name = NAMES[case]
    text = text.format(name=name)
    skipped = {Path(item["image"]).stem: item["reason"] for item in report["skipped"]}
    assert text in result.stderr, (text, result.stderr[-3000:])
    if expected == "skip":
        assert name in skipped and text in skipped[name], (skipped.get(name), text)
        assert not (out / "images" / f"{name}.png").exists() and not (out / "labels" / f"{name}.png").exists()
    else:
        assert name not in skipped
        undamaged = out / "images" / f"{len(NAMES) + 1:05d}.png"  # written at its input's size, as all are
        assert read_rgb(out / "images" / f"{name}.png").shape == read_rgb(undamaged).shape


def test_counts_in_the_report_match(corpus_run):
    _, out, report = corpus_run
    skips = sum(1 for _, expected, _ in SAMPLE_CASES.values() if expected == "skip")
    assert report["images_skipped"] == len(report["skipped"]) == skips
    assert report["images_translated"] == 120 - skips
    assert len(list((out / "images").iterdir())) == 120 - skips


def test_odd_names_in_a_folder_stay_inside_the_output(tmp_path, cli, shared_invert_translator, untouched):
    source, outside, out = tmp_path / "photos", tmp_path / "outside", tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    outside.mkdir()
    image = encoded(RNG.integers(0, 256, (16, 32, 3), dtype=np.uint8))
    odd = [b"caf\xe9-latin1.png", b"two\nlines.png", b"a..b.png", b"sub/x..png", b" lead space.png"]
    for name in odd:
        with open(os.fsencode(source) + b"/" + name, "wb") as handle:
            handle.write(image)
    (source / ".hidden.png").write_bytes(image)
    (outside / "secret.png").write_bytes(image)
    (source / "linked_dir").symlink_to(outside, target_is_directory=True)  # not followed by the reader
    (source / "sub" / "secret.png").symlink_to(outside / "secret.png")  # followed, but refused
    check = untouched(tmp_path, out)
    result = cli("batch-translate", "--engine", shared_invert_translator, "--input", source, "--output", out)
    check()
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] == len(odd) and report["images_skipped"] == 1
    assert "outside the dataset" in report["skipped"][0]["reason"]
    written = sorted(os.fsencode(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == sorted(odd)


def _edit_sidecar(artifact: Path, change) -> None:
    path = artifact.with_suffix(".json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _replace_artifact(artifact: Path, data: bytes, suffix: str = ".onnx") -> Path:
    """Put `data` where the artifact is (or beside it, with `suffix`) and make the sidecar vouch for it, so the
    bytes themselves are what the runner meets."""
    target = artifact.with_name(f"invert{suffix}")
    target.write_bytes(data)
    key = "engine" if suffix == ".engine" else "onnx"
    entry = {"file": target.name, "sha256": file_sha256(target)}
    _edit_sidecar(artifact, lambda d: d["artifacts"].update({key: entry}))
    return target


ARTIFACT_CASES = {
    "sidecar_wrong_type": (lambda a: _edit_sidecar(a, lambda d: d.update(size_divisor="4")), "size_divisor"),
    "sidecar_unknown_field": (lambda a: _edit_sidecar(a, lambda d: d.update(run_this="rm -rf /")), "run_this"),
    "sidecar_missing_field": (lambda a: _edit_sidecar(a, lambda d: d.pop("task")), "task"),
    "sidecar_wrong_sha256": (
        lambda a: _edit_sidecar(a, lambda d: d["artifacts"]["onnx"].update(sha256="0" * 64)),
        "sha256",
    ),
    "sidecar_not_json": (lambda a: a.with_suffix(".json").write_bytes(b'{"schema_version": 1, "ta'), "invert.json"),
    "sidecar_not_an_object": (lambda a: a.with_suffix(".json").write_text("[1, 2]"), "invert.json"),
    "sidecar_missing": (lambda a: a.with_suffix(".json").unlink(), "invert.json"),
    "onnx_truncated": (lambda a: _replace_artifact(a, a.read_bytes()[:100]), "invert.onnx"),
    "onnx_random_bytes": (lambda a: _replace_artifact(a, RNG.bytes(4096)), "invert.onnx"),
    "onnx_zero_bytes": (lambda a: _replace_artifact(a, b""), "invert.onnx"),
    # refused for its sidecar entry or its bytes, depending on what this machine's TensorRT support checks first
    "engine_random_bytes": (lambda a: _replace_artifact(a, RNG.bytes(4096), ".engine"), "invert."),
}


@pytest.mark.parametrize("case", list(ARTIFACT_CASES))
def test_bad_artifact_is_a_one_line_error(case, tmp_path, cli, user_error, invert_translator, synthetic, untouched):
    damage, names = ARTIFACT_CASES[case]
    damage(invert_translator)
    artifact = invert_translator.with_suffix(".engine") if case.startswith("engine") else invert_translator
    out = tmp_path / "out"
    check = untouched(tmp_path, out)
    result = cli("batch-translate", "--engine", artifact, "--input", synthetic / "gta5", "--output", out)
    check()
    user_error(result, names=names)
    assert not out.exists() or not any(out.rglob("*.png"))
