"""Blocked max-cosine search: exact against brute force, ties, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vec2face.errors import DataFormatError
from vec2face.reports import max_cosine_blocked, max_inner_product_blocked, normalize_rows


def _brute(q: np.ndarray, k: np.ndarray, exclude_self: bool) -> np.ndarray:
    sims = normalize_rows(q).astype(np.float64) @ normalize_rows(k).astype(np.float64).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    return sims


def _assert_matches(max_sim: np.ndarray, arg: np.ndarray, sims: np.ndarray) -> None:
    np.testing.assert_allclose(max_sim, sims.max(axis=1), atol=2e-6)
    top2 = np.sort(sims, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5  # argmax is only defined where there is no near-tie
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(arg[clear], sims.argmax(axis=1)[clear])


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    rng = np.random.default_rng(7)
    # Clustered, so maxima are well above the bulk and tiles disagree about who wins.
    means = rng.standard_normal((40, 48))
    return (means[rng.integers(0, 40, 1500)] + 0.8 * rng.standard_normal((1500, 48))).astype(
        np.float32
    )


@pytest.mark.parametrize("exclude_self", [True, False])
def test_symmetric_search_equals_brute_force(vectors, exclude_self):
    max_sim, arg = max_cosine_blocked(vectors, None, exclude_self, query_block=257, key_block=611)
    sims = _brute(vectors, vectors, exclude_self)
    if exclude_self:
        _assert_matches(max_sim, arg, sims)
    else:
        np.testing.assert_allclose(max_sim, 1.0, atol=2e-6)


def test_cross_search_equals_brute_force(vectors):
    queries, keys = vectors[:600] * 3.0, vectors[600:]
    max_sim, arg = max_cosine_blocked(queries, keys, query_block=100, key_block=333)
    _assert_matches(max_sim, arg, _brute(queries, keys, False))


def test_cross_search_with_exclude_self_equals_symmetric(vectors):
    copy = vectors.copy()  # a different object: the cross path with its diagonal masked
    cross = max_cosine_blocked(vectors, copy, exclude_self=True, query_block=300, key_block=256)
    sym = max_cosine_blocked(vectors, None, exclude_self=True, query_block=300, key_block=256)
    np.testing.assert_allclose(cross[0], sym[0], atol=2e-6)
    _assert_matches(*cross, _brute(vectors, vectors, True))


def test_ties_resolve_to_smallest_index_across_tiles():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 8)).astype(np.float32)
    x[[2, 7, 11]] = x[2]  # three identical rows in three different tiles
    max_sim, arg = max_inner_product_blocked(
        normalize_rows(x), None, True, query_block=4, key_block=3
    )
    assert arg[2] == 7 and arg[7] == 2 and arg[11] == 2
    np.testing.assert_allclose(max_sim[[2, 7, 11]], 1.0, atol=1e-6)
    keys = normalize_rows(x)
    _, arg_cross = max_inner_product_blocked(keys[[2]], keys, query_block=1, key_block=2)
    assert arg_cross[0] == 2


def test_single_vector_without_self_has_no_match():
    max_sim, arg = max_cosine_blocked(np.ones((1, 4)), None, exclude_self=True)
    assert max_sim[0] == -np.inf and arg[0] == -1


def test_normalize_rows_handles_huge_values_and_rejects_bad_rows():
    out = normalize_rows(np.array([[1e30, 1e30], [3.0, 4.0]]))
    np.testing.assert_allclose(out, [[2**-0.5, 2**-0.5], [0.6, 0.8]], rtol=1e-6)
    with pytest.raises(
        DataFormatError, match=r"1 row\(s\) hold NaN or inf values \(first: row 1\)"
    ):
        normalize_rows(np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(DataFormatError, match=r"keys: 2 row\(s\) have zero norm.*first: row 0"):
        normalize_rows(np.zeros((2, 3)), "keys")
    with pytest.raises(DataFormatError, match="expected a 2-D array"):
        normalize_rows(np.ones(3))


def test_mismatched_dimensions_and_sizes_are_errors():
    with pytest.raises(DataFormatError, match="dimension 3 does not match"):
        max_cosine_blocked(np.ones((2, 4)), np.ones((2, 3)))
    with pytest.raises(DataFormatError, match="exclude_self needs as many keys"):
        max_cosine_blocked(np.eye(3), np.eye(3)[:2], exclude_self=True)
    with pytest.raises(ValueError, match="block sizes"):
        max_inner_product_blocked(np.eye(3, dtype=np.float32), query_block=0)
