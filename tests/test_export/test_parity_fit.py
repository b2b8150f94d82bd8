"""export.parity fitted to an engine profile: batches inside the profile's batch range, images inside its sizes."""

from __future__ import annotations

import numpy as np

from uda_trt.export.parity import (
    SEGMENTER_PARITY_SIZE,
    parity_batches,
    run_parity,
    segmenter_parity_images,
    size_in_range,
)


def test_size_in_range_is_the_nearest_acceptable_size():
    assert size_in_range((512, 256), (128, 64), (1024, 512)) == (512, 256)  # inside: unchanged
    assert size_in_range((512, 256), (1024, 512), (2048, 1024)) == (1024, 512)
    assert size_in_range((512, 256), (128, 64), (320, 160)) == (320, 160)
    assert size_in_range((31, 17), (24, 13), (40, 40), divisor=4) == (32, 16)
    assert size_in_range((30, 17), (24, 13), (40, 14), divisor=4) is None  # no multiple of 4 in 13..14


def test_batches_fit_the_range_and_every_image_is_counted_once():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, 8, 3), dtype=np.uint8) for h in (4, 4, 4, 6, 4, 4)]
    batches = parity_batches(images, (2, 3))
    assert [indices for indices, _ in batches] == [[0, 1, 2], [4, 5], [3]]
    assert [stacked.shape[0] for _, stacked in batches] == [3, 2, 2]
    np.testing.assert_array_equal(batches[2][1], np.stack([images[3], images[3]]))  # filled up by repeating
    assert [len(indices) for indices, _ in parity_batches(images, (1, 1))] == [1] * 6  # the old one-by-one


def test_run_parity_feeds_a_real_session_only_batches_inside_the_range(shared_invert_translator):
    from uda_trt.runtime.runners import open_runner

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, 32, 3), dtype=np.uint8) for h in (16, 16, 16, 32, 16)]
    seen = []

    def engine_like(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape[0])
        assert 2 <= batch.shape[0] <= 3, "a batch outside the profile"
        return runner.infer({"images": batch})["translated"]

    with open_runner(shared_invert_translator, "onnxruntime-cpu") as runner:
        report = run_parity("translate", images, lambda b: 255 - b, engine_like, 1.0, 0, "numpy", batch=(2, 3))
    assert report.passed and report.images == 5 and report.pixels == 4 * 16 * 32 + 32 * 32
    assert sorted(seen) == [2, 2, 3]
    wrong = run_parity("translate", images, lambda b: 255 - b, lambda b: 255 - b[::-1], 1.0, 0, "x", batch=(2, 3))
    assert not wrong.passed  # outputs go back to the image they belong to


def test_segmenter_parity_images_are_drawn_or_resized_inside_the_profile():
    scenes = segmenter_parity_images(None, (128, 64), (320, 160))
    assert len(scenes) == 3 and {scene.shape for scene in scenes} == {(160, 320, 3)}
    default = segmenter_parity_images(None, (256, 128), (2048, 1024))
    assert default[0].shape == (SEGMENTER_PARITY_SIZE[1], SEGMENTER_PARITY_SIZE[0], 3)
    given = [np.zeros((20, 36, 3), np.uint8), np.full((100, 200, 3), 9, np.uint8)]
    fitted = segmenter_parity_images(given, (64, 32), (256, 128))
    assert [image.shape for image in fitted] == [(32, 64, 3), (100, 200, 3)] and fitted[1] is given[1]
