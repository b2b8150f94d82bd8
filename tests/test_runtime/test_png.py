"""runtime.png writes PNGs that libpng (OpenCV, imagecodecs) and Pillow decode to exactly the pixels written."""

from __future__ import annotations

import io
import zlib

import cv2
import imagecodecs
import numpy as np
import pytest
from PIL import Image

from uda_trt.runtime.png import encode_png


def _pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise and a hard edge: exercises the wrap-around of the SUB filter at 0 and 255."""
    rng = np.random.default_rng(seed)
    height, width = shape[:2]
    ramp = (np.arange(width)[None, :] * 7 + np.arange(height)[:, None] * 3) % 256
    base = ramp if len(shape) == 2 else np.stack([(ramp + 85 * c) % 256 for c in range(shape[2])], axis=-1)
    noise = rng.integers(-3, 4, size=shape)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    pixels[: height // 2, width // 3] = 255
    pixels[height // 2 :, width // 3] = 0
    return pixels


@pytest.mark.parametrize("shape", [(31, 47), (31, 47, 3), (31, 47, 4), (1, 1, 3), (2, 1), (64, 1024, 3)])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_round_trip_through_three_decoders(shape, level):
    pixels = _pixels(shape)
    data = encode_png(pixels, level)
    pillow = np.asarray(Image.open(io.BytesIO(data)))
    assert pillow.shape == pixels.shape and np.array_equal(pillow, pixels)
    assert np.array_equal(imagecodecs.png_decode(data), pixels)
    opencv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if len(shape) == 3:
        opencv = cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB if shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(opencv.reshape(pixels.shape), pixels)


def test_palette_image_keeps_indices_and_colours():
    indices = (np.arange(40 * 30).reshape(30, 40) % 256).astype(np.uint8)
    palette = np.stack([np.arange(256), 255 - np.arange(256), np.full(256, 7)], axis=1).astype(np.uint8)
    with Image.open(io.BytesIO(encode_png(indices, 1, palette=palette))) as img:
        assert img.mode == "P"
        assert np.array_equal(np.asarray(img), indices)
        assert np.array_equal(np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)[:256], palette)


def test_level_zero_stores_others_compress_and_every_chunk_checksum_holds():
    pixels = _pixels((128, 256, 3), seed=1)
    stored, *compressed = (len(encode_png(pixels, level)) for level in (0, 1, 6, 9))
    assert stored > pixels.nbytes
    assert max(compressed) < 0.6 * stored
    data = encode_png(pixels, 6)
    position, tags = 8, []
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        tag, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        crc = int.from_bytes(data[position + 8 + length : position + 12 + length], "big")
        assert zlib.crc32(tag + body) == crc, tag
        tags.append(tag)
        position += 12 + length
    assert tags == [b"IHDR", b"IDAT", b"IEND"] and position == len(data)


def test_output_is_deterministic():
    pixels = _pixels((50, 60, 3), seed=2)
    assert encode_png(pixels, 6) == encode_png(pixels.copy(), 6)


@pytest.mark.parametrize(
    ("pixels", "kwargs", "message"),
    [
        (np.zeros((4, 4), np.uint16), {}, "uint8"),
        (np.zeros((0, 4), np.uint8), {}, "non-empty"),
        (np.zeros((4, 4, 2), np.uint8), {}, "2 channels"),
        (np.zeros((4, 4, 3), np.uint8), {"level": 10}, "0..9"),
        (np.zeros((4, 4, 3), np.uint8), {"palette": np.zeros((4, 3))}, "indices"),
        (np.zeros((4, 4), np.uint8), {"palette": np.zeros((257, 3))}, "1..256"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(pixels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        encode_png(pixels, **kwargs)
