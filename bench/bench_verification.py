"""Time of scoring one verification benchmark (6,000 pairs, 512-d) with the 10-fold protocol.

Compares :func:`vec2face.evaluation.verification_accuracy` with a plain loop over the
400 thresholds (the way insightface's ``calculate_roc`` is written) on the same data,
checks they agree, and prints the best of several runs of each.
Run as ``python bench/bench_verification.py [--pairs 6000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vec2face.evaluation import verification_accuracy


def loop_protocol(
    embeddings: np.ndarray, issame: np.ndarray, folds: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold accuracies and the test-fold ROC, one threshold at a time (insightface's shape)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
    emb = emb / np.where(norms == 0, 1.0, norms)[:, None]
    dist = np.sum(np.square(emb[0::2] - emb[1::2]), 1)
    thresholds = np.arange(0, 4, 0.01)
    n = dist.size
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    accs, tprs, fprs, start = [], [], [], 0
    for size in sizes:
        test = np.zeros(n, dtype=bool)
        test[start : start + size] = True
        start += size

        def rates(t: float, mask: np.ndarray) -> tuple[float, float, float]:
            pred = dist[mask] < t
            same = issame[mask]
            tp, fp = np.sum(pred & same), np.sum(pred & ~same)
            tn, fn = np.sum(~pred & ~same), np.sum(~pred & same)
            tpr = 0.0 if tp + fn == 0 else tp / (tp + fn)
            fpr = 0.0 if fp + tn == 0 else fp / (fp + tn)
            return tpr, fpr, float(tp + tn) / pred.size

        best = int(np.argmax([rates(t, ~test)[2] for t in thresholds]))
        roc = np.array([rates(t, test)[:2] for t in thresholds])
        tprs.append(roc[:, 0])
        fprs.append(roc[:, 1])
        accs.append(rates(thresholds[best], test)[2])
    return np.array(accs), np.mean(tprs, 0), np.mean(fprs, 0)


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    same = rng.random(args.pairs) < 0.5
    emb = rng.normal(size=(2 * args.pairs, args.dim)).astype(np.float32)
    emb[1::2][same] = emb[0::2][same] + 7.0 * rng.normal(size=(int(same.sum()), args.dim)).astype(
        np.float32
    )

    result = verification_accuracy(emb, same)
    accs, tpr, fpr = loop_protocol(emb, same)
    if not (
        np.array_equal(result.fold_accuracies, accs)
        and np.array_equal(result.tpr, tpr)
        and np.array_equal(result.fpr, fpr)
    ):
        raise SystemExit("verification_accuracy disagrees with the loop reference")
    fast = _best_time(lambda: verification_accuracy(emb, same), args.repeats)
    slow = _best_time(lambda: loop_protocol(emb, same), max(1, args.repeats // 3))
    print(
        f"{args.pairs} pairs x {args.dim}-d, "
        f"accuracy {result.accuracy:.4f} +- {result.accuracy_std:.4f}"
    )
    print(
        f"verification_accuracy (full result, ROC and TAR@FAR included): "
        f"{fast * 1e3:7.1f} ms (best of {args.repeats})"
    )
    print(f"loop over thresholds (fold accuracies and test ROC):          {slow * 1e3:7.1f} ms")
    print(f"speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
