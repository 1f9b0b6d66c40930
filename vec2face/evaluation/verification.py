"""Pair verification metrics (LFW-style benchmarks), as pure numpy functions.

:func:`verification_accuracy` reproduces insightface's ``eval/verification.py``
protocol number for number: L2-normalised embeddings, squared L2 distance between the
two images of a pair, thresholds ``np.arange(0, 4, 0.01)``, a pair is called genuine
when ``distance < threshold``, 10 folds in order (scikit-learn ``KFold`` without
shuffling), and on each fold the threshold with the best accuracy on the other folds
(first one on ties, as ``argmax``) scores the held-out fold. Instead of looping over the
400 thresholds it counts, per fold, how many genuine and impostor distances fall below
every threshold with one ``searchsorted`` on sorted distances; counts of the training
folds are the totals minus the held-out fold's.

Inference (images -> embeddings, flip-sum) lives in :mod:`vec2face.evaluation.embed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLDS",
    "VerificationResult",
    "check_pair_kinds",
    "kfold_bounds",
    "pair_distances",
    "roc_curve",
    "tar_at_far",
    "verification_accuracy",
]

# Same construction as insightface, so the float values (and every comparison) agree.
DEFAULT_THRESHOLDS = np.arange(0, 4, 0.01)
DEFAULT_FAR_TARGETS = (1e-3, 1e-4)


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of the 10-fold verification protocol on one benchmark.

    Attributes:
        accuracy: mean held-out-fold accuracy (insightface's ``Accuracy-Flip``).
        accuracy_std: population std of the fold accuracies (``np.std``).
        best_threshold: mean over folds of the threshold chosen on the training folds.
        fold_accuracies: (folds,) held-out accuracy per fold.
        fold_thresholds: (folds,) chosen threshold per fold.
        thresholds: (T,) the distance thresholds scanned.
        tpr: (T,) true-positive rate per threshold, held-out folds averaged (insightface ROC).
        fpr: (T,) false-positive rate per threshold, held-out folds averaged.
        tar_at_far: {FAR target: TAR}, from the exact ROC over all pairs (see :func:`tar_at_far`).
        num_pairs: number of pairs scored.
    """

    accuracy: float
    accuracy_std: float
    best_threshold: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    thresholds: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    tar_at_far: dict[float, float] = field(default_factory=dict)
    num_pairs: int = 0

    def summary(self) -> dict[str, float]:
        """Flat scalar metrics for logging: accuracy, accuracy_std, best_threshold, tar@far=..."""
        out = {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "best_threshold": self.best_threshold,
        }
        out.update({f"tar@far={far:.0e}": tar for far, tar in self.tar_at_far.items()})
        return out


def kfold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` test ranges of ``KFold(n_splits=folds, shuffle=False)``.

    The first ``n % folds`` folds hold one extra item, as scikit-learn's do.
    """
    if folds < 1 or folds > n:
        raise ValueError(f"folds must be in [1, {n}] for {n} pairs, got {folds}")
    sizes = np.full(folds, n // folds, dtype=np.int64)
    sizes[: n % folds] += 1
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops)]


_BLOCK_PAIRS = 256  # pairs normalised at a time: the temporaries stay in cache


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    # sklearn.preprocessing.normalize's arithmetic (einsum row norms, then divide).
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0  # zero rows stay zero, as sklearn's normalize leaves them
    return x / norms[:, None]


def _as_embeddings(embeddings: np.ndarray) -> np.ndarray:
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (2 * pairs, dim), got shape {emb.shape}")
    if emb.shape[0] % 2:
        raise ValueError(
            f"embeddings must come in consecutive pairs; got an odd count {emb.shape[0]}"
        )
    if emb.shape[0] == 0:
        raise ValueError("no pairs to score")
    if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise ValueError(f"embeddings must be numeric, got dtype {emb.dtype}")
    return emb


def _as_labels(issame: Sequence[bool] | np.ndarray, num_pairs: int) -> np.ndarray:
    same = np.asarray(issame)
    if same.ndim != 1 or same.shape[0] != num_pairs:
        got = same.shape[0] if same.ndim == 1 else f"shape {same.shape}"
        raise ValueError(f"issame must hold one bool per pair: expected {num_pairs}, got {got}")
    if same.dtype != np.bool_:
        if not np.isin(same, (0, 1)).all():
            raise ValueError("issame must hold booleans (or 0/1)")
        same = same.astype(bool)
    return same


def check_pair_kinds(issame: Sequence[bool] | np.ndarray) -> None:
    """Refuse pair labels that lack genuine or impostor pairs.

    Without impostor pairs FAR is undefined (so is TAR at a FAR), and without genuine
    pairs TAR is; the accuracy of either says nothing about a threshold.

    Raises:
        ValueError: no pairs, or only one kind of pair (the counts are named).
    """
    same = np.asarray(issame, dtype=bool).reshape(-1)
    genuine = int(same.sum())
    if same.size == 0:
        raise ValueError("no pairs to score")
    if genuine == same.size:
        missing = "all {} pairs are genuine: with no impostor pair FAR is undefined"
    elif genuine == 0:
        missing = "all {} pairs are impostors: with no genuine pair TAR is undefined"
    else:
        return
    raise ValueError(missing.format(same.size) + ", so verification cannot be scored")


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Squared L2 distance between the L2-normalised embeddings of each consecutive pair.

    Args:
        embeddings: (2P, D); rows 2i and 2i+1 form pair i.

    Returns:
        (P,) float64 distances in [0, 4], with insightface's arithmetic (float64,
        sklearn-style normalisation, then difference, square, sum).

    Raises:
        ValueError: not 2-D, an odd row count, or NaN/inf values.
    """
    emb = _as_embeddings(embeddings)
    num_pairs = emb.shape[0] // 2
    dist = np.empty(num_pairs, dtype=np.float64)
    # Row-wise arithmetic, so blocking gives bit-identical results to one big array.
    for start in range(0, num_pairs, _BLOCK_PAIRS):
        stop = min(start + _BLOCK_PAIRS, num_pairs)
        block = _l2_normalize(np.asarray(emb[2 * start : 2 * stop], dtype=np.float64))
        dist[start:stop] = np.sum(np.square(block[0::2] - block[1::2]), axis=1)
    if not np.isfinite(dist).all():
        raise ValueError("embeddings contain NaN or inf")
    return dist


def verification_accuracy(
    embeddings: np.ndarray,
    issame: Sequence[bool] | np.ndarray,
    folds: int = 10,
    thresholds: np.ndarray | None = None,
    far_targets: Sequence[float] = DEFAULT_FAR_TARGETS,
) -> VerificationResult:
    """insightface's k-fold verification accuracy, vectorised and exact.

    Args:
        embeddings: (2P, D) features of the pair images (already flip-summed if wanted);
            rows 2i and 2i+1 form pair i. Normalised here.
        issame: (P,) True for genuine pairs.
        folds: number of contiguous folds (10 in every published table).
        thresholds: distance thresholds to scan; defaults to ``np.arange(0, 4, 0.01)``.
        far_targets: FAR values at which to report TAR.

    Returns:
        A :class:`VerificationResult`.

    Raises:
        ValueError: odd embedding count, a label count that is not one per pair, non-finite
            embeddings, more folds than pairs, or only genuine (or only impostor) pairs.
    """
    dist = pair_distances(embeddings)
    same = _as_labels(issame, dist.shape[0])
    check_pair_kinds(same)
    thr = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    bounds = kfold_bounds(dist.shape[0], folds)

    # Per fold and threshold: genuine / impostor pairs with dist < threshold.
    tp = np.empty((folds, thr.size), dtype=np.int64)
    fp = np.empty((folds, thr.size), dtype=np.int64)
    n_gen = np.empty(folds, dtype=np.int64)
    n_imp = np.empty(folds, dtype=np.int64)
    for f, (a, b) in enumerate(bounds):
        d, s = dist[a:b], same[a:b]
        gen, imp = np.sort(d[s]), np.sort(d[~s])
        tp[f] = np.searchsorted(gen, thr, side="left")
        fp[f] = np.searchsorted(imp, thr, side="left")
        n_gen[f], n_imp[f] = gen.size, imp.size

    if folds == 1:
        # insightface's LFold: with one split the training set is the test set.
        tp_train, fp_train, imp_train = tp, fp, n_imp
    else:
        tp_train = tp.sum(0, keepdims=True) - tp
        fp_train = fp.sum(0, keepdims=True) - fp
        imp_train = n_imp.sum() - n_imp
    correct_train = tp_train + (imp_train[:, None] - fp_train)
    best = np.argmax(correct_train, axis=1)

    rows = np.arange(folds)
    n_test = n_gen + n_imp
    fold_acc = (tp[rows, best] + n_imp - fp[rows, best]) / n_test
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(n_gen[:, None] > 0, tp / n_gen[:, None], 0.0)
        fpr = np.where(n_imp[:, None] > 0, fp / n_imp[:, None], 0.0)

    return VerificationResult(
        accuracy=float(np.mean(fold_acc)),
        accuracy_std=float(np.std(fold_acc)),
        best_threshold=float(np.mean(thr[best])),
        fold_accuracies=fold_acc,
        fold_thresholds=thr[best],
        thresholds=thr,
        tpr=tpr.mean(0),
        fpr=fpr.mean(0),
        tar_at_far=tar_at_far(dist, same, far_targets),
        num_pairs=int(dist.shape[0]),
    )


def roc_curve(
    distances: np.ndarray, issame: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC of a distance score: accept a pair when its distance is <= a threshold.

    Args:
        distances: (P,) pair distances (smaller = more alike).
        issame: (P,) True for genuine pairs.

    Returns:
        ``fpr``, ``tpr``, ``thresholds``, each (K + 1,) for K distinct distances: point 0
        accepts nothing (threshold ``-inf``); point k accepts distances <= the k-th smallest
        distinct distance, so tied pairs are accepted together.
    """
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    s = _as_labels(issame, d.size)
    if not np.isfinite(d).all():
        raise ValueError("distances contain NaN or inf")
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    # The last position of each run of equal distances closes one ROC point.
    last = np.r_[np.nonzero(np.diff(d))[0], d.size - 1] if d.size else np.zeros(0, dtype=np.int64)
    cum_gen = np.cumsum(s)[last]
    cum_imp = (last + 1) - cum_gen
    n_gen, n_imp = int(s.sum()), int((~s).sum())
    tpr = np.r_[0.0, cum_gen / n_gen] if n_gen else np.zeros(last.size + 1)
    fpr = np.r_[0.0, cum_imp / n_imp] if n_imp else np.zeros(last.size + 1)
    return fpr, tpr, np.r_[-np.inf, d[last]]


def tar_at_far(
    distances: np.ndarray,
    issame: Sequence[bool] | np.ndarray,
    far_targets: Sequence[float] = DEFAULT_FAR_TARGETS,
) -> dict[float, float]:
    """TAR at the most permissive threshold whose FAR does not exceed each target.

    With ``n`` impostor pairs the smallest non-zero FAR is ``1 / n``; a target below it
    (FAR 1e-4 on 3,000 impostors) is read at FAR = 0.

    Args:
        distances: (P,) pair distances.
        issame: (P,) True for genuine pairs.
        far_targets: FAR values in [0, 1].

    Returns:
        {target: TAR}.
    """
    fpr, tpr, _ = roc_curve(distances, issame)
    out: dict[float, float] = {}
    for far in far_targets:
        if not 0.0 <= far <= 1.0:
            raise ValueError(f"FAR target must be in [0, 1], got {far}")
        # fpr is non-decreasing, so the admissible points are a prefix.
        k = int(np.searchsorted(fpr, far, side="right")) - 1
        out[float(far)] = float(tpr[k])
    return out
