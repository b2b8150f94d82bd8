"""The translation-quality formulas on feature arrays: Frechet distance (FID), KID, Inception Score.

Plain numpy in float64, no torch, so they are checked against closed forms and against torch-fidelity (the library
whose Inception network and defaults `evaluate-translation` uses) on the same features. The defaults are
torch-fidelity's: KID with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, the unbiased MMD^2 estimator over
100 random subsets of 1000 drawn with numpy's RandomState(2020); IS over 10 splits of the shuffled logits.
"""

from __future__ import annotations

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
SEED = 2020


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, N - 1) of N x D features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need an N x D array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the squared Frechet distance of two Gaussians.

    tr((S1 S2)^1/2) is taken as the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2, a symmetric PSD
    matrix with the same eigenvalues as S1 S2: eigh is stable where the eigenvalues of the non-symmetric product
    (or scipy's sqrtm) turn complex on the rank-deficient covariances of sets smaller than the feature size.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics of different shapes: {mu1.shape} {sigma1.shape} and {mu2.shape} {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    product = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two N x D feature sets (Inception pool features for the FID).

    Sets smaller than the feature size (under 2049 images for the FID's 2048-d features) take the exact low-rank
    route: with A and B the centred sets, S1 S2 = A^T A B^T B / ((n1 - 1)(n2 - 1)) has the nonzero eigenvalues of
    M M^T, M = A B^T / sqrt((n1 - 1)(n2 - 1)), so tr((S1 S2)^1/2) is the sum of M's singular values: an n1 x n2
    SVD instead of D x D eigendecompositions (milliseconds instead of seconds on one core).
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or min(len(real), len(fake)) < 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two N x D arrays with N >= 2, got shapes {real.shape} and {fake.shape}")
    n1, n2 = len(real), len(fake)
    if min(n1, n2) > real.shape[1]:
        return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    real_mean, fake_mean = real.mean(axis=0), fake.mean(axis=0)
    a, b = real - real_mean, fake - fake_mean
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = real_mean - fake_mean
    return float(diff @ diff + (a * a).sum() / (n1 - 1) + (b * b).sum() / (n2 - 1) - 2 * tr_covmean)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x.y / d + 1)^3 for every pair of rows: the KID kernel."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimator of two equal-size samples with the KID kernel (diagonals of K_xx, K_yy left out)."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid_from_features(
    first: np.ndarray,
    second: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = SEED,
) -> tuple[float, float]:
    """KID mean and std over `subsets` random subsets of `subset_size` features from each set (without replacement).

    Subsets are drawn exactly as torch-fidelity draws them (one RandomState; per subset from `first`, its input 1,
    then from `second`), so both give the same numbers on the same features in the same order.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if subset_size < 2 or subset_size > min(len(first), len(second)):
        raise ValueError(f"KID subset size {subset_size} needs 2 <= size <= {min(len(first), len(second))} (set sizes)")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = first[rng.choice(len(first), subset_size, replace=False)]
        y = second[rng.choice(len(second), subset_size, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = SEED) -> tuple[float, float]:
    """Mean and std over `splits` chunks of exp(E_x KL(p(y|x) || p(y))), from N x C logits shuffled with `seed`.

    torch-fidelity feeds it the Inception logits without the final layer's bias ("logits_unbiased").
    """
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    if not 1 <= splits <= n:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} images, got {n}")
    logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        log_q = np.log(p[chunk].mean(axis=0, keepdims=True))
        # 0 log 0 = 0: a class whose probability underflows to 0 in a whole chunk adds nothing (not NaN)
        kl = np.where(p[chunk] > 0, p[chunk] * (log_p[chunk] - log_q), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
