"""Speed and memory of identity-vector sampling at HSFace scales.

Cases (pick with ``--cases``, default all but 300k):

* ``10k``, ``100k-0.3``, ``100k-0.2``, ``300k``: the gaussian sampler in 512-d at the
  given size and threshold (0.3 where not named); targets on 2 cores: 100K at 0.3
  and at 0.2 in <= 5 minutes and <= 2 GB peak each, 300K at 0.3 finishing;
* ``pca``: the pca sampler's acceptance rate on a reference, ``--reference`` or a
  synthetic anisotropic one (power-law spectrum, a shared offset, like FR centers).

Every case runs in its own process so its peak memory (``ru_maxrss``) is its own.
Run as ``python bench/bench_identities.py [--cases 10k,100k-0.3,100k-0.2,300k,pca]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys

import numpy as np

CASES = {
    "10k": (10_000, 0.3),
    "100k-0.3": (100_000, 0.3),
    "100k-0.2": (100_000, 0.2),
    "300k": (300_000, 0.3),
}


def synthetic_reference(m: int = 20_000, dim: int = 512, seed: int = 0) -> np.ndarray:
    """Anisotropic stand-in for FR identity centers: (m, dim) float32.

    Variances fall off as a power law (1/sqrt(rank)) over random orthogonal axes, an
    effective dimension of ~270 in 512-d, and every row shares an offset worth 5% of
    the energy, so center cosines average ~0.05 with a spread of ~0.06.
    """
    rng = np.random.default_rng(seed)
    axes, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    var = np.arange(1, dim + 1) ** -0.5
    var /= var.sum()
    offset = rng.standard_normal(dim)
    offset *= np.sqrt(0.05 / 0.95) / np.linalg.norm(offset)
    return ((rng.standard_normal((m, dim)) * np.sqrt(var)) @ axes.T + offset).astype(np.float32)


def _peak_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _run_case(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    from vec2face.hsface import max_pairwise_cosine, sample_identities

    if name == "pca":
        ref = np.load(args.reference) if args.reference else synthetic_reference()
        vec, info = sample_identities(args.pca_n, dim=ref.shape[1], threshold=args.pca_threshold,
                                      sampler="pca", reference=ref, seed=args.seed,
                                      return_info=True, progress=args.progress)
    else:
        n, thr = CASES[name]
        vec, info = sample_identities(n, dim=512, threshold=thr, sampler="gaussian", seed=args.seed,
                                      batch=args.batch, return_info=True, progress=args.progress)
    queue.put({
        "case": name, "n": info.accepted, "threshold": info.threshold, "sampler": info.sampler,
        "seconds": round(info.seconds, 1), "ids_per_s": round(info.accepted / info.seconds),
        "candidates": info.candidates, "rejected": info.candidates - info.accepted,
        "acceptance_rate": round(info.acceptance_rate, 5),
        "peak_rss_mib": round(_peak_mib()),
        "max_cos_sampled": round(max_pairwise_cosine(vec, sample=200, seed=1), 5),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="10k,100k-0.3,100k-0.2,pca",
                        help=f"comma-separated of {', '.join([*CASES, 'pca'])}")
    parser.add_argument("--reference", default=None,
                        help="(m, dim) .npy of identity centers for 'pca'")
    parser.add_argument("--pca-n", type=int, default=10_000,
                        help="vectors to sample in the 'pca' case")
    parser.add_argument("--pca-threshold", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    for name in args.cases.split(","):
        if name not in CASES and name != "pca":
            parser.error(f"unknown case {name!r}")
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_case, args=(name, args, queue))
        proc.start()
        result = queue.get()
        proc.join()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
