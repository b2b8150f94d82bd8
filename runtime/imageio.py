"""Image and label file I/O with the input conversions of docs/contracts.md ("Input images"), and crash-safe writes.

Images leave this module as RGB uint8, whatever the file held: grayscale is replicated, alpha dropped, 16-bit
scaled to 8-bit, each conversion reported once per job. 8-bit non-palette PNGs (GTA5 and Cityscapes frames,
Cityscapes labelIds, predictions) are decoded by imagecodecs (libpng with zlib-ng: faster than OpenCV's decoder on
this data, and it releases the GIL); every other file, and any PNG imagecodecs refuses, goes through OpenCV. Labels
that are not plain 8-bit grayscale go through Pillow, because palette PNGs (GTA5 labels) must be read as palette
*indices*, which OpenCV would expand to colours. PNG is written by runtime.png (libdeflate: faster than OpenCV,
smaller files), JPEG by OpenCV.
A file that cannot be decoded is a per-sample fault (`SampleError`), never a crash.
Writes go to a hidden temporary file in the target folder and are renamed into place, so a killed job never
leaves a half-written output under the final name.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from struct import error as struct_error
from struct import unpack

import cv2
import imagecodecs
import numpy as np
from PIL import Image

from uda_trt.runtime.errors import SampleError
from uda_trt.runtime.jobs.files import atomic_write_bytes
from uda_trt.runtime.png import SIGNATURE as PNG_SIGNATURE
from uda_trt.runtime.png import encode_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff")
# Images declaring more pixels than this are refused before decoding (a 100-byte PNG can declare 10^10 pixels).
# 2^27 = e.g. 16384 x 8192; GTA5 and Cityscapes frames are ~2 M. Pillow's own, lower warning threshold is then
# redundant noise, so it is silenced; its hard limit (DecompressionBombError) still applies and is caught.
MAX_PIXELS = 1 << 27
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

log = logging.getLogger(__name__)


class LogOnce:
    """Log a warning the first time a key is seen: one instance per job, so each conversion is reported once."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._seen: set[str] = set()
        self._logger = logger or log

    def __call__(self, key: str, message: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self._logger.warning(message)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; a missing or empty file is a sample fault."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SampleError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise SampleError(path, "empty file")
    return data


def check_dimensions(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header declares more than MAX_PIXELS pixels (a decompression bomb)."""
    if width * height > MAX_PIXELS:
        raise SampleError(path, f"declares {width}x{height} pixels, more than the {MAX_PIXELS} allowed; not decoded")


_BOMB = f"declares more than the {MAX_PIXELS} pixels allowed (a decompression bomb?); not decoded"


def _check_header(path: Path, data: bytes) -> None:
    """Read the declared size from the header (Pillow parses headers without decoding) and check it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise SampleError(path, _BOMB) from None
    except (OSError, ValueError, SyntaxError, struct_error):
        return  # a format Pillow cannot parse: OpenCV decides, within its own limit
    check_dimensions(path, width, height)


def load_checked(path: Path | str) -> Image.Image:
    """An image file decoded fully with Pillow (mode and palette as stored) after checking its header.

    For files passed on without being read as RGB (labels, copied byte for byte or resized): a truncated or
    corrupt file must be a fault here, not a broken file in the output. Unreadable or oversized -> SampleError.
    """
    path = Path(path)
    try:
        img = Image.open(path)
        try:
            check_dimensions(path, *img.size)
            img.load()
        except BaseException:
            img.close()
            raise
        return img
    except Image.DecompressionBombError:
        raise SampleError(path, _BOMB) from None
    except (OSError, ValueError, SyntaxError, struct_error) as exc:
        raise SampleError(path, f"not a readable image ({exc})") from None


# PNG colour types imagecodecs decodes to plain arrays: grayscale, RGB, grayscale + alpha, RGBA (not palette).
_FAST_PNG_COLOUR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}


def _png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR, or None if `data` does not start like a PNG."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height = unpack(">II", data[16:24])
    return width, height, data[24], data[25]


def _decode_png_fast(path: Path, data: bytes) -> np.ndarray | None:
    """Decode an 8-bit non-palette PNG with imagecodecs: H x W (gray) or H x W x C in the file's channel order (RGB,
    RGBA, gray + alpha). None for any other file and for any file imagecodecs refuses or decodes to an unexpected
    shape, so that OpenCV or Pillow reads it and names the problem."""
    header = _png_header(data)
    if header is None:
        return None
    width, height, bit_depth, colour_type = header
    channels = _FAST_PNG_COLOUR_TYPES.get(colour_type)
    if bit_depth != 8 or channels is None:
        return None
    check_dimensions(path, width, height)
    try:
        array = imagecodecs.png_decode(data)
    except (ValueError, RuntimeError):  # PngError is a RuntimeError; garbled chunks can raise UnicodeDecodeError
        return None
    expected = (height, width) if channels == 1 else (height, width, channels)
    if array.dtype != np.uint8 or array.shape != expected or array.size == 0:
        return None
    return array


def _decode_opencv(path: Path, data: bytes) -> np.ndarray:
    """Decode any format OpenCV reads, channels in BGR(A) order; unreadable -> SampleError."""
    _check_header(path, data)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own size limits and some corrupt headers raise instead of returning None
        raise SampleError(path, f"not a readable image ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise SampleError(path, "not a readable image (corrupt, truncated or unsupported format)")
    if image.size == 0:
        raise SampleError(path, "image has zero size")
    return image


def read_rgb(path: Path | str, log_once: LogOnce | None = None) -> np.ndarray:
    """Decode an image file to H x W x 3 RGB uint8, applying (and reporting) the docs/contracts.md conversions."""
    path = Path(path)
    data = _read_bytes(path)
    image = _decode_png_fast(path, data)
    colour_first = image is not None  # imagecodecs gives RGB(A), OpenCV BGR(A)
    if image is None:
        image = _decode_opencv(path, data)
    report = log_once or (lambda key, message: None)

    if image.dtype == np.uint16:
        report("16bit", f"{path}: 16-bit image scaled to 8-bit (reported once per job)")
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SampleError(path, f"unsupported pixel type {image.dtype}")

    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        report("gray", f"{path}: grayscale image replicated to RGB (reported once per job)")
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    if channels == 2:  # gray + alpha
        report("gray", f"{path}: grayscale image replicated to RGB (reported once per job)")
        report("alpha", f"{path}: alpha channel dropped (reported once per job)")
        return np.repeat(image[:, :, :1], 3, axis=2)
    if channels == 4:
        report("alpha", f"{path}: alpha channel dropped (reported once per job)")
        return np.ascontiguousarray(image[:, :, :3]) if colour_first else cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if channels == 3:
        return image if colour_first else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise SampleError(path, f"unsupported number of channels ({channels})")


def _decode_plain_gray_png(path: Path, data: bytes) -> np.ndarray | None:
    """An 8-bit grayscale PNG decoded by imagecodecs (faster than Pillow, and threaded); None for any other
    file, and for any file it does not decode to exactly H x W uint8, so that Pillow reads it and names the problem."""
    header = _png_header(data)
    if header is None or header[2:] != (8, 0):
        return None
    return _decode_png_fast(path, data)


def read_label(path: Path | str) -> np.ndarray:
    """Read a single-channel label PNG as H x W uint8: palette indices for "P" images, values for grayscale."""
    path = Path(path)
    data = _read_bytes(path)
    fast = _decode_plain_gray_png(path, data)
    if fast is not None:
        return fast
    try:
        with Image.open(io.BytesIO(data)) as img:
            check_dimensions(path, *img.size)
            img.load()
            mode = img.mode
            if mode == "P":
                array = np.asarray(img)  # indices, not colours
            elif mode in ("L", "1", "I", "I;16", "I;16B", "I;16L"):
                array = np.asarray(img)
            else:
                raise SampleError(path, f"expected a single-channel label image, got mode {mode}")
    except SampleError:
        raise
    except Image.DecompressionBombError:
        raise SampleError(path, _BOMB) from None
    except (OSError, ValueError, SyntaxError, struct_error) as exc:
        raise SampleError(path, f"not a readable label image ({exc})") from exc
    if array.size == 0:
        raise SampleError(path, "label image has zero size")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise SampleError(path, f"label values outside 0..255 (max {int(array.max())}) in a {mode} image")
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def encode_image(rgb: np.ndarray, suffix: str, png_compression: int = 1, jpeg_quality: int = 95) -> bytes:
    """Encode an H x W x 3 RGB uint8 image in the format named by `suffix` (".png", ".jpg", ...)."""
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot write images with suffix {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    if suffix == ".png":
        return encode_png(rgb, int(png_compression))
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, buffer = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {suffix} image")
    return buffer.tobytes()


def write_image(path: Path | str, rgb: np.ndarray, png_compression: int = 1, jpeg_quality: int = 95) -> None:
    """Write an RGB uint8 image atomically; the format follows the file suffix."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(rgb, path.suffix, png_compression, jpeg_quality))


def encode_label_image(label: Image.Image) -> bytes:
    """PNG bytes of a label map read with Pillow, mode and palette kept.

    8-bit maps ("P" as in GTA5, "L" as in Cityscapes) go through runtime.png (libdeflate, level 6): faster
    than Pillow's encoder, and a smaller file. Other modes, and palettes with
    transparency, are saved by Pillow.
    """
    if label.mode in ("P", "L") and "transparency" not in label.info:
        return encode_png(np.asarray(label), level=6, palette=label.getpalette() if label.mode == "P" else None)
    buffer = io.BytesIO()
    label.save(buffer, format="PNG")
    return buffer.getvalue()


def write_label(path: Path | str, array: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an H x W uint8 label map as a single-channel PNG ("P" mode with `palette`, else "L"), atomically."""
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"expected H x W uint8 labels, got {array.dtype} {array.shape}")
    colours = None
    if palette is not None:
        # Padded to 256 entries, so that every index a label map can hold names a colour.
        colours = np.zeros((256, 3), dtype=np.uint8)
        given = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
        colours[: len(given)] = given
    atomic_write_bytes(path, encode_png(array, level=1, palette=colours))


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to size = (width, height): area averaging when shrinking both axes (no aliasing), else bilinear."""
    width, height = size
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to size = (width, height) with nearest neighbour, so no new class IDs appear."""
    width, height = size
    if (label.shape[1], label.shape[0]) == (width, height):
        return label
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
