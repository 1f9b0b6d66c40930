"""Dataset-quality metrics of a face-recognition training set (Vec2Face appendix A.3/A.4/A.8).

Pure functions on arrays: features come from an FR model (the judge, never the
teacher; see the design brief 3.1b) and loading/inference happen elsewhere. Each
function returns a small frozen dataclass holding the headline rate(s), the per-item
values behind them and a ``summary()`` of JSON-ready scalars.

Conventions shared by every function:

- features and centers are L2-normalised here; an identity center is the mean of its
  images' normalised features, normalised again;
- a row with NaN/inf values or zero norm raises :class:`~vec2face.errors.DataFormatError`
  naming the array and the first bad row (a cosine is undefined, and silently dropping
  images would bias the rates);
- identities with a single image cannot show intra-class variation (the image *is* its
  center, cosine 1): they are excluded from intra-class and genuine statistics and the
  exclusion is counted in the result;
- every random sample takes a ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from vec2face.errors import DataFormatError
from vec2face.reports.similarity import (
    DEFAULT_KEY_BLOCK,
    DEFAULT_QUERY_BLOCK,
    max_inner_product_blocked,
    normalize_rows,
)

__all__ = [
    "EqualErrorRate",
    "GenuineImpostor",
    "IdentityCenters",
    "IdentityLeakage",
    "InterClassNoise",
    "IntraClassNoise",
    "RateComparison",
    "compare_rates",
    "distribution_overlap",
    "equal_error_rate",
    "genuine_impostor",
    "identity_centers",
    "identity_leakage",
    "identity_leakage_stream",
    "inter_class_noise",
    "intra_class_noise",
]

_ROW_CHUNK = 4096  # rows per row-wise dot chunk: small gathered copies reuse warm memory
OVERLAP_BINS = 200
_GRAM_MAX_IMAGES = 4096  # larger identities get their genuine pairs without a k x k matrix


def _rowwise_dot(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Dot products ``a[ia[t]] . b[ib[t]]`` for every t, chunked.

    Args:
        a: (Na, D); b: (Nb, D); ia, ib: (T,) row indices.

    Returns:
        (T,) float32.
    """
    out = np.empty(ia.shape[0], dtype=np.float32)
    for s in range(0, ia.shape[0], _ROW_CHUNK):
        e = s + _ROW_CHUNK
        out[s:e] = np.einsum("ij,ij->i", a[ia[s:e]], b[ib[s:e]])
    return out


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise DataFormatError(
            f"labels: expected one label per feature row ({n}), got shape {lab.shape}"
        )
    return lab


@dataclass(frozen=True, eq=False)
class IdentityCenters:
    """Identity centers of a labelled feature set.

    Attributes:
        identities: (C,) the distinct labels, sorted.
        centers: (C, D) float32 unit-norm centers, row c for ``identities[c]``.
        counts: (C,) images per identity.
        inverse: (N,) row of each image's identity in ``identities``.
    """

    identities: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray


def identity_centers(
    features: np.ndarray, labels: np.ndarray, normalized: bool = False
) -> IdentityCenters:
    """Normalised mean of each identity's normalised features.

    Args:
        features: (N, D) image features (any scale).
        labels: (N,) identity label per row (ints or strings; any order).
        normalized: the rows are already unit-norm float32 (skips a copy).

    Returns:
        An :class:`IdentityCenters`.

    Raises:
        DataFormatError: bad shapes, NaN/inf or zero-norm rows, or an identity whose
            features cancel out (zero-norm center).
    """
    x = np.ascontiguousarray(features, dtype=np.float32) if normalized else normalize_rows(features)
    lab = _check_labels(labels, x.shape[0])
    identities, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n, c = x.shape[0], identities.shape[0]
    # A sparse one-hot (C, N) product sums each identity's rows without sorting or copying x.
    onehot = sp.csr_matrix((np.ones(n, dtype=np.float32), (inverse, np.arange(n))), shape=(c, n))
    sums = np.asarray(onehot @ x, dtype=np.float32)
    norms = np.linalg.norm(sums, axis=1)
    zero = np.flatnonzero(~(norms > 0))
    if zero.size:
        raise DataFormatError(
            f"features: identity {identities[zero[0]]!r} has a zero-norm center "
            f"(its features cancel out); {zero.size} such identities"
        )
    return IdentityCenters(identities, sums / norms[:, None], counts, inverse)


# --------------------------------------------------------------------------- intra-class


@dataclass(frozen=True, eq=False)
class IntraClassNoise:
    """Intra-class noise: images far from their identity center (appendix A.3).

    Attributes:
        threshold: an image with cosine to its center below this is an outlier.
        outlier_rate: outliers / included images.
        n_images: all images given.
        n_included: images of identities with >= 2 images (the rate's denominator).
        n_outliers: outlier images.
        n_identities: distinct identities.
        n_excluded_identities: identities with a single image (excluded).
        identities: (C,) labels, sorted.
        cosines: (N,) float32 cosine of each image to its identity center (1 for the
            excluded single-image identities; see ``included``).
        included: (N,) bool, False for images of single-image identities.
        outliers_per_identity: (C,) outlier count per identity.
        images_per_identity: (C,) image count per identity.
        centers: (C, D) float32 unit-norm identity centers (reuse them for inter-class
            noise and leakage).
    """

    threshold: float
    outlier_rate: float
    n_images: int
    n_included: int
    n_outliers: int
    n_identities: int
    n_excluded_identities: int
    identities: np.ndarray
    cosines: np.ndarray
    included: np.ndarray
    outliers_per_identity: np.ndarray
    images_per_identity: np.ndarray
    centers: np.ndarray

    @property
    def included_cosines(self) -> np.ndarray:
        """(n_included,) the cosines the rate is computed from (for histograms)."""
        return self.cosines[self.included]

    def summary(self) -> dict[str, float | int]:
        """JSON-ready scalars."""
        return {
            "threshold": self.threshold,
            "outlier_rate": self.outlier_rate,
            "n_images": self.n_images,
            "n_included": self.n_included,
            "n_outliers": self.n_outliers,
            "n_identities": self.n_identities,
            "n_excluded_identities": self.n_excluded_identities,
            "identities_with_outliers": int(np.count_nonzero(self.outliers_per_identity)),
            "mean_cosine": float(self.included_cosines.mean()),
        }


def intra_class_noise(
    features: np.ndarray, labels: np.ndarray, threshold: float = 0.3
) -> IntraClassNoise:
    """Share of images whose feature has cosine < ``threshold`` to its identity center.

    Args:
        features: (N, D) image features; L2-normalised here.
        labels: (N,) identity label per image.
        threshold: outlier cut (0.3 in the paper, appendix A.3).

    Returns:
        An :class:`IntraClassNoise`. Identities with one image are excluded from the rate
        (their cosine to themselves is 1) and counted in ``n_excluded_identities``.

    Raises:
        DataFormatError: bad shapes, NaN/inf or zero-norm features, or no identity with
            at least two images.
    """
    x = normalize_rows(features)
    ic = identity_centers(x, labels, normalized=True)
    cos = _rowwise_dot(x, np.arange(x.shape[0]), ic.centers, ic.inverse)
    included = ic.counts[ic.inverse] >= 2
    n_included = int(included.sum())
    if n_included == 0:
        raise DataFormatError(
            "labels: every identity has a single image; intra-class noise needs identities "
            "with at least two images"
        )
    outlier = included & (cos < threshold)
    per_id = np.bincount(ic.inverse, weights=outlier, minlength=ic.identities.shape[0])
    return IntraClassNoise(
        threshold=float(threshold),
        outlier_rate=float(outlier.sum() / n_included),
        n_images=int(x.shape[0]),
        n_included=n_included,
        n_outliers=int(outlier.sum()),
        n_identities=int(ic.identities.shape[0]),
        n_excluded_identities=int(np.count_nonzero(ic.counts < 2)),
        identities=ic.identities,
        cosines=cos,
        included=included,
        outliers_per_identity=per_id.astype(np.int64),
        images_per_identity=ic.counts,
        centers=ic.centers,
    )


# --------------------------------------------------------------------------- inter-class


@dataclass(frozen=True, eq=False)
class InterClassNoise:
    """Inter-class noise: identity centers so close they are the same person (appendix A.4).

    Attributes:
        threshold: two centers with cosine above this are one person (WebFace260M's
            merge rule, 0.7).
        rate: share of identities whose nearest other center has cosine > threshold.
        n_identities: number of centers.
        n_flagged: identities counted in the rate.
        max_cosine: (C,) float32 largest cosine of each center to any other center.
        argmax: (C,) int64 row of that other center.
        pair_cosines: (P,) float32 cosines of center pairs (i != j) for the histogram:
            all unordered pairs when there are at most ``hist_pairs`` of them, else a
            uniform seeded sample (with replacement) of ``hist_pairs`` pairs.
        pairs_sampled: True when ``pair_cosines`` is a sample.
    """

    threshold: float
    rate: float
    n_identities: int
    n_flagged: int
    max_cosine: np.ndarray
    argmax: np.ndarray
    pair_cosines: np.ndarray
    pairs_sampled: bool

    def summary(self) -> dict[str, float | int | bool]:
        """JSON-ready scalars."""
        return {
            "threshold": self.threshold,
            "rate": self.rate,
            "n_identities": self.n_identities,
            "n_flagged": self.n_flagged,
            "mean_max_cosine": float(self.max_cosine.mean()),
            "mean_pair_cosine": float(self.pair_cosines.mean()),
            "n_pairs_in_histogram": int(self.pair_cosines.shape[0]),
            "pairs_sampled": self.pairs_sampled,
        }


def _pair_sample(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniform sample (with replacement) of ordered pairs (i, j), i != j, of range(n)."""
    i = rng.integers(0, n, size=size)
    j = rng.integers(0, n - 1, size=size)
    j += j >= i  # skip the diagonal: j is uniform over the n - 1 others
    return i, j


def inter_class_noise(
    centers: np.ndarray,
    threshold: float = 0.7,
    hist_pairs: int = 1_000_000,
    seed: int = 0,
    query_block: int = DEFAULT_QUERY_BLOCK,
    key_block: int = DEFAULT_KEY_BLOCK,
) -> InterClassNoise:
    """Share of identities with another identity center at cosine > ``threshold``.

    The nearest other center of every center is found exactly with the blocked symmetric
    search (:func:`~vec2face.reports.similarity.max_inner_product_blocked`), never an
    N x N matrix: 300K 512-d centers take about 1 GB.

    Args:
        centers: (C, D) identity centers (e.g. ``IntraClassNoise.centers``); normalised here.
        threshold: merge threshold (0.7, WebFace260M).
        hist_pairs: most pair cosines kept for the histogram.
        seed: seeds the pair sample.
        query_block: tile rows of the search.
        key_block: tile columns of the search.

    Returns:
        An :class:`InterClassNoise`.

    Raises:
        DataFormatError: fewer than two centers, bad shapes, NaN/inf or zero-norm rows.
        ValueError: ``hist_pairs`` < 1.
    """
    if hist_pairs < 1:
        raise ValueError(f"hist_pairs must be >= 1, got {hist_pairs}")
    c = normalize_rows(centers, "centers")
    n = c.shape[0]
    if n < 2:
        raise DataFormatError(f"centers: inter-class noise needs at least 2 identities, got {n}")
    max_sim, arg = max_inner_product_blocked(c, None, True, query_block, key_block)
    flagged = max_sim > threshold
    n_pairs = n * (n - 1) // 2
    sampled = n_pairs > hist_pairs
    if sampled:
        i, j = _pair_sample(n, hist_pairs, np.random.default_rng(seed))
    else:
        i, j = np.triu_indices(n, k=1)
    return InterClassNoise(
        threshold=float(threshold),
        rate=float(flagged.mean()),
        n_identities=int(n),
        n_flagged=int(flagged.sum()),
        max_cosine=max_sim,
        argmax=arg,
        pair_cosines=_rowwise_dot(c, i, c, j),
        pairs_sampled=bool(sampled),
    )


# ------------------------------------------------------------------------ genuine/impostor


@dataclass(frozen=True)
class EqualErrorRate:
    """The point where false accepts and false rejects are equally frequent.

    Attributes:
        eer: the common value of FAR and FRR at the crossing, in [0, 1].
        threshold: the score threshold of the crossing (accept when score >= threshold).
    """

    eer: float
    threshold: float


def _check_scores(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x).reshape(-1)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)  # float32 stays float32: genuine sets can be ~10^8 scores
    if arr.size == 0:
        raise DataFormatError(f"{name}: no scores")
    if not np.isfinite(arr).all():
        raise DataFormatError(f"{name}: {int((~np.isfinite(arr)).sum())} score(s) are NaN or inf")
    return arr


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> EqualErrorRate:
    """Equal Error Rate of similarity scores, interpolated at the FAR = FRR crossing.

    A pair is accepted when its score is >= t. ``FAR(t)`` = share of impostor scores >= t,
    ``FRR(t)`` = share of genuine scores < t; FAR falls and FRR rises with t. The sweep
    evaluates both at every distinct score of the union (plus one value just above the
    maximum, where FAR = 0 and FRR = 1), finds the first threshold where
    ``FAR - FRR <= 0`` and interpolates linearly between it and the previous threshold
    to where ``FAR - FRR`` is exactly 0; the EER is FAR (= FRR) there. If the difference
    is exactly 0 at a swept threshold, that threshold and value are returned as they are
    (the lowest such threshold).

    Args:
        genuine: (G,) scores of same-identity pairs (higher = more similar).
        impostor: (I,) scores of different-identity pairs.

    Returns:
        An :class:`EqualErrorRate`.

    Raises:
        DataFormatError: an empty array or NaN/inf scores.
    """
    g = np.sort(_check_scores(genuine, "genuine"))
    imp = np.sort(_check_scores(impostor, "impostor"))
    thr = np.unique(np.concatenate([g, imp]))
    thr = np.append(thr, np.nextafter(thr[-1], np.inf))
    far = (imp.size - np.searchsorted(imp, thr, side="left")) / imp.size
    frr = np.searchsorted(g, thr, side="left") / g.size
    diff = far - frr  # 1 at the smallest score (FAR = 1, FRR = 0), -1 at the sentinel
    k = int(np.argmax(diff <= 0))
    if diff[k] == 0 or k == 0:
        return EqualErrorRate(float(far[k]), float(thr[k]))
    alpha = diff[k - 1] / (diff[k - 1] - diff[k])
    eer = far[k - 1] + alpha * (far[k] - far[k - 1])
    t = thr[k - 1] + alpha * (thr[k] - thr[k - 1])
    return EqualErrorRate(float(eer), float(t))


def distribution_overlap(
    a: np.ndarray,
    b: np.ndarray,
    bins: int = OVERLAP_BINS,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> float:
    """Overlap area of two score distributions on a fixed histogram grid.

    Both samples are binned into ``bins`` equal bins over ``value_range`` (values outside
    are clipped into the end bins, so cosine rounding just above 1 still counts) and
    turned into probability masses; the overlap is ``sum_b min(p_a[b], p_b[b])``, i.e.
    ``1 - total variation distance``: 0 for disjoint supports, 1 for identical histograms.

    Args:
        a: (Na,) scores; b: (Nb,) scores.
        bins: number of bins.
        value_range: the grid's (low, high).

    Returns:
        The overlap in [0, 1].
    """
    lo, hi = value_range
    ha, _ = np.histogram(np.clip(a, lo, hi), bins=bins, range=(lo, hi))
    hb, _ = np.histogram(np.clip(b, lo, hi), bins=bins, range=(lo, hi))
    return float(np.minimum(ha / ha.sum(), hb / hb.sum()).sum())


@dataclass(frozen=True, eq=False)
class GenuineImpostor:
    """Genuine and impostor similarity distributions and how far apart they are.

    Attributes:
        genuine: (G,) float32 cosines of same-identity image pairs (i < j).
        impostor: (I,) float32 cosines of sampled different-identity image pairs.
        overlap: :func:`distribution_overlap` of the two (grid of ``overlap_bins`` bins
            over [-1, 1]).
        eer: :func:`equal_error_rate` of the two.
        eer_threshold: the cosine at the EER.
        n_identities_with_pairs: identities with >= 2 images (the others give no pair).
        n_capped_identities: identities whose genuine pairs were subsampled to the cap.
        overlap_bins: bins of the overlap grid.
    """

    genuine: np.ndarray
    impostor: np.ndarray
    overlap: float
    eer: float
    eer_threshold: float
    n_identities_with_pairs: int
    n_capped_identities: int
    overlap_bins: int

    def summary(self) -> dict[str, float | int]:
        """JSON-ready scalars."""
        return {
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "overlap": self.overlap,
            "n_genuine_pairs": int(self.genuine.shape[0]),
            "n_impostor_pairs": int(self.impostor.shape[0]),
            "genuine_mean": float(self.genuine.mean()),
            "impostor_mean": float(self.impostor.mean()),
            "n_identities_with_pairs": self.n_identities_with_pairs,
            "n_capped_identities": self.n_capped_identities,
        }


def _triu_pair(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the p-th entry (row-major) of the strict upper triangle of k x k.

    Args:
        p: (T,) int linear indices in [0, k(k-1)/2), as ``np.triu_indices(k, 1)`` orders them.
        k: matrix size.

    Returns:
        ``(i, j)``: (T,) int64 each, with i < j.
    """
    p = np.asarray(p, dtype=np.int64)
    # Row i starts at offset i*k - i(i+1)/2; invert that quadratic, then fix rounding.
    i = np.floor(((2 * k - 1) - np.sqrt((2.0 * k - 1) ** 2 - 8.0 * p)) / 2).astype(np.int64)
    start = i * k - i * (i + 1) // 2
    low = p < start
    i[low] -= 1
    start = i * k - i * (i + 1) // 2
    high = p >= start + (k - 1 - i)
    i[high] += 1
    start = i * k - i * (i + 1) // 2
    return i, p - start + i + 1


def genuine_impostor(
    features: np.ndarray,
    labels: np.ndarray,
    impostor_pairs: int = 1_000_000,
    max_genuine_pairs_per_identity: int | None = None,
    seed: int = 0,
    overlap_bins: int = OVERLAP_BINS,
) -> GenuineImpostor:
    """Genuine and impostor cosine distributions, their overlap and EER.

    Genuine pairs are all unordered pairs of images within each identity: an identity
    with k images gives k(k-1)/2, so a dataset of C identities x 50 images gives 1225 C
    pairs (367M float32 = 1.5 GB for 300K identities). ``max_genuine_pairs_per_identity``
    caps that with a seeded sample without replacement per identity. Impostor pairs
    are a seeded uniform sample (with replacement) over all ordered image pairs whose
    labels differ: an identity is drawn with probability proportional to
    ``k (N - k)``, an image in it uniformly, then an image of any other identity uniformly.

    Args:
        features: (N, D) image features; normalised here.
        labels: (N,) identity label per image.
        impostor_pairs: number of impostor pairs sampled.
        max_genuine_pairs_per_identity: optional cap on genuine pairs per identity.
        seed: seeds both samples.
        overlap_bins: bins of the overlap grid over [-1, 1].

    Returns:
        A :class:`GenuineImpostor`.

    Raises:
        DataFormatError: bad shapes, NaN/inf or zero-norm features, a single identity
            (no impostor pair) or no identity with two images (no genuine pair).
        ValueError: ``impostor_pairs`` < 1 or a cap < 1.
    """
    if impostor_pairs < 1:
        raise ValueError(f"impostor_pairs must be >= 1, got {impostor_pairs}")
    cap = max_genuine_pairs_per_identity
    if cap is not None and cap < 1:
        raise ValueError(f"max_genuine_pairs_per_identity must be >= 1, got {cap}")
    x = normalize_rows(features)
    lab = _check_labels(labels, x.shape[0])
    identities, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n = x.shape[0]
    if identities.shape[0] < 2:
        raise DataFormatError("labels: impostor pairs need at least 2 identities, got 1")
    if counts.max() < 2:
        raise DataFormatError(
            "labels: every identity has a single image, so there is no genuine pair"
        )
    rng = np.random.default_rng(seed)
    order = np.argsort(inverse, kind="stable")  # rows grouped by identity
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    full = counts * (counts - 1) // 2
    per_id = full if cap is None else np.minimum(full, cap)
    genuine = np.empty(int(per_id.sum()), dtype=np.float32)
    triu_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pos = 0
    for c in np.flatnonzero(counts >= 2):
        k = int(counts[c])
        rows = x[order[starts[c] : starts[c] + k]]
        if k > _GRAM_MAX_IMAGES:
            # A huge identity (e.g. a label-noise cluster): no k x k matrix, only its pairs.
            picks = np.arange(full[c]) if per_id[c] == full[c] else None
            if picks is None:
                picks = rng.choice(full[c], size=per_id[c], replace=False)
            iu, ju = _triu_pair(picks, k)
            genuine[pos : pos + iu.size] = _rowwise_dot(rows, iu, rows, ju)
            pos += iu.size
            continue
        if k not in triu_cache:
            triu_cache[k] = np.triu_indices(k, k=1)
        iu, ju = triu_cache[k]
        if per_id[c] < full[c]:
            pick = rng.choice(full[c], size=per_id[c], replace=False)
            iu, ju = iu[pick], ju[pick]
        # A k x k Gram matrix is far cheaper than gathering k^2/2 row pairs.
        genuine[pos : pos + iu.size] = (rows @ rows.T)[iu, ju]
        pos += iu.size

    weights = counts * (n - counts).astype(np.float64)
    ids = rng.choice(identities.shape[0], size=impostor_pairs, p=weights / weights.sum())
    i_sorted = starts[ids] + rng.integers(0, counts[ids])
    j_other = rng.integers(0, n - counts[ids])
    j_sorted = j_other + np.where(j_other >= starts[ids], counts[ids], 0)
    impostor = _rowwise_dot(x, order[i_sorted], x, order[j_sorted])

    eer = equal_error_rate(genuine, impostor)
    return GenuineImpostor(
        genuine=genuine,
        impostor=impostor,
        overlap=distribution_overlap(genuine, impostor, overlap_bins),
        eer=eer.eer,
        eer_threshold=eer.threshold,
        n_identities_with_pairs=int(np.count_nonzero(counts >= 2)),
        n_capped_identities=int(np.count_nonzero(per_id < full)),
        overlap_bins=int(overlap_bins),
    )


# ----------------------------------------------------------------------------- leakage


@dataclass(frozen=True, eq=False)
class IdentityLeakage:
    """Identity leakage: dataset identities that are a reference (real) identity (A.8, Table 4).

    Attributes:
        threshold: a center with cosine above this to a reference center is leaked.
        rate: leaked / queried centers.
        n_queries: dataset centers checked.
        n_leaked: leaked centers.
        n_reference: reference centers.
        max_cosine: (Q,) float32 largest cosine of each dataset center to any reference center.
        argmax: (Q,) int64 row of that reference center.
    """

    threshold: float
    rate: float
    n_queries: int
    n_leaked: int
    n_reference: int
    max_cosine: np.ndarray
    argmax: np.ndarray

    def summary(self) -> dict[str, float | int]:
        """JSON-ready scalars."""
        return {
            "threshold": self.threshold,
            "rate": self.rate,
            "n_queries": self.n_queries,
            "n_leaked": self.n_leaked,
            "n_reference": self.n_reference,
            "mean_max_cosine": float(self.max_cosine.mean()),
        }


def identity_leakage(
    centers: np.ndarray,
    reference_centers: np.ndarray,
    threshold: float = 0.7,
    query_block: int = DEFAULT_QUERY_BLOCK,
    key_block: int = DEFAULT_KEY_BLOCK,
) -> IdentityLeakage:
    """Share of the dataset's identity centers with cosine > ``threshold`` to a reference center.

    Args:
        centers: (Q, D) the dataset's identity centers; normalised here.
        reference_centers: (R, D) centers of the real reference set (WebFace4M in the paper).
        threshold: leakage cut (0.7).
        query_block: tile rows of the search.
        key_block: tile columns of the search.

    Returns:
        An :class:`IdentityLeakage`.

    Raises:
        DataFormatError: bad shapes, mismatched dimensions, NaN/inf or zero-norm rows.
    """
    return _leakage([("centers", centers)], reference_centers, threshold, query_block, key_block)


def identity_leakage_stream(
    chunks: Iterable[np.ndarray],
    reference_centers: np.ndarray,
    threshold: float = 0.7,
    query_block: int = DEFAULT_QUERY_BLOCK,
    key_block: int = DEFAULT_KEY_BLOCK,
) -> IdentityLeakage:
    """:func:`identity_leakage` over query centers that arrive in chunks.

    Memory is the normalised reference set, one normalised chunk, one search tile and
    12 bytes per query already seen (its max cosine and argmax), so the paper's Table 4
    case, 5M sampled identity vectors against 200K real centers, runs with chunks of
    e.g. 100K rows in well under 2 GB.

    Args:
        chunks: iterable of (k, D) arrays (k may vary; empty chunks are skipped).
        reference_centers: (R, D) reference centers; normalised once.
        threshold: leakage cut (0.7).
        query_block: tile rows of the search.
        key_block: tile columns of the search.

    Returns:
        An :class:`IdentityLeakage` over all chunks, rows in stream order.

    Raises:
        DataFormatError: a chunk that is not 2-D or whose dimension differs from the
            reference's (naming the chunk), NaN/inf or zero-norm rows, or no query at all.
    """
    named = ((f"centers chunk {index}", chunk) for index, chunk in enumerate(chunks))
    return _leakage(named, reference_centers, threshold, query_block, key_block)


def _leakage(
    named_chunks: Iterable[tuple[str, np.ndarray]],
    reference_centers: np.ndarray,
    threshold: float,
    query_block: int,
    key_block: int,
) -> IdentityLeakage:
    """Leakage over ``(name for error messages, (k, D) centers)`` chunks."""
    ref = normalize_rows(reference_centers, "reference_centers")
    dim = ref.shape[1]
    sims: list[np.ndarray] = []
    args: list[np.ndarray] = []
    for name, chunk in named_chunks:
        arr = np.asarray(chunk)
        if arr.ndim != 2:
            raise DataFormatError(f"{name}: expected a 2-D array (k, D), got shape {arr.shape}")
        if arr.shape[1] != dim:
            raise DataFormatError(
                f"{name}: dimension {arr.shape[1]} does not match reference_centers dimension {dim}"
            )
        if arr.shape[0] == 0:
            continue
        q = normalize_rows(arr, name)
        s, a = max_inner_product_blocked(q, ref, False, query_block, key_block)
        sims.append(s)
        args.append(a)
    if not sims:
        raise DataFormatError("centers: no query center given")
    max_sim = np.concatenate(sims)
    arg = np.concatenate(args)
    leaked = max_sim > threshold
    return IdentityLeakage(
        threshold=float(threshold),
        rate=float(leaked.mean()),
        n_queries=int(max_sim.shape[0]),
        n_leaked=int(leaked.sum()),
        n_reference=int(ref.shape[0]),
        max_cosine=max_sim,
        argmax=arg,
    )


# ------------------------------------------------------------------------ comparing two rates


@dataclass(frozen=True)
class RateComparison:
    """Is rate ``observed`` above rate ``reference`` by more than the estimates' uncertainty?

    Attributes:
        observed: mean of the observed units' flags (e.g. HSFace identities within 0.7 of
            another).
        reference: mean of the reference units' flags (e.g. the real subset's).
        margin: the ``level`` quantile of the bootstrap difference's deviation from the
            observed difference: how far above ``reference`` chance alone takes ``observed``.
        level: the confidence level of the margin.
        passed: ``observed - reference <= margin``.
    """

    observed: float
    reference: float
    margin: float
    level: float
    passed: bool

    def summary(self) -> dict[str, float | bool]:
        return asdict(self)


def compare_rates(
    observed: np.ndarray,
    reference: np.ndarray,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> RateComparison:
    """Compare two rates of 0/1 flags with a bootstrap margin over their units.

    Each sample is resampled over its own units (identities), with replacement, ``n_boot``
    times; the margin is the one-sided ``level`` quantile of ``(obs* - ref*) - (obs - ref)``.
    A check that fails only when ``observed`` exceeds ``reference`` by more than this margin
    fails for a reason, not for seed noise.

    Args:
        observed: (N,) flags (bool or 0/1) of the data under test.
        reference: (M,) flags of the reference data.
        level: confidence level in (0, 1).
        n_boot: bootstrap resamples.
        seed: seeds the resampling.

    Raises:
        ValueError: an empty sample or a level outside (0, 1).
    """
    a = np.asarray(observed, dtype=np.float64).ravel()
    b = np.asarray(reference, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("compare_rates needs at least one unit in each sample")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    boot_a = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    boot_b = b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    diff = a.mean() - b.mean()
    margin = float(np.quantile((boot_a - boot_b) - diff, level))
    return RateComparison(float(a.mean()), float(b.mean()), margin, level, bool(diff <= margin))
