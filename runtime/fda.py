"""Fourier Domain Adaptation (Yang and Soatto, CVPR 2020): a source image with a target image's low frequencies.

The source's amplitude spectrum inside a square low-frequency window is replaced by the donor's; the source's phase
is kept everywhere, so the content stays and the global style (colour, illumination) moves to the target's. The
window is the official code's (`low_freq_mutate_np`): after fftshift, rows and columns ``c - b .. c + b`` around the
zero frequency ``c = n // 2``, with ``b = floor(min(H, W) * beta)``; i.e. every frequency ``(ky, kx)`` with
``|ky| <= b`` and ``|kx| <= b``, per channel. That set is symmetric under negation, so the result stays real, and
real FFTs (rfft2: half the columns) compute exactly the official full-spectrum result.
Plain numpy, no torch: this is a translator of the torch-free runtime.
"""

from __future__ import annotations

import numpy as np


def window_half_size(height: int, width: int, beta: float) -> int:
    """b = floor(min(H, W) * beta): the window spans 2b + 1 frequencies per axis (b = 0: the mean colour only)."""
    return int(np.floor(min(height, width) * beta))


def _window(height: int, width: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the window in an rfft2 spectrum of an H x W image (rows wrap around, columns are
    the non-negative half)."""
    rows = np.unique(np.arange(-b, b + 1) % height)
    cols = np.arange(min(b, width // 2) + 1)
    return rows, cols


def _spectrum(image: np.ndarray) -> np.ndarray:
    """rfft2 of each channel of an H x W x C image, as C x H x (W // 2 + 1) (channel-first: contiguous FFT rows)."""
    return np.fft.rfft2(np.moveaxis(image.astype(np.float64), -1, 0))


def low_frequency_amplitude(donor: np.ndarray, beta: float) -> np.ndarray:
    """The donor's amplitudes inside the window, C x rows x cols: all FDA needs of a donor (batch-translate keeps
    them per donor and size, so a donor shared by many sources is decoded and transformed once)."""
    height, width = donor.shape[:2]
    rows, cols = _window(height, width, window_half_size(height, width, beta))
    return np.abs(_spectrum(donor)[:, rows][:, :, cols])


def fda_with_amplitude(source: np.ndarray, amplitude: np.ndarray, beta: float) -> np.ndarray:
    """The FDA image (float64, H x W x C, not rounded) of `source` with the window amplitudes `amplitude`
    (`low_frequency_amplitude` of a donor of the source's size)."""
    height, width = source.shape[:2]
    rows, cols = _window(height, width, window_half_size(height, width, beta))
    spectrum = _spectrum(source)
    window = np.ix_(np.arange(spectrum.shape[0]), rows, cols)
    if amplitude.shape != spectrum[window].shape:
        raise ValueError(f"amplitude window {amplitude.shape} does not fit the source's {spectrum[window].shape}")
    spectrum[window] = amplitude * np.exp(1j * np.angle(spectrum[window]))
    return np.moveaxis(np.fft.irfft2(spectrum, s=(height, width)), 0, -1)


def fda(source: np.ndarray, donor: np.ndarray, beta: float) -> np.ndarray:
    """The FDA image (float64, H x W x C, not rounded) of `source` with `donor`'s low-frequency amplitudes.

    Both are H x W x C arrays of one size (the caller resizes the donor to the source's size first).
    """
    if source.shape != donor.shape:
        raise ValueError(f"source {source.shape} and donor {donor.shape} differ in shape")
    return fda_with_amplitude(source, low_frequency_amplitude(donor, beta), beta)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Rounded and clipped to 0..255, as uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def fda_uint8(source: np.ndarray, donor: np.ndarray, beta: float) -> np.ndarray:
    """`fda` rounded and clipped to 0..255, as uint8: what batch-translate writes (RGB in, RGB out)."""
    return to_uint8(fda(source, donor, beta))
