"""Verification protocol: exactness against a plain loop, hand-worked cases, ROC/TAR, inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vec2face.evaluation import (
    check_pair_kinds,
    flip_sum_embeddings,
    roc_curve,
    tar_at_far,
    verification_accuracy,
)
from vec2face.evaluation.verification import kfold_bounds, pair_distances


def _reference(embeddings: np.ndarray, issame: np.ndarray, folds: int = 10):
    """The protocol written the slow, obvious way: one pass per threshold per fold."""
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
    norms[norms == 0] = 1.0
    emb = emb / norms[:, None]
    dist = np.sum(np.square(emb[0::2] - emb[1::2]), 1)
    thresholds = np.arange(0, 4, 0.01)
    n = dist.size
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    starts = np.cumsum([0] + sizes[:-1])

    def rates(t, d, s):
        pred = d < t
        tp, fp = np.sum(pred & s), np.sum(pred & ~s)
        tn, fn = np.sum(~pred & ~s), np.sum(~pred & s)
        tpr = 0 if tp + fn == 0 else tp / (tp + fn)
        fpr = 0 if fp + tn == 0 else fp / (fp + tn)
        return tpr, fpr, float(tp + tn) / d.size

    accs, chosen, tprs, fprs = [], [], [], []
    for start, size in zip(starts, sizes):
        test = np.arange(start, start + size)
        train = np.setdiff1d(np.arange(n), test)
        train_acc = [rates(t, dist[train], issame[train])[2] for t in thresholds]
        best = int(np.argmax(train_acc))
        chosen.append(thresholds[best])
        accs.append(rates(thresholds[best], dist[test], issame[test])[2])
        r = np.array([rates(t, dist[test], issame[test])[:2] for t in thresholds])
        tprs.append(r[:, 0])
        fprs.append(r[:, 1])
    return np.array(accs), np.array(chosen), np.mean(tprs, 0), np.mean(fprs, 0)


def _random_pairs(seed: int, pairs: int = 300, dim: int = 32, noise: float = 0.9):
    rng = np.random.default_rng(seed)
    same = rng.random(pairs) < 0.5
    emb = rng.normal(size=(2 * pairs, dim)) * rng.uniform(0.5, 3.0, size=(2 * pairs, 1))
    emb[1::2][same] = emb[0::2][same] + noise * rng.normal(size=(same.sum(), dim))
    return emb.astype(np.float32), same


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_the_reference_loop_exactly(seed):
    emb, same = _random_pairs(seed, pairs=303)  # 303 pairs: folds of 31 and 30
    res = verification_accuracy(emb, same)
    accs, chosen, tpr, fpr = _reference(emb, same)
    np.testing.assert_array_equal(res.fold_accuracies, accs)
    np.testing.assert_array_equal(res.fold_thresholds, chosen)
    np.testing.assert_array_equal(res.tpr, tpr)
    np.testing.assert_array_equal(res.fpr, fpr)
    assert res.accuracy == np.mean(accs) and res.accuracy_std == np.std(accs)
    assert res.best_threshold == np.mean(chosen)
    assert res.num_pairs == 303


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_matches_the_reference_with_ties_and_distances_on_thresholds(seed):
    # Unit vectors from a few angles: many pairs share a distance, and 0, 2 and 4 sit
    # exactly on grid thresholds, where "distance < threshold" must be strict.
    rng = np.random.default_rng(seed)
    angles = np.array([0.0, np.pi / 2, np.pi, np.pi / 3, 2.0])
    pairs = 200
    emb = np.stack([np.cos(angles), np.sin(angles)], 1)[rng.integers(0, angles.size, 2 * pairs)]
    same = rng.random(pairs) < 0.5
    res = verification_accuracy(emb, same)
    accs, chosen, tpr, fpr = _reference(emb, same)
    assert np.isin(pair_distances(emb), [0.0, 1.0, 2.0, 4.0]).sum() > pairs // 5
    np.testing.assert_array_equal(res.fold_accuracies, accs)
    np.testing.assert_array_equal(res.fold_thresholds, chosen)
    np.testing.assert_array_equal(res.tpr, tpr)
    np.testing.assert_array_equal(res.fpr, fpr)


def _at_distances(distances, scale=3.0):
    """2-D pairs whose normalised squared L2 distances are the given values."""
    rows = []
    for d in distances:
        a = np.arccos(1.0 - d / 2.0)
        rows += [[scale, 0.0], [scale * np.cos(a), scale * np.sin(a)]]
    return np.array(rows)


def test_hand_computed_two_fold_case():
    # Pairs: genuine 0.505, impostor 1.505 | genuine 1.005, impostor 2.005.
    emb = _at_distances([0.505, 1.505, 1.005, 2.005])
    same = [True, False, True, False]
    res = verification_accuracy(emb, same, folds=2)
    # Fold 0 trains on (1.005 g, 2.005 i): first threshold above 1.005 is 1.01, both test
    # pairs right. Fold 1 trains on (0.505 g, 1.505 i): 0.51, and 1.005 g is then missed.
    np.testing.assert_allclose(res.fold_thresholds, [1.01, 0.51])
    np.testing.assert_array_equal(res.fold_accuracies, [1.0, 0.5])
    assert res.accuracy == 0.75 and res.accuracy_std == 0.25
    assert res.best_threshold == pytest.approx(0.76)
    assert res.tpr[200] == 1.0 and res.fpr[200] == 0.5  # threshold 2.0: 1.505 in, 2.005 out
    assert res.tar_at_far == {1e-3: 1.0, 1e-4: 1.0}


def test_kfold_bounds_follow_sklearn():
    assert kfold_bounds(23, 10) == [
        (0, 3),
        (3, 6),
        (6, 9),
        (9, 11),
        (11, 13),
        (13, 15),
        (15, 17),
        (17, 19),
        (19, 21),
        (21, 23),
    ]
    sklearn = pytest.importorskip("sklearn.model_selection")
    for n in (10, 23, 6000, 6007):
        ref = [
            (int(t[0]), int(t[-1]) + 1)
            for _, t in sklearn.KFold(10, shuffle=False).split(np.arange(n))
        ]
        assert kfold_bounds(n, 10) == ref


def test_roc_curve_and_tar_at_far_by_hand():
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    s = np.array([True, False, True, False, True])
    fpr, tpr, thr = roc_curve(d, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert thr[0] == -np.inf and np.array_equal(thr[1:], d)
    assert tar_at_far(d, s, [0.0, 0.5, 0.9, 1.0]) == pytest.approx(
        {0.0: 1 / 3, 0.5: 2 / 3, 0.9: 2 / 3, 1.0: 1.0}
    )


def test_tied_distances_are_accepted_together():
    d = np.array([0.2, 0.2, 0.7])
    s = np.array([True, False, True])
    fpr, tpr, _ = roc_curve(d, s)
    np.testing.assert_allclose(fpr, [0, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1])
    assert tar_at_far(d, s, [1e-3]) == {1e-3: 0.0}


def test_input_errors_are_clear():
    emb, same = _random_pairs(0, pairs=20)
    with pytest.raises(ValueError, match="odd count 39"):
        verification_accuracy(emb[:39], same)
    with pytest.raises(ValueError, match="expected 20, got 19"):
        verification_accuracy(emb, same[:19])
    with pytest.raises(ValueError, match=r"folds must be in \[1, 20\]"):
        verification_accuracy(emb, same, folds=21)
    bad = emb.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        verification_accuracy(bad, same)
    with pytest.raises(ValueError, match="booleans"):
        verification_accuracy(emb, np.full(20, 2))


def test_one_kind_of_pair_is_refused_because_far_or_tar_is_undefined():
    emb, _ = _random_pairs(0, pairs=20)
    # before this check, all-genuine pairs scored accuracy 1.0 with TAR@FAR = 1.0
    with pytest.raises(ValueError, match="all 20 pairs are genuine: with no impostor pair FAR"):
        verification_accuracy(emb, np.ones(20, bool))
    with pytest.raises(ValueError, match="all 20 pairs are impostors: with no genuine pair TAR"):
        verification_accuracy(emb, np.zeros(20, bool))
    with pytest.raises(ValueError, match="no pairs to score"):
        check_pair_kinds([])
    check_pair_kinds([True, False])


def test_summary_is_flat_scalars():
    emb, same = _random_pairs(5, pairs=100)
    summary = verification_accuracy(emb, same).summary()
    assert set(summary) == {
        "accuracy",
        "accuracy_std",
        "best_threshold",
        "tar@far=1e-03",
        "tar@far=1e-04",
    }
    assert all(isinstance(v, float) for v in summary.values())


@pytest.mark.slow
class _SumOfPixels(torch.nn.Module):
    """A 'model' whose output is easy to predict: per-channel means and a left/right asymmetry."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[3] // 2
        return torch.stack(
            [x.mean((1, 2, 3)), x[..., :half].mean((1, 2, 3)), x[..., half:].mean((1, 2, 3))], 1
        )


def test_flip_sum_embeddings_adds_the_mirrored_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    out = flip_sum_embeddings(_SumOfPixels(), images, batch_size=2)
    x = images.astype(np.float64) / 127.5 - 1.0
    left, right = x[:, :, :4].mean((1, 2, 3)), x[:, :, 4:].mean((1, 2, 3))
    expected = np.stack([2 * x.mean((1, 2, 3)), left + right, right + left], 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert out.dtype == np.float32 and out.shape == (5, 3)


def test_flip_sum_embeddings_with_a_backbone_and_bf16():
    from vec2face.models import build_backbone

    model = build_backbone("tiny", embedding_size=32).train()
    images = np.random.default_rng(1).integers(0, 256, size=(3, 112, 112, 3), dtype=np.uint8)
    a = flip_sum_embeddings(model, images, batch_size=2)
    b = flip_sum_embeddings(model, images, batch_size=3, autocast_bf16=True)
    assert model.training  # mode restored
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98
    with pytest.raises(ValueError, match="uint8"):
        flip_sum_embeddings(model, images.astype(np.float32))
