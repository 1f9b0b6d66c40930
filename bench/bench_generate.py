"""End-to-end HSFace writing throughput against the bare generator (issue 5's speed target).

For a generator with random weights (``--arch``: ``tiny`` by default, ``vit_base_patch16``
for the paper's size) at batch 32 and 64, prints images/s of

* ``bare``: ``model.generate`` on the same image vectors (no encoding, no writing);
* ``end-to-end``: :func:`vec2face.hsface.writer.generate_shard` (variation vectors,
  generator, JPEG, LMDB, vectors.npy, manifest), with encoding and writing overlapped in
  a background thread;

and their ratio (target >= 0.8). Best of ``--repeats`` runs after a warm-up.

Usage: ``python bench/bench_generate.py [--arch tiny] [--identities 8] [--images 50]
[--threads 2] [--bf16]``.
Speeds on a shared machine are approximate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vec2face.hsface.writer import HSFaceConfig, generate_shard, shard_vectors
from vec2face.models import build_generator


def best_rate(fn, images: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return images / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny", help="generator arch (see vec2face.models)")
    ap.add_argument("--identities", type=int, default=8)
    ap.add_argument("--images", type=int, default=50, help="images per identity")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_generator(args.arch).to(args.device).eval()
    ids = np.random.default_rng(0).standard_normal((args.identities, 512)).astype(np.float32)
    n = args.identities * args.images
    print(
        f"{args.arch} generator, {args.device}, {args.threads} threads, {n} images "
        f"({args.identities} ids x {args.images}), bf16={args.bf16}"
    )
    for batch in (32, 64):
        cfg = HSFaceConfig(
            identities=args.identities,
            images_per_identity=args.images,
            shard_identities=args.identities,
            batch_size=batch,
            bf16=args.bf16,
            device=args.device,
        )
        vectors = shard_vectors(ids, 0, args.identities, cfg)[0]
        model.generate(vectors[:batch], batch_size=batch, autocast_bf16=args.bf16)  # warm-up
        bare = best_rate(
            lambda v=vectors, b=batch: model.generate(
                v, seed=0, batch_size=b, autocast_bf16=args.bf16
            ),
            n,
            args.repeats,
        )
        with tempfile.TemporaryDirectory() as tmp:
            e2e = best_rate(
                lambda c=cfg, t=tmp: generate_shard(model, ids, 0, c, Path(t)), n, args.repeats
            )
        print(
            f"batch {batch:3d}: bare {bare:7.1f} img/s   end-to-end {e2e:7.1f} img/s   "
            f"ratio {e2e / bare:.2f}"
        )


if __name__ == "__main__":
    main()
