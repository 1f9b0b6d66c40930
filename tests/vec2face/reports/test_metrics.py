"""Dataset-quality metrics on hand-built cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vec2face.errors import DataFormatError
from vec2face.reports import (
    compare_rates,
    distribution_overlap,
    equal_error_rate,
    genuine_impostor,
    identity_centers,
    identity_leakage,
    identity_leakage_stream,
    inter_class_noise,
    intra_class_noise,
    metrics,
)
from vec2face.reports.metrics import _pair_sample, _triu_pair

# ------------------------------------------------------------------------------- EER


def test_eer_perfectly_separated_is_zero():
    res = equal_error_rate([0.6, 0.7, 0.9], [0.1, 0.2, 0.5])
    assert res.eer == 0.0
    assert 0.5 < res.threshold <= 0.6


def test_eer_identical_distributions_is_half():
    scores = np.linspace(-1, 1, 1000)
    assert equal_error_rate(scores, scores).eer == pytest.approx(0.5, abs=1e-3)


def test_eer_interpolates_between_bracketing_thresholds():
    # FAR(t) = share of impostors >= t, FRR(t) = share of genuine < t:
    #   t=0.5: FAR 1/2, FRR 1/3 (diff +1/6);  t=0.8: FAR 0, FRR 1/3 (diff -1/3).
    # The difference is 0 a third of the way: t = 0.6, where FAR = FRR = 1/3.
    res = equal_error_rate([0.4, 0.8, 0.9], [0.1, 0.5])
    assert res.eer == pytest.approx(1 / 3)
    assert res.threshold == pytest.approx(0.6)


def test_eer_exact_crossing_at_a_score():
    # t=0.6: FAR = 1/4 (0.7), FRR = 1/4 (0.2) -> exactly equal at a swept threshold.
    res = equal_error_rate([0.2, 0.6, 0.8, 0.9], [0.1, 0.3, 0.5, 0.7])
    assert res.eer == pytest.approx(0.25) and res.threshold == pytest.approx(0.6)


def test_eer_of_gaussians_matches_theory():
    rng = np.random.default_rng(0)
    res = equal_error_rate(rng.normal(1.0, 1.0, 20000), rng.normal(0.0, 1.0, 20000))
    theory = 0.5 * math.erfc(0.5 / math.sqrt(2))  # Phi(-0.5): the crossing is at t = 0.5
    assert res.eer == pytest.approx(theory, abs=0.01)
    assert res.threshold == pytest.approx(0.5, abs=0.05)


def test_eer_all_scores_equal_and_bad_input():
    assert equal_error_rate([0.5, 0.5], [0.5]).eer == pytest.approx(0.5)
    with pytest.raises(DataFormatError, match="genuine: no scores"):
        equal_error_rate([], [0.1])
    with pytest.raises(DataFormatError, match="impostor: 1 score"):
        equal_error_rate([0.1], [np.nan, 0.2])


def test_distribution_overlap():
    a = np.linspace(-0.9, 0.9, 500)
    assert distribution_overlap(a, a) == pytest.approx(1.0)
    assert distribution_overlap(a[a < 0], a[a > 0.1]) == 0.0
    # 1.0000001 (cosine rounding) is clipped into the last bin, not dropped.
    assert distribution_overlap([1.0000001], [0.999]) == pytest.approx(1.0)


# ----------------------------------------------------------------------- intra-class


def _intra_case():
    features = np.array(
        [
            [1, 0],
            [2, 0],
            [1, 0],
            [1, 0],
            [-1, 0],  # identity "a": center (1, 0), one at -1
            [0, 1],
            [0, 2],  # identity "b": both on the center
            [1, 1],
        ],  # identity "c": a single image
        dtype=np.float64,
    )
    labels = np.array(["a"] * 5 + ["b"] * 2 + ["c"])
    return features, labels


def test_intra_class_noise_counts_outliers_and_excludes_singletons():
    features, labels = _intra_case()
    res = intra_class_noise(features, labels, threshold=0.3)
    assert res.n_images == 8 and res.n_included == 7 and res.n_excluded_identities == 1
    assert res.n_outliers == 1 and res.outlier_rate == pytest.approx(1 / 7)
    np.testing.assert_allclose(res.cosines, [1, 1, 1, 1, -1, 1, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(res.included, [True] * 7 + [False])
    np.testing.assert_array_equal(res.identities, ["a", "b", "c"])
    np.testing.assert_array_equal(res.outliers_per_identity, [1, 0, 0])
    np.testing.assert_array_equal(res.images_per_identity, [5, 2, 1])
    assert res.summary()["identities_with_outliers"] == 1


def test_intra_class_noise_does_not_depend_on_row_order():
    features, labels = _intra_case()
    perm = np.random.default_rng(3).permutation(len(labels))
    ref = intra_class_noise(features, labels)
    res = intra_class_noise(features[perm], labels[perm])
    np.testing.assert_allclose(res.cosines, ref.cosines[perm], atol=1e-6)
    np.testing.assert_allclose(res.centers, ref.centers, atol=1e-6)


def test_intra_class_noise_bad_input():
    features, labels = _intra_case()
    bad = features.copy()
    bad[3] = 0.0
    with pytest.raises(DataFormatError, match=r"features: 1 row\(s\) have zero norm.*row 3"):
        intra_class_noise(bad, labels)
    bad[3] = np.nan
    with pytest.raises(DataFormatError, match="NaN or inf.*row 3"):
        intra_class_noise(bad, labels)
    with pytest.raises(DataFormatError, match="every identity has a single image"):
        intra_class_noise(np.eye(3), [0, 1, 2])
    with pytest.raises(DataFormatError, match="one label per feature row"):
        intra_class_noise(features, labels[:-1])
    with pytest.raises(DataFormatError, match="zero-norm center"):
        identity_centers(np.array([[1.0, 0.0], [-1.0, 0.0]]), [5, 5])


# ----------------------------------------------------------------------- inter-class


def test_inter_class_noise_small_case_all_pairs():
    centers = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    res = inter_class_noise(centers, threshold=0.7)
    np.testing.assert_allclose(res.max_cosine, [0.8, 0.8, 0.0, 0.6], atol=1e-6)
    np.testing.assert_array_equal(res.argmax, [1, 0, 0, 1])  # center 2 ties at 0: smallest index
    assert res.rate == 0.5 and res.n_flagged == 2
    assert not res.pairs_sampled and res.pair_cosines.shape == (6,)
    np.testing.assert_allclose(np.sort(res.pair_cosines), [0, 0, 0, 0, 0.6, 0.8], atol=1e-6)


def test_inter_class_noise_samples_pairs_with_a_seed():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((300, 16))
    a = inter_class_noise(centers, hist_pairs=500, seed=4)
    b = inter_class_noise(centers, hist_pairs=500, seed=4)
    c = inter_class_noise(centers, hist_pairs=500, seed=5)
    assert a.pairs_sampled and a.pair_cosines.shape == (500,)
    np.testing.assert_array_equal(a.pair_cosines, b.pair_cosines)
    assert not np.array_equal(a.pair_cosines, c.pair_cosines)
    assert a.pair_cosines.max() < 0.99  # no pair of a center with itself


def test_pair_sample_is_off_diagonal_and_uniform():
    i, j = _pair_sample(4, 60000, np.random.default_rng(0))
    assert not np.any(i == j)
    counts = np.bincount(i * 4 + j, minlength=16).reshape(4, 4)
    off = counts[~np.eye(4, dtype=bool)]
    np.testing.assert_allclose(off / 60000, 1 / 12, atol=0.006)


def test_inter_class_noise_needs_two_identities():
    with pytest.raises(DataFormatError, match="at least 2 identities, got 1"):
        inter_class_noise(np.ones((1, 8)))


# ------------------------------------------------------------------ genuine/impostor


def test_genuine_impostor_separated_identities():
    # Each identity's images lie on its own axis: genuine cosines are 1, impostor 0.
    labels = np.repeat([10, 20, 30], [4, 3, 2])
    features = np.eye(3)[np.searchsorted([10, 20, 30], labels)] * np.arange(1, 10)[:, None]
    res = genuine_impostor(features, labels, impostor_pairs=2000, seed=1)
    assert res.genuine.shape == (6 + 3 + 1,)
    np.testing.assert_allclose(res.genuine, 1.0, atol=1e-6)
    np.testing.assert_allclose(res.impostor, 0.0, atol=1e-6)  # never a same-identity pair
    assert res.eer == 0.0 and res.overlap == 0.0
    assert res.n_identities_with_pairs == 3 and res.n_capped_identities == 0


def test_genuine_pairs_equal_brute_force_and_cap():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(5), [6, 1, 4, 5, 3])
    features = rng.standard_normal((labels.size, 8))
    res = genuine_impostor(features, labels, impostor_pairs=100)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    brute = [
        unit[a] @ unit[b]
        for a in range(labels.size)
        for b in range(a + 1, labels.size)
        if labels[a] == labels[b]
    ]
    np.testing.assert_allclose(np.sort(res.genuine), np.sort(brute), atol=1e-6)
    capped = genuine_impostor(
        features, labels, impostor_pairs=100, max_genuine_pairs_per_identity=5
    )
    assert capped.genuine.shape == (5 + 0 + 5 + 5 + 3,)  # 15, 0, 6, 10, 3 pairs capped at 5
    assert capped.n_capped_identities == 3
    assert np.isin(capped.genuine, res.genuine).all()  # a subset, not new pairs


@pytest.mark.parametrize("k", [2, 3, 9, 1000])
def test_triu_pair_decodes_like_triu_indices(k):
    iu, ju = np.triu_indices(k, k=1)
    i, j = _triu_pair(np.arange(iu.size), k)
    np.testing.assert_array_equal(i, iu)
    np.testing.assert_array_equal(j, ju)


def test_huge_identities_take_the_pairwise_path(monkeypatch):
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(4), [7, 2, 5, 6])
    features = rng.standard_normal((labels.size, 8))
    gram = genuine_impostor(features, labels, impostor_pairs=50, seed=9)
    monkeypatch.setattr(metrics, "_GRAM_MAX_IMAGES", 3)
    pairwise = genuine_impostor(features, labels, impostor_pairs=50, seed=9)
    np.testing.assert_allclose(pairwise.genuine, gram.genuine, atol=1e-6)
    capped = genuine_impostor(features, labels, 50, max_genuine_pairs_per_identity=4, seed=9)
    assert capped.genuine.shape == (4 + 1 + 4 + 4,)
    assert np.isin(np.round(capped.genuine, 5), np.round(gram.genuine, 5)).all()


def test_impostor_pairs_are_uniform_over_different_identity_pairs():
    # Identities of 1, 2 and 7 images on unit vectors at 0, 40 and 100 degrees: each
    # identity pair has its own cosine. Ordered impostor pairs: 2*1*2, 2*1*7, 2*2*7 of 46.
    angles = np.deg2rad([0, 40, 100])
    labels = np.repeat([0, 1, 2], [1, 2, 7])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)[labels]
    res = genuine_impostor(features, labels, impostor_pairs=30000, seed=3)
    expected = {
        np.cos(angles[1] - angles[0]): 4 / 46,
        np.cos(angles[2] - angles[0]): 14 / 46,
        np.cos(angles[2] - angles[1]): 28 / 46,
    }
    for cosine, share in expected.items():
        assert np.mean(np.isclose(res.impostor, cosine, atol=1e-5)) == pytest.approx(
            share, abs=0.015
        )


def test_genuine_impostor_bad_input():
    with pytest.raises(DataFormatError, match="at least 2 identities"):
        genuine_impostor(np.ones((3, 2)), [1, 1, 1])
    with pytest.raises(DataFormatError, match="no genuine pair"):
        genuine_impostor(np.eye(3), [1, 2, 3])


# --------------------------------------------------------------------------- leakage


def test_identity_leakage_small_case():
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    centers = np.array([[0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    res = identity_leakage(centers, reference, threshold=0.7)
    np.testing.assert_allclose(res.max_cosine, [0.8, 0.8, 0.0], atol=1e-6)
    np.testing.assert_array_equal(res.argmax, [0, 1, 1])
    assert res.rate == pytest.approx(2 / 3) and res.n_leaked == 2 and res.n_reference == 2


def test_identity_leakage_stream_equals_one_call_and_is_lazy():
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((200, 16))
    centers = reference[rng.integers(0, 200, 500)] + 0.9 * rng.standard_normal((500, 16))
    whole = identity_leakage(centers, reference)
    pulled = []

    def chunks():
        for s in range(0, 500, 90):
            pulled.append(s)
            yield centers[s : s + 90]
        yield np.empty((0, 16))

    streamed = identity_leakage_stream(chunks(), reference)
    assert pulled == list(range(0, 500, 90))
    np.testing.assert_allclose(streamed.max_cosine, whole.max_cosine, atol=1e-6)
    np.testing.assert_array_equal(streamed.argmax, whole.argmax)
    assert streamed.n_queries == 500 and 0 < whole.rate < 1 and streamed.rate == whole.rate


def test_identity_leakage_bad_input():
    reference = np.eye(4)
    with pytest.raises(
        DataFormatError, match="chunk 1: dimension 3 does not match reference_centers dimension 4"
    ):
        identity_leakage_stream([np.ones((2, 4)), np.ones((2, 3))], reference)
    with pytest.raises(DataFormatError, match="no query center"):
        identity_leakage_stream([], reference)
    with pytest.raises(DataFormatError, match="^centers: dimension 3 does not match"):
        identity_leakage(np.ones((2, 3)), reference)
    with pytest.raises(DataFormatError, match="reference_centers: 1 row"):
        identity_leakage(np.ones((2, 4)), np.vstack([reference, np.zeros(4)]))


# ----------------------------------------------------------------------------- compare_rates


def test_compare_rates_hand_made_margin():
    # 10 of 100 flagged against 10 of 100: no difference, a margin around 0.07
    same = np.r_[np.ones(10), np.zeros(90)]
    result = compare_rates(same, same, seed=0)
    assert result.observed == result.reference == 0.1 and result.passed
    # binomial sd of a difference of two 0.1 rates over 100 units: sqrt(2 * 0.09 / 100) = 0.042;
    # the one-sided 95% point is 1.645 sd
    assert result.margin == pytest.approx(1.645 * 0.0424, abs=0.01)


def test_compare_rates_difference_inside_the_margin_passes_outside_fails():
    reference = np.r_[np.ones(10), np.zeros(90)]
    inside = np.r_[np.ones(14), np.zeros(86)]  # +0.04: within seed noise at 100 identities
    outside = np.r_[np.ones(30), np.zeros(70)]  # +0.20: far beyond it
    assert compare_rates(inside, reference).passed
    failed = compare_rates(outside, reference)
    assert not failed.passed and failed.observed - failed.reference > failed.margin
    # lower rates always pass; more units shrink the margin
    assert compare_rates(np.zeros(100), reference).passed
    big = compare_rates(np.tile(inside, 100), np.tile(reference, 100))
    assert not big.passed and big.margin < 0.01


def test_compare_rates_is_seeded_and_checks_its_input():
    a, b = np.r_[np.ones(5), np.zeros(20)], np.r_[np.ones(3), np.zeros(30)]
    assert compare_rates(a, b, seed=3) == compare_rates(a, b, seed=3)
    with pytest.raises(ValueError, match="at least one unit"):
        compare_rates(np.array([]), b)
    with pytest.raises(ValueError, match="level"):
        compare_rates(a, b, level=1.0)
