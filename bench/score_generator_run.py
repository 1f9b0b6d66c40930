"""Score every epoch checkpoint of a generator training run on toy-LFW and draw its curve.

For a run folder made by ``vec2face generator train`` (or a bench that trains through it:
``bench/bench_perceptual_trunk.py``), each ``checkpoints/checkpoint_*.pt`` is scored as the
long run scores its chunks (:func:`vec2face.generator.long_run.score_checkpoint`: the zoo
generator figures on the zoo's 200 toy-LFW pairs, by the zoo's judge) and written as a row of
``--out``.csv, plotted to ``--out``.png with the targets. The data (toy LFW, the zoo teacher's
features) come from the zoo's work folder, rendered there when missing.

Usage: ``python bench/score_generator_run.py RUN_DIR --out docs/NAME [--steps-per-epoch 600]``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from vec2face.config import read_params
from vec2face.generator.long_run import append_curve, plot_curve, score_checkpoint
from vec2face.zoo import load
from vec2face.zoo.build import GENERATOR_PAIRS, prepare_generator_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the run folder (holds checkpoints/)")
    ap.add_argument("--out", type=Path, required=True, help="output stem: STEM.csv, STEM.png")
    ap.add_argument("--steps-per-epoch", type=int, required=True,
                    help="optimiser steps of one epoch (the curve's x axis)")
    ap.add_argument("--batch-size", type=int, default=32, help="images per step")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--work", type=Path, default=Path("outputs/zoo"))
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    params = read_params(args.params)
    data = prepare_generator_data(params, args.work, progress=False)
    judge = load("judge")
    csv_path = args.out.with_suffix(".csv")
    for ckpt in sorted((args.run / "checkpoints").glob("checkpoint_*.pt")):
        epoch = int(re.search(r"(\d+)", ckpt.stem).group(1))
        figures = score_checkpoint(ckpt, data, judge, GENERATOR_PAIRS)
        step = epoch * args.steps_per_epoch
        append_curve(csv_path, {"step": step, "epoch": epoch,
                                "images_seen": step * args.batch_size, **figures})
        print(f"{ckpt}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    plot_curve(csv_path, args.out.with_suffix(".png"),
               args.title or f"generator run {args.run.name} (toy-LFW, zoo judge)")
    print(f"wrote {csv_path} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
