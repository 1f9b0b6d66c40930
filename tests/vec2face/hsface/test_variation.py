"""Intra-class variation: sigma proportions, norm preservation, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

from vec2face.errors import ConfigError
from vec2face.hsface import (
    intra_class_batch,
    intra_class_vectors,
    sigma_counts,
    variation_rng,
)


@pytest.mark.parametrize("n,expected", [
    (50, [20, 20, 10]), (7, [3, 3, 1]), (3, [1, 1, 1]), (1, [1, 0, 0]), (13, [5, 5, 3])])
def test_sigma_counts_round_and_sum_to_n(n, expected):
    counts = sigma_counts(n)
    assert counts.tolist() == expected and counts.sum() == n


def test_vectors_keep_the_norm_and_the_sigma_shares():
    v = np.random.default_rng(0).standard_normal(512) * 1.7
    vec, sigma = intra_class_vectors(v, rng=np.random.default_rng(1))
    assert vec.shape == (50, 512) and vec.dtype == np.float32 and sigma.shape == (50,)
    norms = np.linalg.norm(vec.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(v), rtol=1e-6)
    assert [int((sigma == s).sum()) for s in (0.3, 0.5, 0.7)] == [20, 20, 10]
    assert not np.array_equal(sigma, np.sort(sigma))  # shuffled


def test_noise_is_in_rms_units_of_the_vector():
    # at the official feature scale (|v|^2 = d: unit-variance components) the noise is the
    # official N(0, s^2 I): expected cosine to v about 1/sqrt(1 + s^2)
    rng = np.random.default_rng(2)
    v = rng.standard_normal(512)
    v *= np.sqrt(512) / np.linalg.norm(v)
    vec, sigma = intra_class_vectors(v, n_images=600, rng=np.random.default_rng(3))
    cos = vec.astype(np.float64) @ v / (np.linalg.norm(vec, axis=1) * np.linalg.norm(v))
    for s in (0.3, 0.5, 0.7):
        assert cos[sigma == s].mean() == pytest.approx(1 / np.sqrt(1 + s * s), abs=0.01)
    # exactly v + s * N(0, I) there, rescaled to |v|
    draw = np.random.default_rng(5)
    one, s1 = intra_class_vectors(v, n_images=5, rng=np.random.default_rng(5))
    s_draw = np.repeat([0.3, 0.5, 0.7], [2, 2, 1])
    draw.shuffle(s_draw)
    manual = v + s_draw[:, None] * draw.standard_normal((5, 512))
    manual *= np.linalg.norm(v) / np.linalg.norm(manual, axis=1, keepdims=True)
    np.testing.assert_array_equal(s1, s_draw)
    np.testing.assert_allclose(one, manual, rtol=1e-5, atol=1e-5)
    # the same direction as an L2-normalised feature (norm 1) is perturbed as much: the
    # cosines do not depend on the scale (unscaled noise would leave a cosine of ~0.15)
    unit, _ = intra_class_vectors(v / np.sqrt(512), n_images=600, rng=np.random.default_rng(3))
    unit_cos = unit.astype(np.float64) @ v / (np.linalg.norm(unit, axis=1) * np.linalg.norm(v))
    np.testing.assert_allclose(unit_cos, cos, atol=1e-5)


def test_same_rng_seed_same_bytes():
    v = np.arange(1, 17, dtype=np.float64)
    a = intra_class_vectors(v, n_images=10, rng=5)
    b = intra_class_vectors(v, n_images=10, rng=np.random.default_rng(5))
    c = intra_class_vectors(v, n_images=10, rng=6)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_batch_equals_per_identity_calls_and_ignores_sharding():
    ids = np.random.default_rng(3).standard_normal((6, 32)).astype(np.float32)
    vec, sigma = intra_class_batch(ids, n_images=9, seed=11)
    assert vec.shape == (6, 9, 32) and sigma.shape == (6, 9)
    for i in range(6):
        one, s = intra_class_vectors(ids[i], n_images=9, rng=variation_rng(11, i))
        np.testing.assert_array_equal(vec[i], one)
        np.testing.assert_array_equal(sigma[i], s)
    shard, shard_sigma = intra_class_batch(ids[3:], n_images=9, seed=11,
                                           identity_indices=range(3, 6))
    np.testing.assert_array_equal(shard, vec[3:])
    np.testing.assert_array_equal(shard_sigma, sigma[3:])


def test_custom_sigmas_and_proportions():
    vec, sigma = intra_class_vectors(np.ones(8), n_images=4, sigmas=(0.0, 1.0),
                                     proportions=(0.5, 0.5), rng=0)
    assert sorted(sigma.tolist()) == [0.0, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(vec[sigma == 0.0], 1.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"identity": np.zeros(8)}, "zero vector"),
    ({"identity": np.full(8, np.nan)}, "NaN or inf"),
    ({"identity": np.ones((2, 8))}, "1-D"),
    ({"n_images": 0}, "positive integer, got 0"),
    ({"proportions": (0.5, 0.4, 0.2)}, "sum to 1"),
    ({"sigmas": (0.3, 0.5)}, "differ in length"),
    ({"sigmas": (0.3, -0.5, 0.7)}, "non-negative"),
])
def test_bad_input_is_a_clear_error(kwargs, match):
    args = {"identity": np.ones(8), "n_images": 5} | kwargs
    with pytest.raises(ConfigError, match=match):
        intra_class_vectors(**args, rng=0)


def test_batch_rejects_mismatched_indices():
    with pytest.raises(ConfigError, match="identity_indices must have shape"):
        intra_class_batch(np.ones((3, 4)), n_images=2, seed=0, identity_indices=[0, 1])
