"""The tiny-profile generator targets, measured by the judge on identities it never saw.

Reads the first ``--pairs`` pairs of a toy benchmark set (default ``lfw.bin``: a benchmark
pool, disjoint from the webface pool the generator trains on), rebuilds each pair's first
image from its teacher feature, prints the figures of
``vec2face.generator.quality.measure_generator_quality`` against the targets, and writes

* ``reconstructions.png``: rows of (original | generated) pairs;
* ``sampled.png``: faces generated from identity vectors sampled with the pca sampler
  (reference: the teacher's features of the set's images), several per identity;
* ``quality.json``: the figures.

Usage::

    python bench/bench_generator_quality.py --generator OUT/generator.pt \
        --teacher TEACHER_DIR --judge JUDGE_DIR --bins BINS_DIR --out DIR [--pairs 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vec2face.data.images import decode_image
from vec2face.data.verification_bin import read_pair_sample
from vec2face.fr.extract import load_trained_backbone
from vec2face.generator.data import tensor_to_image
from vec2face.generator.quality import embed_images, measure_generator_quality
from vec2face.hsface.identities import sample_identities
from vec2face.hsface.variation import intra_class_vectors
from vec2face.models import load_generator_checkpoint
from vec2face.toyfaces.world import preview_grid

TARGETS = {
    "judge_cosine_recon": 0.6,
    "identity_preservation": 0.9,
    "sharpness_ratio": 0.5,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--judge", required=True)
    ap.add_argument("--bins", required=True)
    ap.add_argument("--set", default="lfw")
    ap.add_argument("--pairs", type=int, default=1000, help="pairs used (a multiple of 10)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-amp", action="store_true", help="fp32 throughout")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (CUDA when available)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    generator, _ = load_generator_checkpoint(args.generator)
    teacher = load_trained_backbone(args.teacher)
    judge = load_trained_backbone(args.judge)
    generator, teacher, judge = (m.to(device) for m in (generator, teacher, judge))
    blobs, issame = read_pair_sample(Path(args.bins) / f"{args.set}.bin", args.pairs)
    images = np.stack([decode_image(b) for b in blobs])
    start = time.perf_counter()
    figures, generated = measure_generator_quality(
        generator, teacher, judge, images, issame, amp=not args.no_amp
    )
    seconds = time.perf_counter() - start
    result = {"set": args.set, **figures.as_dict(), "seconds": seconds}
    print(json.dumps(result, indent=2))
    for key, target in TARGETS.items():
        state = "met" if result[key] >= target else "NOT met"
        print(f"{key:<24} {result[key]:.3f}  target >= {target}  {state}")
    (out / "quality.json").write_text(json.dumps(result, indent=2) + "\n")

    # reconstructions: 8 rows of 4 (original | generated) pairs
    originals = images[0::2][:32]
    pairs = np.stack([originals, generated[:32]], 1).reshape(-1, *originals.shape[1:])
    Image.fromarray(preview_grid(list(pairs), cols=8)).save(out / "reconstructions.png")

    # new identities: pca sampler over the teacher's features of this set, with HSFace's
    # intra-class variation (sigma 0.3/0.5/0.7), 6 identities x 8 images
    reference = embed_images(
        teacher, images[: min(len(images), 1000)], 64, not args.no_amp, flip=False
    )
    ids = sample_identities(
        6, dim=reference.shape[1], threshold=0.3, sampler="pca", reference=reference, seed=0
    )
    vecs = np.concatenate([intra_class_vectors(v, 8, rng=i)[0] for i, v in enumerate(ids)])
    sampled = tensor_to_image(generator.generate(torch.from_numpy(vecs), seed=0))
    Image.fromarray(preview_grid(list(sampled), cols=8)).save(out / "sampled.png")
    print(f"wrote {out / 'reconstructions.png'}, {out / 'sampled.png'}, {out / 'quality.json'}")


if __name__ == "__main__":
    main()
