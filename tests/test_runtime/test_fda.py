"""FDA (runtime.fda, runtime.fda_translator) against the paper's formula, written out here on its own.

The transcription below follows Yang and Soatto (CVPR 2020), eq. 3 and the official `FDA_source_to_target_np` /
`low_freq_mutate_np`: full complex FFTs per channel, fftshift, a (2b + 1) square window at floor(n / 2) with
b = floor(min(H, W) * beta), the target's amplitude put there, the source's phase kept, the real part of the inverse.
It shares no code with the implementation (which uses real FFTs and index sets).
"""

from __future__ import annotations

import numpy as np
import pytest

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.fda import fda, fda_uint8
from uda_trt.runtime.fda_translator import FdaTranslator, check_beta, donor_index, list_donors
from uda_trt.runtime.imageio import read_rgb, resize_rgb, write_image

SIZES = [(23, 41), (16, 16), (17, 9), (10, 31)]  # (H, W): odd, even, square, tall, wide
BETAS = [0.01, 0.05, 0.1, 0.25, 0.5]


def paper_fda(source: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """FDA as the paper's code computes it, on H x W x 3 arrays (channels moved first, as the official code has)."""
    src = source.transpose(2, 0, 1).astype(np.float64)
    trg = target.transpose(2, 0, 1).astype(np.float64)
    fft_src = np.fft.fft2(src, axes=(-2, -1))
    fft_trg = np.fft.fft2(trg, axes=(-2, -1))
    amp_src, pha_src = np.abs(fft_src), np.angle(fft_src)
    amp_trg = np.abs(fft_trg)
    a_src = np.fft.fftshift(amp_src, axes=(-2, -1))
    a_trg = np.fft.fftshift(amp_trg, axes=(-2, -1))
    _, h, w = a_src.shape
    b = int(np.floor(np.amin((h, w)) * beta))
    c_h, c_w = int(np.floor(h / 2.0)), int(np.floor(w / 2.0))
    a_src[:, c_h - b : c_h + b + 1, c_w - b : c_w + b + 1] = a_trg[:, c_h - b : c_h + b + 1, c_w - b : c_w + b + 1]
    amp_mutated = np.fft.ifftshift(a_src, axes=(-2, -1))
    result = np.real(np.fft.ifft2(amp_mutated * np.exp(1j * pha_src), axes=(-2, -1)))
    return result.transpose(1, 2, 0)


def images(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    target = np.clip(rng.normal(90, 40, (*shape, 3)), 0, 255).astype(np.uint8)  # another mean and contrast
    return source, target


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("beta", BETAS)
def test_fda_equals_the_papers_formula(shape, beta):
    source, target = images(shape, seed=shape[0] * 100 + shape[1])
    expected = paper_fda(source, target, beta)
    np.testing.assert_allclose(fda(source, target, beta), expected, rtol=0, atol=1e-6)
    assert np.abs(expected - source).max() > 1  # the donor changed something: the comparison is not vacuous


def test_a_window_of_the_zero_frequency_only_moves_the_mean_colour():
    """b = 0 (beta below 1 / min(H, W)): only the DC amplitude is swapped, i.e. each channel's mean."""
    source, target = images((23, 41), seed=1)
    out = fda(source, target, beta=0.02)  # floor(23 * 0.02) = 0
    expected = source - source.mean(axis=(0, 1)) + target.mean(axis=(0, 1))
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_a_tiny_window_with_a_donor_of_the_same_means_leaves_the_image_unchanged():
    source, target = images((23, 41), seed=2)
    donor = target - target.mean(axis=(0, 1)) + source.mean(axis=(0, 1))  # same channel means, other content
    np.testing.assert_allclose(fda(source, donor, beta=0.02), source, atol=1e-9)
    # and a shifted copy of the source has the same amplitudes everywhere: any window leaves the image as it was
    np.testing.assert_array_equal(fda_uint8(source, np.roll(source, (5, 11), axis=(0, 1)), beta=0.5), source)


@pytest.mark.parametrize("beta", [0.05, 0.2])
def test_the_outputs_low_frequency_amplitudes_are_the_donors_and_its_phase_the_sources(beta):
    source, target = images((40, 64), seed=3)
    out = fda(source, target, beta)
    b = int(np.floor(40 * beta))
    rows = np.r_[0 : b + 1, -b:0]
    cols = np.r_[0 : b + 1, -b:0]
    window = np.ix_(rows, cols)
    spectrum_out = np.fft.fft2(out, axes=(0, 1))
    spectrum_src = np.fft.fft2(source.astype(np.float64), axes=(0, 1))
    spectrum_trg = np.fft.fft2(target.astype(np.float64), axes=(0, 1))
    np.testing.assert_allclose(np.abs(spectrum_out[window]), np.abs(spectrum_trg[window]), rtol=1e-9, atol=1e-6)
    outside = np.ones(spectrum_out.shape[:2], bool)
    outside[window] = False
    np.testing.assert_allclose(spectrum_out[outside], spectrum_src[outside], rtol=1e-9, atol=1e-6)
    strong = np.abs(spectrum_src[window]) > 1e-3
    phase_out, phase_src = np.angle(spectrum_out[window]), np.angle(spectrum_src[window])
    np.testing.assert_allclose(np.exp(1j * phase_out)[strong], np.exp(1j * phase_src)[strong], atol=1e-9)


def test_uint8_output_is_the_rounded_and_clipped_result():
    source, target = images((23, 41), seed=4)
    target[:] = 250  # a bright donor pushes many pixels past 255
    out = fda_uint8(source, target, beta=0.1)
    assert out.dtype == np.uint8 and out.shape == source.shape
    exact = paper_fda(source, target, beta=0.1)
    assert exact.max() > 255.5
    np.testing.assert_array_equal(out, np.clip(np.rint(exact), 0, 255).astype(np.uint8))


def test_donor_choice_depends_on_key_and_seed_only():
    count = 7
    picks = [donor_index(f"{i:05d}", 0, count) for i in range(200)]
    assert picks == [donor_index(f"{i:05d}", 0, count) for i in range(200)]
    assert set(picks) == set(range(count))  # every donor is used
    assert picks != [donor_index(f"{i:05d}", 1, count) for i in range(200)]


@pytest.mark.parametrize("beta", [0.0, -0.1, 0.51, float("nan")])
def test_beta_outside_the_range_is_refused(beta):
    with pytest.raises(UserError, match="--beta"):
        check_beta(beta)


def test_translator_batches_of_mixed_sizes(tmp_path):
    """Donor amplitudes are read at each source's size (and kept per donor and size); batches may mix sizes."""
    for index in range(3):
        write_image(tmp_path / f"t{index}.png", images((12, 20), seed=index)[1])
    translator = FdaTranslator(list_donors(tmp_path), beta=0.1, seed=0, threads=2)
    assert len(translator.donors.paths) == 3
    keys, sources = ["00001", "00002"], [images(shape, seed=5)[0] for shape in [(23, 41), (16, 16)]]
    sizes = [source.shape[1::-1] for source in sources]
    pairs = [(s, translator.donor_amplitude(k, size)) for k, s, size in zip(keys, sources, sizes, strict=True)]
    assert translator.donor_amplitude(keys[0], sizes[0]) is pairs[0][1]  # kept, not recomputed
    with translator:
        outputs = [o["translated"][0] for o in translator.infer_many([pairs[:1], pairs[1:]])]
    for key, source, size, output in zip(keys, sources, sizes, outputs, strict=True):
        donor = resize_rgb(read_rgb(translator.donor_for(key)), size)
        assert output.dtype == np.uint8 and output.shape == source.shape
        np.testing.assert_array_equal(output, fda_uint8(source, donor, 0.1))


def test_an_empty_target_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="^--fda: .*no images found"):
        list_donors(tmp_path)
