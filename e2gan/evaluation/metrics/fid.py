"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID), as Clean-FID computes them.

FID is the Fréchet distance between Gaussians fitted to two sets of Inception features:

    FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b)

Clean-FID takes sqrt(S_a S_b) with `scipy.linalg.sqrtm`. Only its trace is needed, and that equals
the sum of the square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric, PSD), or, from
features, the nuclear norm of A B^T / sqrt((n_a - 1)(n_b - 1)) with A, B the centred features. Both
give the same number as sqrtm (tests check it against scipy), but sqrtm of a 2048x2048 product
takes about 24 s on one core here and loses digits when, as with ~100 images, the covariances are
singular; the SVD of the 100x100 product takes milliseconds and is exact.

KID is Clean-FID's `kernel_distance`: the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets of
min(n_a, n_b, max_subset_size) features each; we also report the standard deviation over subsets
and seed the subset draws so a report is reproducible. KID is unbiased (it can be slightly
negative) and more trustworthy than FID on ~100-image test sets: report both.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from e2gan.errors import E2GANError
from e2gan.evaluation.metrics.inception import cached_inception_features, inception_features

__all__ = ["inception_features", "frechet_distance", "frechet_distance_from_statistics",
           "kernel_inception_distance", "distribution_metrics", "feature_statistics"]


def _features(features: np.ndarray, name: str, minimum: int = 2) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise E2GANError(f"{name} must be a (N, D) feature array, got shape {array.shape}")
    if array.shape[0] < minimum:
        raise E2GANError(f"{name} has {array.shape[0]} samples; FID and KID need at least {minimum}")
    if not np.isfinite(array).all():
        raise E2GANError(f"{name} contains NaN or infinite values")
    return array


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, like numpy's `np.cov`) covariance of (N, D) features."""
    array = _features(features, "features")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_from_statistics(mu_a: np.ndarray, sigma_a: np.ndarray,
                                     mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b)."""
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    sigma_a, sigma_b = np.atleast_2d(sigma_a).astype(np.float64), np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise E2GANError(f"statistics of different sizes: {mu_a.shape} vs {mu_b.shape}")
    root_a = _psd_sqrt(sigma_a)
    # eigenvalues of sigma_a sigma_b = those of root_a sigma_b root_a (symmetric PSD)
    product = root_a @ sigma_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_sqrt)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two (N, D) feature sets (each N >= 2)."""
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise E2GANError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    (n_a, dim), n_b = a.shape, b.shape[0]
    if n_a * n_b > dim * dim:  # many samples: the D x D route is the cheaper one
        return frechet_distance_from_statistics(*feature_statistics(a), *feature_statistics(b))
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    # tr sqrt(S_a S_b) = sum of singular values of A B^T / sqrt((n_a - 1)(n_b - 1))
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    trace_sqrt /= np.sqrt((n_a - 1) * (n_b - 1))
    trace_a = (centred_a ** 2).sum() / (n_a - 1)
    trace_b = (centred_b ** 2).sum() / (n_b - 1)
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + trace_a + trace_b - 2 * trace_sqrt)


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray,
                              num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2, cubic polynomial kernel, as Clean-FID."""
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise E2GANError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if num_subsets < 1 or max_subset_size < 2:
        raise E2GANError("KID needs num_subsets >= 1 and max_subset_size >= 2")
    dim = a.shape[1]
    size = min(len(a), len(b), max_subset_size)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = b[rng.choice(len(b), size, replace=False)]
        y = a[rng.choice(len(a), size, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        across = (x @ y.T / dim + 1) ** 3
        mmd = (within.sum() - np.diag(within).sum()) / (size - 1) - across.sum() * 2 / size
        values.append(mmd / size)
    return float(np.mean(values)), float(np.std(values))


def distribution_metrics(generated: list[Image.Image], reference: list[Image.Image],
                         cache: bool = True, batch_size: int = 32, device: str = "cpu",
                         kid_subsets: int = 100, kid_subset_size: int = 1000,
                         seed: int = 0) -> dict:
    """FID and KID of `generated` against `reference` (e.g. teacher edits of held-out sources).

    The reference set's features are cached on disk by content when `cache` is true (it is the
    same across models judged on one dataset); the generated images' features never are.
    """
    if len(generated) < 2 or len(reference) < 2:
        raise E2GANError(f"FID/KID need at least 2 images on each side "
                         f"(got {len(generated)} generated, {len(reference)} reference)")
    if cache:
        reference_features, cached = cached_inception_features(reference, batch_size, device)
    else:
        reference_features, cached = inception_features(reference, batch_size, device), False
    generated_features = inception_features(generated, batch_size, device)
    kid, kid_std = kernel_inception_distance(generated_features, reference_features,
                                             num_subsets=kid_subsets,
                                             max_subset_size=kid_subset_size, seed=seed)
    return {"fid": frechet_distance(generated_features, reference_features),
            "kid": kid, "kid_std": kid_std, "images": len(generated),
            "reference_images": len(reference), "reference_cached": cached,
            "kid_subset_size": min(len(generated), len(reference), kid_subset_size)}
