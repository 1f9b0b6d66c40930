"""Equal-step comparison: the tiny generator recipe with and without the toy perceptual trunk.

Both recipes train the tiny generator from scratch on the same records of a training LMDB
(image + zoo-teacher feature), with the same seed, batch 32 and one warmup/cosine schedule
over ``--steps`` (the largest of the comparison's step counts); they differ only in the
network of the lpips term:

* ``current``: the tiny recipe before the toy trunk (``perceptual_trunk: lpips``,
  ``lpips_net: alex``; without ImageNet weights on this machine, a random AlexNet);
* ``toy``: the same recipe with ``loss.perceptual_trunk: toy`` (the zoo's ``perceptual``),
  as the tiny preset now ships it.

The records are cut to a whole number of batches per epoch so that every compared step
count ends an epoch and has its epoch checkpoint (e.g. 600 steps an epoch and 3 epochs:
checkpoints at 600, 1,200 and 1,800 steps). Each checkpoint is scored by the zoo judge on
``--pairs`` toy-LFW pairs (judge cosine, identity preservation, sharpness ratio, face MAE:
:func:`vec2face.zoo.figures.generator_figures`) and ``side_by_side_<steps>.png`` shows the
originals beside both recipes' reconstructions. Runs resume (rerun the same command), so
the comparison can span sessions. Prints the CPU and a table; writes ``comparison.json``.

Usage::

    python bench/bench_perceptual_trunk.py --data outputs/zoo/generator_data/train.lmdb \
        --teacher outputs/zoo/generator_data/teacher --bins outputs/zoo/benchmarks \
        --out outputs/bench_trunk --steps 600,1800 [--recipes current,toy] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vec2face.data.images import decode_image
from vec2face.data.verification_bin import read_pair_sample
from vec2face.generator.data import GeneratorTrainingData
from vec2face.generator.train import fit, generator_train_config
from vec2face.models import load_generator_checkpoint
from vec2face.toyfaces.world import preview_grid
from vec2face.zoo import load
from vec2face.zoo.figures import generator_figures

RECIPES = {
    "current": {"loss": {"perceptual_trunk": "lpips"}},
    "toy": {"loss": {"perceptual_trunk": "toy"}},
}
BATCH = 32


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def record_mask(data: Path, steps_per_epoch: int, out: Path) -> Path:
    """The first ``steps_per_epoch * BATCH`` records, as a ``.npy`` mask."""
    n = steps_per_epoch * BATCH
    total = len(GeneratorTrainingData(data))
    if n > total:
        raise SystemExit(f"--data {data}: {total} records, {steps_per_epoch} steps of {BATCH} need {n}")
    path = out / f"mask_{n}.npy"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        np.save(path, np.arange(n, dtype=np.int64))
    return path


def train(recipe: str, args, mask: Path, epochs: int) -> Path:
    out = Path(args.out) / recipe
    config = generator_train_config("tiny", {"generator": {**RECIPES[recipe]}}, {
        "teacher_checkpoint": args.teacher,
        "epochs": epochs,
        "batch_size": BATCH,
        "seed": args.seed,
        "mask": str(mask),
        "keep_checkpoints": epochs,
        "num_workers": 0,
        "device": "cpu",
    })
    if (out / "generator.pt").is_file():
        return out
    resume = (out / "checkpoints" / "last.pt").is_file()
    t0 = time.perf_counter()
    fit(config, args.data, out, resume=resume, progress=not args.quiet)
    (out / f"wall_{int(time.time())}.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="training LMDB (image, teacher feature, label)")
    ap.add_argument("--teacher", required=True, help="teacher folder (the zoo's, exported)")
    ap.add_argument("--bins", required=True, help="folder holding lfw.bin")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", default="600,1800", help="compared step counts (comma-separated)")
    ap.add_argument("--recipes", default="current,toy")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--train-only", action="store_true", help="train, do not score")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = sorted(int(s) for s in args.steps.split(","))
    per_epoch = int(np.gcd.reduce(steps))
    epochs = steps[-1] // per_epoch
    recipes = args.recipes.split(",")
    print(f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}")
    print(f"{per_epoch} steps an epoch x {epochs} epochs, batch {BATCH}; compared at {steps}")
    mask = record_mask(Path(args.data), per_epoch, Path(args.out))
    runs = {r: train(r, args, mask, epochs) for r in recipes}
    if args.train_only:
        return

    teacher = load("teacher")
    judge = load("judge")
    lfw = Path(args.bins) / "lfw.bin"
    blobs, _ = read_pair_sample(lfw, args.pairs)
    originals = np.stack([decode_image(b) for b in blobs])
    table: dict[str, dict[str, dict[str, float]]] = {}
    for n in steps:
        shown = [originals[:8]]
        for recipe, out in runs.items():
            ckpt = out / "checkpoints" / f"checkpoint_{n // per_epoch:04d}.pt"
            generator, _ = load_generator_checkpoint(ckpt)
            figures, generated = generator_figures(generator, teacher, judge, lfw, args.pairs)
            table.setdefault(str(n), {})[recipe] = figures
            shown.append(generated[:8])
        # rows: original, then each recipe's reconstruction of the first image of 8 pairs
        grid = preview_grid([im for row in zip(*shown) for im in row], cols=len(shown), scale=2)
        Image.fromarray(grid).save(Path(args.out) / f"side_by_side_{n}.png")
    keys = ("judge_cosine_recon", "identity_preservation", "sharpness_ratio", "face_mae")
    print(f"{'steps':>6} {'recipe':<8} " + " ".join(f"{k:>22}" for k in keys))
    for n, by_recipe in table.items():
        for recipe, f in by_recipe.items():
            print(f"{n:>6} {recipe:<8} " + " ".join(f"{f[k]:>22.4f}" for k in keys))
    (Path(args.out) / "comparison.json").write_text(json.dumps(
        {"cpu": cpu_name(), "steps": steps, "batch": BATCH, "pairs": args.pairs,
         "recipes": {r: RECIPES[r] for r in recipes}, "figures": table}, indent=2))


if __name__ == "__main__":
    main()
