"""Time and peak memory of the dataset-report similarity searches at paper scale.

Cases (each runs in a fresh process, so its peak RSS is its own):

- ``inter``: inter-class noise over ``--centers`` (300K) 512-d identity centers;
- ``leakage``: identity leakage of ``--centers`` (300K) vs ``--references`` (200K) centers;
- ``stream``: streamed leakage of ``--stream-queries`` (1M; the paper's Table 4 uses 5M)
  generated chunk by chunk vs ``--references`` centers.

The vectors are synthetic but not isotropic: an anisotropic Gaussian (power-law
spectrum, as FR features concentrate their variance in a few hundred directions) around
a few thousand cluster means (look-alike groups), plus a small share of near-duplicates
so the rates are not trivially zero.

Usage::

    python bench/bench_reports.py --case inter leakage
    python bench/bench_reports.py --case stream --stream-queries 5000000
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from vec2face.reports import identity_leakage, identity_leakage_stream, inter_class_noise

DIM = 512
GEN_CHUNK = 50_000


def _spectrum(dim: int) -> np.ndarray:
    """(dim,) per-direction standard deviations with a power-law decay."""
    return (1.0 + np.arange(dim)) ** -0.5


def clustered_vectors(
    n: int, seed: int, clusters: int = 4000, dup_share: float = 0.005, start: int = 0
) -> np.ndarray:
    """Rows ``start .. start + n`` of a seeded, clustered, anisotropic vector population.

    Args:
        n: rows to make.
        seed: population seed (cluster means and per-row draws).
        clusters: look-alike groups.
        dup_share: share of rows that are a perturbed copy of the row before them.
        start: first row index (chunks of one population are generated independently).

    Returns:
        (n, DIM) float32.
    """
    scale = _spectrum(DIM).astype(np.float32)
    means = np.random.default_rng([seed, 0]).standard_normal((clusters, DIM), dtype=np.float32)
    means *= 0.6 * scale
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, GEN_CHUNK):
        e = min(n, s + GEN_CHUNK)
        rng = np.random.default_rng([seed, 1, start + s])
        block = rng.standard_normal((e - s, DIM), dtype=np.float32) * scale
        block += means[rng.integers(0, clusters, e - s)]
        dup = np.flatnonzero(rng.random(e - s) < dup_share)
        dup = dup[dup > 0]
        block[dup] = (
            block[dup - 1] + 0.15 * rng.standard_normal((dup.size, DIM), dtype=np.float32) * scale
        )
        out[s:e] = block
    return out


def _chunks(total: int, chunk: int, seed: int) -> Iterator[np.ndarray]:
    # A chunk a tick: the 5M case runs for over an hour on 2 cores.
    starts = range(0, total, chunk)
    for s in tqdm(starts, desc="query chunks", unit="chunk", mininterval=5.0):
        yield clustered_vectors(min(chunk, total - s), seed, start=s)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_s() -> float:
    """CPU seconds of this process: on a shared machine, wall time / cores understates speed."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_case(case: str, args: dict) -> dict:
    """Run one case in this process; returns its timings and peak RSS."""
    t0 = time.perf_counter()
    c0 = _cpu_s()
    if case == "inter":
        centers = clustered_vectors(args["centers"], seed=1)
        t1, c1 = time.perf_counter(), _cpu_s()
        res = inter_class_noise(centers, threshold=0.7, seed=0)
        summary = res.summary()
    elif case == "leakage":
        centers = clustered_vectors(args["centers"], seed=1)
        refs = clustered_vectors(args["references"], seed=2)
        t1, c1 = time.perf_counter(), _cpu_s()
        summary = identity_leakage(centers, refs, threshold=0.7).summary()
    elif case == "stream":
        refs = clustered_vectors(args["references"], seed=2)
        t1, c1 = time.perf_counter(), _cpu_s()
        # Chunk generation is inside the timed loop here, as a real stream's reading would be.
        chunks = _chunks(args["stream_queries"], args["chunk"], seed=3)
        summary = identity_leakage_stream(chunks, refs, threshold=0.7).summary()
    else:
        raise ValueError(f"unknown case {case!r}")
    t2, c2 = time.perf_counter(), _cpu_s()
    return {
        "case": case,
        "setup_s": round(t1 - t0, 1),
        "compute_s": round(t2 - t1, 1),
        "setup_cpu_s": round(c1 - c0, 1),
        "compute_cpu_s": round(c2 - c1, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case", nargs="+", choices=["inter", "leakage", "stream"], default=["inter", "leakage"]
    )
    parser.add_argument("--centers", type=int, default=300_000)
    parser.add_argument("--references", type=int, default=200_000)
    parser.add_argument("--stream-queries", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--json", help="also write the results to this JSON file")
    opts = parser.parse_args()
    params = {
        "centers": opts.centers,
        "references": opts.references,
        "stream_queries": opts.stream_queries,
        "chunk": opts.chunk,
    }
    results = []
    for case in opts.case:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(run_case, case, params).result()
        print(json.dumps(result), flush=True)
        results.append(result)
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump({"params": params, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
