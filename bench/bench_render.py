"""Throughput of :func:`vec2face.toyfaces.render.render_faces` in one process.

Run with ``OMP_NUM_THREADS=1 python bench/bench_render.py``; prints images/s (best of
several repeats) for freshly sampled identities and nuisances, blur and noise included.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vec2face.toyfaces import render_faces, sample_identity_params, sample_nuisance


def bench(batch: int, repeats: int, seed: int) -> float:
    """Best images/s over ``repeats`` renders of ``batch`` random faces."""
    rng = np.random.default_rng(seed)
    ids = sample_identity_params(batch, rng)
    nus = sample_nuisance(batch, rng)
    render_faces(ids[:2], nus[:2])  # build the texture bank outside the timing
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_faces(ids, nus)
        best = min(best, time.perf_counter() - t0)
    return batch / best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rate = bench(args.batch, args.repeats, args.seed)
    print(f"render_faces: {rate:.0f} images/s (batch {args.batch}, best of {args.repeats})")
