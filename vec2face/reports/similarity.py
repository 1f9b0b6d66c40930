"""Exact nearest-neighbour cosine search at 10^5-10^6 vectors with bounded memory.

Every dataset-report statistic that compares identities (inter-class noise, identity
leakage) needs, for each query vector, its largest cosine similarity to a set of keys
and which key gives it. A full ``N x M`` similarity matrix of 300K x 300K float32 would
take 360 GB, so the search works on tiles: a ``(query_block, key_block)`` float32 product
lands in one reusable buffer and is reduced to row maxima before the next tile.

When the keys are the queries themselves (``keys=None``) the matrix is symmetric and
only the tiles on and above the diagonal are computed: each tile updates the maxima of
its rows (row reduction) and of its columns. Column ``argmax`` over a C-ordered tile is
slow in numpy, so a column whose tile maximum could beat its running best has its
argmax recomputed with a small ``(columns, query_block)`` product instead; after the first
row block such columns are rare. This halves the work of the self-search.

The search is exact: results equal a brute-force ``argmax`` over the full matrix up to
float32 rounding of the dot products. Ties resolve to the smallest key index.
"""

from __future__ import annotations

import numpy as np

from vec2face.errors import DataFormatError

__all__ = [
    "DEFAULT_KEY_BLOCK",
    "DEFAULT_QUERY_BLOCK",
    "max_cosine_blocked",
    "max_inner_product_blocked",
    "normalize_rows",
]

# A 4096 x 8192 float32 tile is 128 MiB: large enough for BLAS to run near peak,
# small enough that the search stays well inside a few GB next to the inputs.
DEFAULT_QUERY_BLOCK = 4096
DEFAULT_KEY_BLOCK = 8192
_NORM_CHUNK = 65536  # rows normalised at a time: bounds the float64 temporaries


def normalize_rows(x: np.ndarray, name: str = "features") -> np.ndarray:
    """L2-normalise the rows of a 2-D array into a new float32 array.

    Args:
        x: (N, D) numeric array.
        name: how error messages call the array (e.g. ``"centers"``).

    Returns:
        (N, D) float32 copy whose rows have unit norm.

    Raises:
        DataFormatError: not 2-D, empty, non-numeric, or rows that are not finite
            (NaN/inf) or have zero norm; the message counts them and names the first.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataFormatError(f"{name}: expected a 2-D array (N, D), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataFormatError(f"{name}: empty array of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataFormatError(f"{name}: expected numbers, got dtype {arr.dtype}")
    out = np.array(arr, dtype=np.float32, copy=True, order="C")
    bad_finite: list[np.ndarray] = []
    bad_zero: list[np.ndarray] = []
    for start in range(0, out.shape[0], _NORM_CHUNK):
        block = out[start : start + _NORM_CHUNK]
        # float64 sum of squares: float32 would overflow to inf for |values| > ~1e19.
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        finite = np.isfinite(norms)
        zero = norms == 0
        if not finite.all():
            bad_finite.append(start + np.flatnonzero(~finite))
        if zero.any():
            bad_zero.append(start + np.flatnonzero(zero))
        norms[~finite | zero] = 1.0
        block /= norms[:, None].astype(np.float32)
    if bad_finite:
        rows = np.concatenate(bad_finite)
        raise DataFormatError(
            f"{name}: {rows.size} row(s) hold NaN or inf values (first: row {rows[0]})"
        )
    if bad_zero:
        rows = np.concatenate(bad_zero)
        raise DataFormatError(
            f"{name}: {rows.size} row(s) have zero norm, so no cosine is defined "
            f"(first: row {rows[0]})"
        )
    return out


def _update(
    best: np.ndarray, arg: np.ndarray, where: np.ndarray | slice, vals: np.ndarray, idx: np.ndarray
) -> None:
    """Keep the larger value per position; on an exact tie keep the smaller index."""
    cur_v, cur_i = best[where], arg[where]
    take = (vals > cur_v) | ((vals == cur_v) & (idx < cur_i))
    cur_v[take] = vals[take]
    cur_i[take] = idx[take]
    best[where], arg[where] = cur_v, cur_i


def _check_blocks(query_block: int, key_block: int) -> None:
    if query_block < 1 or key_block < 1:
        raise ValueError(f"block sizes must be >= 1, got {query_block} and {key_block}")


def max_inner_product_blocked(
    queries: np.ndarray,
    keys: np.ndarray | None = None,
    exclude_self: bool = False,
    query_block: int = DEFAULT_QUERY_BLOCK,
    key_block: int = DEFAULT_KEY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest inner product of each query with any key, tile by tile.

    Use this on rows that are already L2-normalised float32 (see :func:`normalize_rows`)
    to avoid a copy; :func:`max_cosine_blocked` normalises first.

    Args:
        queries: (N, D) float32.
        keys: (M, D) float32, or None to search the queries themselves (symmetric path,
            half the work).
        exclude_self: skip the pair (i, i): query i never matches key i. Needs
            ``keys=None`` or M == N (row i of both is the same item).
        query_block: query rows per tile.
        key_block: key rows per tile; peak extra memory is about
            ``4 * query_block * key_block`` bytes.

    Returns:
        ``(max_sim, argmax)``: (N,) float32 and (N,) int64. A query with no admissible key
        (a single vector with ``exclude_self``) gets ``-inf`` and ``-1``.

    Raises:
        DataFormatError: mismatched dimensions, or ``exclude_self`` with M != N.
    """
    _check_blocks(query_block, key_block)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim != 2:
        raise DataFormatError(f"queries: expected a 2-D array (N, D), got shape {q.shape}")
    symmetric = keys is None or keys is queries
    k = q if symmetric else np.ascontiguousarray(keys, dtype=np.float32)
    if k.ndim != 2 or k.shape[1] != q.shape[1]:
        raise DataFormatError(
            f"keys: shape {k.shape} does not match the queries' dimension {q.shape[1]}"
        )
    if exclude_self and k.shape[0] != q.shape[0]:
        raise DataFormatError(
            f"exclude_self needs as many keys as queries, got {k.shape[0]} and {q.shape[0]}"
        )
    n = q.shape[0]
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    if n == 0 or k.shape[0] == 0:
        return best, arg
    buf = np.empty((min(query_block, n), min(key_block, k.shape[0])), dtype=np.float32)
    if symmetric:
        _symmetric_search(q, exclude_self, query_block, key_block, buf, best, arg)
    else:
        _cross_search(q, k, exclude_self, query_block, key_block, buf, best, arg)
    return best, arg


def _mask_diagonal(tile: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> None:
    """Set the entries (i, i) of the tile covering rows [r0, r1) x columns [c0, c1) to -inf."""
    lo, hi = max(r0, c0), min(r1, c1)
    if lo < hi:
        diag = np.arange(lo, hi)
        tile[diag - r0, diag - c0] = -np.inf


def _cross_search(q, k, exclude_self, query_block, key_block, buf, best, arg) -> None:
    n, m = q.shape[0], k.shape[0]
    for r0 in range(0, n, query_block):
        rows = q[r0 : min(n, r0 + query_block)]
        for c0 in range(0, m, key_block):
            _row_pass(rows, k[c0 : min(m, c0 + key_block)], r0, c0, exclude_self, buf, best, arg)


def _symmetric_search(x, exclude_self, query_block, key_block, buf, best, arg) -> None:
    n = x.shape[0]
    for r0 in range(0, n, query_block):
        r1 = min(n, r0 + query_block)
        rows = x[r0:r1]
        # Tiles start at the block's own first row: pairs (i, j) with j < r0 were seen
        # by an earlier row block through its column update.
        for c0 in range(r0, n, key_block):
            c1 = min(n, c0 + key_block)
            tile = _row_pass(rows, x[c0:c1], r0, c0, exclude_self, buf, best, arg)
            # Columns inside [r0, r1) are rows of this block: their row pass covers them.
            lo = max(c0, r1)
            if lo >= c1:
                continue
            col_max = tile[:, lo - c0 :].max(axis=0)
            cand = lo + np.flatnonzero(col_max >= best[lo:c1])
            if cand.size == 0:
                continue
            sub = x[cand] @ rows.T  # (candidates, rows): a row-wise argmax, which is fast
            sub_arg = sub.argmax(axis=1)
            sub_val = sub[np.arange(cand.size), sub_arg]
            _update(best, arg, cand, sub_val, sub_arg + r0)


def _row_pass(
    rows: np.ndarray,
    keys: np.ndarray,
    r0: int,
    c0: int,
    exclude_self: bool,
    buf: np.ndarray,
    best: np.ndarray,
    arg: np.ndarray,
) -> np.ndarray:
    """Score one tile and keep each row's best key.

    Args:
        rows: (r, D) queries r0..r0+r-1; keys: (c, D) keys c0..c0+c-1.
        buf: scratch of at least (r, c) that the tile is written into.
        best, arg: (N,) running maxima and their key indices, updated in place.

    Returns:
        The (r, c) tile of inner products (a view of ``buf``; -inf on the diagonal with
        ``exclude_self``).
    """
    r1, c1 = r0 + rows.shape[0], c0 + keys.shape[0]
    tile = buf[: r1 - r0, : c1 - c0]
    np.matmul(rows, keys.T, out=tile)
    if exclude_self:
        _mask_diagonal(tile, r0, r1, c0, c1)
    cols = tile.argmax(axis=1)
    vals = tile[np.arange(r1 - r0), cols]
    _update(best, arg, slice(r0, r1), vals, cols + c0)
    return tile


def max_cosine_blocked(
    queries: np.ndarray,
    keys: np.ndarray | None = None,
    exclude_self: bool = False,
    query_block: int = DEFAULT_QUERY_BLOCK,
    key_block: int = DEFAULT_KEY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest cosine similarity of each query to any key, and the key's index.

    Both sides are L2-normalised (as float32 copies) and searched tile by tile with
    :func:`max_inner_product_blocked`; memory is the two normalised copies plus one
    ``query_block x key_block`` float32 tile, never an N x M matrix.

    Args:
        queries: (N, D) vectors.
        keys: (M, D) vectors, or None (or the queries object itself) to search the
            queries against themselves with the symmetric half-work path.
        exclude_self: query i never matches key i (self-search without the trivial match).
        query_block: query rows per tile.
        key_block: key rows per tile.

    Returns:
        ``(max_sim, argmax)``: (N,) float32 cosines and (N,) int64 key indices
        (smallest index on exact ties).

    Raises:
        DataFormatError: bad shapes, mismatched dimensions, NaN/inf or zero-norm rows.
    """
    q = normalize_rows(queries, "queries")
    if keys is None or keys is queries:
        return max_inner_product_blocked(q, None, exclude_self, query_block, key_block)
    k = normalize_rows(keys, "keys")
    if k.shape[1] != q.shape[1]:
        raise DataFormatError(
            f"keys: dimension {k.shape[1]} does not match the queries' dimension {q.shape[1]}"
        )
    return max_inner_product_blocked(q, k, exclude_self, query_block, key_block)
