"""Training-step speed of the tiny-profile Vec2Face generator on CPU.

Runs ``train_one_epoch`` (the real engine: generator + loss terms + frozen tiny teacher,
optimiser steps, clipping, per-iteration LR) on in-memory random batches and reports seconds
per step and images/s, for fp32 and bf16 autocast, with and without LPIPS, before
``disc_start`` (GAN off) and after it (GAN and discriminator step on). LPIPS uses a random
VGG trunk unless torchvision's VGG16 file is in the torch hub cache (same FLOPs either way).

Usage: ``python bench/bench_generator_train.py [--batch 32] [--steps 3] [--threads 2] [--quick]``.
The machine may be shared: figures are approximate (best of the timed epochs).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from vec2face.generator.losses import GeneratorLoss, GeneratorLossConfig
from vec2face.generator.train import GeneratorTrainConfig, train_one_epoch
from vec2face.models import build_backbone, build_discriminator, build_generator


def _batches(batch: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (
            torch.rand(batch, 3, 112, 112, generator=g) * 2 - 1,
            torch.randn(batch, 512, generator=g),
            torch.zeros(batch, dtype=torch.long),
        )
        for _ in range(steps)
    ]


def time_training(
    batch: int, steps: int, bf16: bool, lpips: str | None, gan: bool, repeats: int
) -> float:
    """Best seconds per step over ``repeats`` epochs of ``steps`` steps, after a warm-up step."""
    torch.manual_seed(0)
    loss_cfg = GeneratorLossConfig(
        lpips=0.2 if lpips else 0.0, lpips_net=lpips or "vgg", disc_start=0 if gan else 10**6
    )
    config = GeneratorTrainConfig(
        # train_one_epoch reads no file: the teacher below is built in memory.
        model="tiny",
        discriminator="patchgan_tiny",
        teacher="tiny",
        teacher_checkpoint="(in memory)",
        batch_size=batch,
        epochs=10,
        warmup_epochs=1,
        amp=bf16,
        device="cpu",
        loss=loss_cfg,
    )
    model = build_generator("tiny")
    disc = build_discriminator("patchgan_tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_fn = GeneratorLoss(loss_cfg, build_backbone("tiny"))
    opts = (
        torch.optim.AdamW(model.parameters(), lr=1e-4, betas=config.betas),
        torch.optim.AdamW(disc.parameters(), lr=1e-4, betas=config.betas),
    )
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    kwargs = {"base_lr": 1e-4, "device": torch.device("cpu")}
    train_one_epoch(model, disc, loss_fn, _batches(batch, 1), opts, scaler, 1, config, **kwargs)
    data = _batches(batch, steps)
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        train_one_epoch(model, disc, loss_fn, data, opts, scaler, 1 + r, config, **kwargs)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs (best is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 steps, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.repeats = 8, 2, 1
    torch.set_num_threads(args.threads)
    print(
        f"tiny generator training step, batch {args.batch}, {args.threads} threads "
        f"(torch {torch.__version__}, oneDNN: {torch.backends.mkldnn.is_available()})"
    )
    print(f"{'precision':<10}{'LPIPS':<7}{'GAN':<6}{'s/step':>9}{'img/s':>9}")
    rows = [(bf16, lp, False) for bf16 in (False, True) for lp in (None, "vgg")]
    rows += [(True, "alex", False), (True, "vgg", True), (True, "alex", True)]
    results = {}
    for bf16, lp, gan in rows:
        sec = time_training(args.batch, args.steps, bf16, lp, gan, args.repeats)
        results[(bf16, lp, gan)] = sec
        print(
            f"{'bf16' if bf16 else 'fp32':<10}{lp or 'off':<7}{'on' if gan else 'off':<6}"
            f"{sec:>9.3f}{args.batch / sec:>9.1f}",
            flush=True,
        )
    for lp in (None, "vgg"):
        print(
            f"bf16 speed-up, LPIPS {lp or 'off'}: "
            f"{results[(False, lp, False)] / results[(True, lp, False)]:.2f}x"
        )


if __name__ == "__main__":
    main()
