"""runtime.imageio: the docs/contracts.md input conversions, channel order, per-sample faults, atomic writes."""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from uda_trt.runtime.errors import SampleError
from uda_trt.runtime.imageio import (
    LogOnce,
    _decode_png_fast,
    encode_label_image,
    read_label,
    read_rgb,
    resize_label,
    resize_rgb,
    write_image,
    write_label,
)
from uda_trt.runtime.jobs.files import atomic_write_bytes

RED = np.array([255, 0, 0], dtype=np.uint8)


def solid(rgb, size=(6, 4)) -> np.ndarray:
    width, height = size
    return np.tile(np.asarray(rgb, dtype=np.uint8), (height, width, 1))


def test_red_written_by_opencv_and_pillow_reads_back_red(tmp_path):
    cv2.imwrite(str(tmp_path / "cv.png"), solid([0, 0, 255]))  # OpenCV writes BGR
    Image.fromarray(solid(RED)).save(tmp_path / "pil.png")
    Image.fromarray(solid(RED)).save(tmp_path / "pil.jpg", quality=100)
    for name in ("cv.png", "pil.png"):
        assert (read_rgb(tmp_path / name) == RED).all(), name
    jpg = read_rgb(tmp_path / "pil.jpg").astype(int)
    assert np.abs(jpg - RED).max() <= 2


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_write_image_stores_rgb_as_real_colours(tmp_path, suffix):
    path = tmp_path / f"red{suffix}"
    write_image(path, solid(RED))
    back = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(back - RED).max() <= 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .partial left behind


def test_grayscale_is_replicated_and_logged_once(tmp_path, caplog):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(gray).save(tmp_path / "b.png")
    log_once = LogOnce()
    with caplog.at_level(logging.WARNING):
        a = read_rgb(tmp_path / "a.png", log_once)
        read_rgb(tmp_path / "b.png", log_once)
    assert a.shape == (4, 6, 3) and a.dtype == np.uint8
    assert (a == gray[:, :, None]).all()
    messages = [r.getMessage() for r in caplog.records if "grayscale" in r.getMessage()]
    assert len(messages) == 1 and "a.png" in messages[0]


def test_rgba_drops_alpha_keeping_colour(tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 2], rgba[..., 3] = 200, 10, 0  # fully transparent: colour must still come through
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = read_rgb(tmp_path / "rgba.png", LogOnce())
    assert out.shape == (4, 6, 3)
    assert (out == [200, 0, 10]).all()


def test_sixteen_bit_is_scaled_to_eight_bit(tmp_path):
    values = np.array([0, 257 * 200, 65535, 257 * 3 + 100], dtype=np.uint16)
    colour = np.stack([np.tile(values, (2, 1))] * 3, axis=-1)  # 2 x 4 x 3, same value in every channel
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), colour)
    assert cv2.imwrite(str(tmp_path / "gray16.png"), colour[..., 0])
    expected = np.array([0, 200, 255, 3], dtype=np.uint8)  # round(x / 257)
    for name in ("rgb16.png", "gray16.png"):
        out = read_rgb(tmp_path / name, LogOnce())
        assert out.dtype == np.uint8 and out.shape == (2, 4, 3)
        assert (out[0, :, 0] == expected).all(), name


def test_palette_png_decodes_to_colours_as_image_and_indices_as_label(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.fromarray(indices)
    img.putpalette([10, 20, 30, 255, 0, 0, 0, 255, 0])
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert (read_label(tmp_path / "p.png") == indices).all()
    rgb = read_rgb(tmp_path / "p.png")
    assert (rgb[0, 1] == [255, 0, 0]).all() and (rgb[0, 0] == [10, 20, 30]).all()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_fast_png_decoder_gives_opencvs_pixels(tmp_path, mode):
    """8-bit non-palette PNGs take imagecodecs; the pixels must be exactly what OpenCV decodes (BGR -> RGB)."""
    rng = np.random.default_rng(len(mode))
    channels = len(mode)
    array = rng.integers(0, 256, size=(37, 53, channels), dtype=np.uint8)
    path = tmp_path / f"{mode}.png"
    Image.fromarray(array[..., 0] if channels == 1 else array, mode).save(path)
    assert _decode_png_fast(path, path.read_bytes()) is not None  # the fast path really is taken
    opencv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    expected = {
        1: lambda: np.repeat(opencv[..., None], 3, axis=2),
        2: lambda: np.repeat(opencv[..., :1], 3, axis=2),
        3: lambda: cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB),
        4: lambda: cv2.cvtColor(opencv, cv2.COLOR_BGRA2RGB),
    }[channels]()
    decoded = read_rgb(path, LogOnce())
    assert decoded.flags["C_CONTIGUOUS"] and decoded.shape == (37, 53, 3)
    assert np.array_equal(decoded, expected)
    if mode == "L":
        assert np.array_equal(read_label(path), opencv)


def test_png_with_corrupt_pixel_data_is_a_sample_error(tmp_path):
    """Both decoders refuse a PNG whose compressed pixel data is garbled; the job gets one SampleError."""
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = bytearray(good.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = bytes(50)
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    assert _decode_png_fast(bad, bytes(data)) is None
    with pytest.raises(SampleError) as info:
        read_rgb(bad)
    assert info.value.path == bad


@pytest.mark.parametrize("reader", [read_rgb, read_label])
def test_broken_files_are_sample_errors(tmp_path, reader):
    good = tmp_path / "good.png"
    Image.fromarray(np.arange(64 * 32, dtype=np.uint32).reshape(32, 64).astype(np.uint8)).save(good)
    data = good.read_bytes()
    cases = {
        "empty.png": b"",
        "truncated.png": data[: len(data) // 2],
        "garbage.png": b"this is not an image at all",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SampleError) as info:
            reader(tmp_path / name)
        assert info.value.path == tmp_path / name
    with pytest.raises(SampleError, match="cannot read"):
        reader(tmp_path / "missing.png")


def test_read_label_modes(tmp_path):
    Image.fromarray(np.full((3, 5), 33, dtype=np.uint8)).save(tmp_path / "l.png")
    assert read_label(tmp_path / "l.png").dtype == np.uint8
    Image.fromarray(np.full((3, 5), 200, dtype=np.uint16)).save(tmp_path / "small16.png")
    out = read_label(tmp_path / "small16.png")
    assert out.dtype == np.uint8 and (out == 200).all()
    Image.fromarray(np.full((3, 5), 300, dtype=np.uint16)).save(tmp_path / "big16.png")
    with pytest.raises(SampleError, match="outside 0..255"):
        read_label(tmp_path / "big16.png")
    Image.fromarray(solid(RED)).save(tmp_path / "rgb.png")
    with pytest.raises(SampleError, match="single-channel"):
        read_label(tmp_path / "rgb.png")


def test_write_label_plain_and_palette(tmp_path):
    labels = np.array([[0, 7, 255], [33, 1, 2]], dtype=np.uint8)
    write_label(tmp_path / "plain.png", labels)
    write_label(tmp_path / "pal.png", labels, palette=np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert Image.open(tmp_path / "plain.png").mode == "L"
    assert Image.open(tmp_path / "pal.png").mode == "P"
    for name in ("plain.png", "pal.png"):
        assert (read_label(tmp_path / name) == labels).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pal.png", "plain.png"]


def test_atomic_write_leaves_no_partial_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"first")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # fails mid-write
    assert target.read_bytes() == b"first"  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", np.zeros((2, 2), dtype=np.uint8))  # not H x W x 3
    assert not (tmp_path / "bad.png").exists()


def test_resize_interpolation_choice():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 32, 3), dtype=np.uint8)
    assert (resize_rgb(image, (8, 4)) == cv2.resize(image, (8, 4), interpolation=cv2.INTER_AREA)).all()
    assert (resize_rgb(image, (64, 8)) == cv2.resize(image, (64, 8), interpolation=cv2.INTER_LINEAR)).all()
    assert resize_rgb(image, (32, 16)) is image
    labels = rng.choice(np.array([0, 7, 255], dtype=np.uint8), size=(16, 32))
    resized = resize_label(labels, (45, 23))
    assert resized.shape == (23, 45) and set(np.unique(resized)) <= {0, 7, 255}


@pytest.mark.parametrize("mode", ["P", "L", "I;16", "RGB"])
def test_encoded_label_keeps_pixels_mode_and_palette(mode):
    rng = np.random.default_rng(3)
    if mode == "I;16":
        label = Image.fromarray(rng.integers(0, 40000, (9, 13), dtype=np.uint16))
    elif mode == "RGB":
        label = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    else:
        label = Image.fromarray(rng.integers(0, 34, (9, 13), dtype=np.uint8), mode="L")
        if mode == "P":
            label.putpalette(rng.integers(0, 256, 34 * 3, dtype=np.uint8).tolist())
    assert label.mode == mode
    with Image.open(io.BytesIO(encode_label_image(label))) as written:
        written.load()
        assert written.mode == mode
        np.testing.assert_array_equal(np.asarray(written), np.asarray(label))
        assert written.getpalette() == label.getpalette()


def test_encoded_label_keeps_palette_transparency():
    label = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), mode="L")
    label.putpalette(list(range(36)))
    label.info["transparency"] = 5
    with Image.open(io.BytesIO(encode_label_image(label))) as written:
        assert written.info.get("transparency") == 5
        np.testing.assert_array_equal(np.asarray(written), np.asarray(label))
