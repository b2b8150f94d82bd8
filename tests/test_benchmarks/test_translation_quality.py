"""Translation quality: the FID / KID / IS formulas against closed forms and torch-fidelity, the FID Inception's
weights lookup, its ONNX export against torch-fidelity's PyTorch network (random weights in the real file format),
and the FCN-score's wiring (an identity 'translation' scores what evaluate-seg scores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes, write_gta5
from uda_trt.benchmarks import frechet
from uda_trt.benchmarks import translation_quality as tq
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.evaluate import evaluate_engine
from uda_trt.runtime.fcn_score import fcn_score
from uda_trt.runtime.imageio import read_label
from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID

torch_fidelity = pytest.importorskip("torch_fidelity")


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


# ---------------------------------------------------------------------------------------------- formulas


def test_frechet_distance_equals_the_closed_form_for_gaussians_with_commuting_covariances():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    q = _rotation(rng, d)  # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: tr((S1 S2)^1/2) = sum sqrt(a b)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-6)
    assert frechet.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu1, q @ np.diag(a) @ q.T) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_equals_the_closed_form_for_one_dimensional_and_general_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == (
        pytest.approx(9.0 + 1.0, rel=1e-12)
    )
    # non-commuting: tr((S1 S2)^1/2) from the eigenvalues of S1 S2, computed independently here
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=(2, 8, 8))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(8), m2 @ m2.T + 0.1 * np.eye(8)
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet.frechet_distance(np.zeros(8), s1, np.zeros(8), s2) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("real_count", "fake_count"), [(5, 7), (7, 5), (40, 30)])
def test_fid_of_sets_smaller_or_larger_than_the_feature_size_equals_the_frechet_distance_of_their_statistics(
    real_count: int, fake_count: int
):
    """fid_from_features takes an n1 x n2 SVD when a set is smaller than the feature size (12 here, 2048 for the
    FID) and the D x D route otherwise: both equal frechet_distance of the sets' means and covariances (to 1e-7:
    on rank-deficient covariances the D x D route takes square roots of eigenvalues that are zero but for rounding,
    about 1e-8 each)."""
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(real_count, 12)), rng.normal(0.5, 2.0, size=(fake_count, 12))
    expected = frechet.frechet_distance(*frechet.feature_statistics(real), *frechet.feature_statistics(fake))
    assert frechet.fid_from_features(real, fake) == pytest.approx(expected, rel=1e-7)
    with pytest.raises(ValueError, match="N x D"):
        frechet.fid_from_features(real[:1], fake)


def _poly_expectation(a: np.ndarray, sa: np.ndarray, b: np.ndarray, sb: np.ndarray) -> float:
    """E (x.y / d + 1)^3 for independent x ~ N(a, Sa), y ~ N(b, Sb): moments of u = x.y in closed form."""
    d = len(a)
    ab, aba, bab, tr = a @ b, a @ sb @ a, b @ sa @ b, np.trace(sa @ sb)
    e1 = ab
    e2 = ab**2 + aba + bab + tr
    e3 = ab**3 + 3 * ab * aba + 3 * (ab * (bab + tr) + 2 * a @ sb @ sa @ b)
    return 1 + 3 * e1 / d + 3 * e2 / d**2 + e3 / d**3


def test_kid_estimator_is_the_unbiased_mmd_of_its_definition_and_unbiased_for_gaussians():
    rng = np.random.default_rng(2)
    d, m = 3, 12
    x, y = rng.normal(size=(m, d)), rng.normal(0.5, 1.5, size=(m, d))
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    literal = (
        sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    )
    assert frechet.mmd2_unbiased(x, y) == pytest.approx(literal, rel=1e-6)

    # Unbiased: over independent Gaussian samples its mean is the population MMD^2 in closed form (a statistical
    # check, deterministic by the seed: within 4 standard errors).
    mu_a, mu_b = np.array([0.0, 0.5, -0.5]), np.array([1.0, 0.0, 0.5])
    q = _rotation(rng, d)
    s_a, s_b = np.diag([1.0, 0.5, 2.0]), q @ np.diag([1.5, 1.0, 0.3]) @ q.T
    population = (
        _poly_expectation(mu_a, s_a, mu_a, s_a)
        + _poly_expectation(mu_b, s_b, mu_b, s_b)
        - 2 * _poly_expectation(mu_a, s_a, mu_b, s_b)
    )
    draws = np.array(
        [
            frechet.mmd2_unbiased(rng.multivariate_normal(mu_a, s_a, 64), rng.multivariate_normal(mu_b, s_b, 64))
            for _ in range(400)
        ]
    )
    standard_error = draws.std() / np.sqrt(len(draws))
    assert abs(draws.mean() - population) < 4 * standard_error, (draws.mean(), population, standard_error)


def test_fid_kid_and_is_equal_torch_fidelitys_on_the_same_features():
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(3)
    for n, d in ((120, 32), (20, 32)):  # more samples than dimensions, and fewer (rank-deficient covariances)
        fake, real = rng.normal(size=(n, d)), rng.normal(0.2, 1.3, size=(n, d))
        stats = [fid_features_to_statistics(torch.from_numpy(f)) for f in (fake, real)]
        library_fid = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
        assert frechet.fid_from_features(fake, real) == pytest.approx(library_fid, rel=1e-6)

        library_kid = kid_features_to_metric(
            torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=7, kid_subset_size=n // 2, verbose=False
        )
        kid_mean, kid_std = frechet.kid_from_features(fake, real, subsets=7, subset_size=n // 2)
        assert kid_mean == pytest.approx(library_kid["kernel_inception_distance_mean"], rel=1e-9)
        assert kid_std == pytest.approx(library_kid["kernel_inception_distance_std"], rel=1e-9)

        logits = 3 * rng.normal(size=(n, 50))
        library_is = isc_features_to_metric(torch.from_numpy(logits), splits=4, shuffle=True, rng_seed=2020)
        is_mean, is_std = frechet.inception_score(logits, splits=4)
        assert is_mean == pytest.approx(library_is["inception_score_mean"], rel=1e-9)
        assert is_std == pytest.approx(library_is["inception_score_std"], rel=1e-9)


def test_small_sets_shrink_kid_subsets_and_is_splits_and_record_them():
    rng = np.random.default_rng(4)
    result = tq.metrics_from_features(rng.normal(size=(7, 8)), rng.normal(size=(5, 8)), rng.normal(size=(5, 10)))
    assert (result["kid_subset_size"], result["inception_score_splits"]) == (5, 2)
    assert all(np.isfinite(result[k]) for k in ("fid", "kid_mean", "kid_std", "inception_score_mean"))


# ---------------------------------------------------------------------------------------------- weights lookup


def test_weights_are_found_in_the_torch_hub_cache_and_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as error:
        tq.find_inception_weights()
    message = error.value.format_message()
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message and "--inception-weights" in message
    assert "\n" not in message
    cached = tmp_path / "torch" / "hub" / "checkpoints" / tq.WEIGHT_FILES[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert tq.find_inception_weights() == cached
    with pytest.raises(UserError, match="no such file"):
        tq.find_inception_weights(tmp_path / "absent.pth")


# ---------------------------------------------------------------------------------------------- the network


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """The FID Inception's state-dict format (torchvision names, 1008 classes) with random weights."""
    return tq.write_random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth", seed=0)


def _write_images(folder: Path, count: int, size: tuple[int, int], seed: int, tint: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        base = rng.integers(0, 256, (1, 1, 3)) if tint else 128
        image = np.clip(rng.normal(base, 50, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.slow
def test_onnx_export_matches_torch_fidelitys_network_on_random_weights(random_weights, tmp_path):
    import onnxruntime as ort
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    library = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(random_weights)
    )
    onnx_path = tq.export_inception_onnx(random_weights, tmp_path / "inception.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for height, width in ((37, 501), (300, 400)):  # upsampled and downsampled to 299x299, non-integer factors
        batch = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        pool, logits = session.run(["pool", "logits"], {"images": batch})
        with torch.no_grad():
            library_pool, library_logits = library(torch.from_numpy(batch).permute(0, 3, 1, 2))
        assert library_pool.abs().max() > 0.1  # features that carry signal, not a vanished network
        assert np.abs(pool - library_pool.numpy()).max() <= 1e-4
        assert np.abs(logits - library_logits.numpy()).max() <= 1e-4
    # the onnxruntime feature path of inception_metrics gives the PyTorch path's numbers
    real = _write_images(tmp_path / "real", 2, (40, 30), seed=12, tint=0)
    fake = _write_images(tmp_path / "fake", 2, (40, 30), seed=13, tint=1)
    by_onnx = tq.inception_metrics(real, fake, random_weights, onnx_path=onnx_path, kid_subsets=3)
    by_torch = tq.inception_metrics(real, fake, random_weights, kid_subsets=3)
    assert by_onnx["feature_backend"].startswith("onnxruntime") and by_torch["feature_backend"] == "torch (cpu)"
    for key in ("fid", "kid_mean", "inception_score_mean"):
        assert by_onnx[key] == pytest.approx(by_torch[key], rel=1e-3), key
    # the comparison can fail: one perturbed layer in the library's network moves its features past the bound
    library.Mixed_7c.branch_pool.conv.weight.mul_(1.5)
    with torch.no_grad():
        perturbed_pool, _ = library(torch.from_numpy(batch).permute(0, 3, 1, 2))
    assert np.abs(pool - perturbed_pool.numpy()).max() > 1e-3


@pytest.mark.slow
def test_image_folders_score_as_torch_fidelity_scores_them(random_weights, tmp_path):
    real = _write_images(tmp_path / "real", 2, (40, 30), seed=6, tint=0)
    fake = _write_images(tmp_path / "fake", 2, (40, 30), seed=7, tint=1)
    ours = tq.inception_metrics(real, fake, random_weights, kid_subsets=5, kid_subset_size=2, is_splits=1)
    library = torch_fidelity.calculate_metrics(
        input1=str(fake),
        input2=str(real),
        cuda=False,
        fid=True,
        kid=True,
        isc=True,
        feature_extractor_weights_path=str(random_weights),
        kid_subsets=5,
        kid_subset_size=2,
        isc_splits=1,
        verbose=False,
        cache=False,
        save_cpu_ram=True,
    )
    assert ours["fid"] > 0.01
    assert ours["fid"] == pytest.approx(library["frechet_inception_distance"], rel=1e-5)
    assert ours["kid_mean"] == pytest.approx(library["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["inception_score_mean"] == pytest.approx(library["inception_score_mean"], rel=1e-6)
    assert (ours["real_images"], ours["fake_images"], ours["images_skipped"]) == (2, 2, 0)


# ---------------------------------------------------------------------------------------------- FCN-score


def _paint_red_as_labels(image_path: Path, label_path: Path, fraction: float, rng: np.random.Generator) -> None:
    """Set the red channel to train ID x 14 on `fraction` of the pixels, so red_over_14 gets those right."""
    image = np.array(Image.open(image_path).convert("RGB"))
    train_ids = LABEL_ID_TO_TRAIN_ID[read_label(label_path)]
    painted = (rng.random(train_ids.shape) < fraction) & (train_ids < 19)
    image[..., 0][painted] = train_ids[painted] * 14
    Image.fromarray(image).save(image_path)


def test_an_identity_translation_of_target_images_scores_the_segmenters_own_target_miou(tmp_path, shared_red_segmenter):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 2, "bremen": 1}, size=(48, 24), seed=8)
    rng = np.random.default_rng(9)
    for image in sorted((root / "leftImg8bit" / "val").glob("*/*.png")):
        label = root / "gtFine" / "val" / image.parent.name / image.name.replace("leftImg8bit", "gtFine_labelIds")
        _paint_red_as_labels(image, label, 0.6, rng)
    seg = evaluate_engine(shared_red_segmenter, root, "val", output=tmp_path / "eval")
    fcn = fcn_score(shared_red_segmenter, root / "leftImg8bit" / "val", root / "gtFine" / "val")
    assert 0.2 < seg["mean_iou"] < 0.95  # a segmenter that is partly right, so equality says something
    assert fcn["mean_iou"] == seg["mean_iou"]
    assert fcn["pixel_accuracy"] == seg["pixel_accuracy"]
    assert fcn["confusion_matrix"] == seg["confusion_matrix"]
    assert (fcn["images_scored"], fcn["images_skipped"]) == (3, 0)


def test_a_batch_translate_output_root_pairs_images_with_the_labels_beside_them(tmp_path, shared_red_segmenter):
    root = write_gta5(tmp_path / "translated", count=3, size=(32, 16), seed=10)
    rng = np.random.default_rng(11)
    for image in sorted((root / "images").glob("*.png")):
        _paint_red_as_labels(image, root / "labels" / image.name, 1.0, rng)
    (root / "labels" / "00003.png").unlink()  # an image without its label: skipped and counted
    result = fcn_score(shared_red_segmenter, root)
    assert result["mean_iou"] == pytest.approx(1.0)
    assert (result["images_scored"], result["images_skipped"]) == (2, 1)
    assert "00003.png" in result["skipped"][0]["file"]
    with pytest.raises(UserError, match="--labels"):
        fcn_score(shared_red_segmenter, root / "images", tmp_path / "nowhere")
