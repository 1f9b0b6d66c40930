"""Throughput of :func:`vec2face.toyfaces.render.render_faces` in one process.

Run with ``OMP_NUM_THREADS=1 python bench/bench_render.py``. Prints images/s (best of
several repeats) for freshly sampled identities and nuisances, blur and noise included:
by wall clock, and by this process's CPU time, which is the fairer figure on a machine
that other jobs share.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vec2face.toyfaces import render_faces, sample_identity_params, sample_nuisance


def bench(batch: int, repeats: int, seed: int) -> tuple[float, float]:
    """Best (wall-clock, CPU-time) images/s over ``repeats`` renders of ``batch`` faces."""
    rng = np.random.default_rng(seed)
    ids = sample_identity_params(batch, rng)
    nus = sample_nuisance(batch, rng)
    render_faces(ids, nus)  # warm-up: texture bank, allocator
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        render_faces(ids, nus)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return batch / best_wall, batch / best_cpu


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    wall, cpu = bench(args.batch, args.repeats, args.seed)
    print(
        f"render_faces: {wall:.0f} images/s wall, {cpu:.0f} images/s CPU "
        f"(batch {args.batch}, best of {args.repeats})"
    )
