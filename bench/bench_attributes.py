"""Throughput of the toy attribute estimator on CPU: training steps and ``predict``.

Prints images/s for forward+backward (a training step without the optimiser) and for
``predict`` on uint8 images, in fp32 and bf16 autocast, channels_last.
Run as ``python bench/bench_attributes.py [--batch 128] [--threads 2] [--iters 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from vec2face.attributes import build_attribute_net


def _train_rate(model, x, bf16: bool, iters: int) -> float:
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    best = float("inf")
    for i in range(iters + 1):
        t = time.perf_counter()
        with amp:
            z = model.normalized(x)
        z.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
        if i:  # the first iteration is warm-up
            best = min(best, time.perf_counter() - t)
    return len(x) / best


def _predict_rate(model, images: np.ndarray, bf16: bool, iters: int) -> float:
    best = float("inf")
    for i in range(iters + 1):
        t = time.perf_counter()
        model.predict(images, batch_size=len(images), amp=bf16)
        if i:
            best = min(best, time.perf_counter() - t)
    return len(images) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_attribute_net().to(memory_format=torch.channels_last).train()
    x = (torch.rand(args.batch, 3, 112, 112) * 2 - 1).contiguous(memory_format=torch.channels_last)
    images = np.random.default_rng(0).integers(0, 256, (args.batch, 112, 112, 3), dtype=np.uint8)
    print(f"attrnet_s, batch {args.batch}, {args.threads} threads")
    for bf16 in (False, True):
        name = "bf16" if bf16 else "fp32"
        print(f"  {name} forward+backward: {_train_rate(model, x, bf16, args.iters):7.1f} img/s")
        rate = _predict_rate(model, images, bf16, args.iters)
        print(f"  {name} predict:          {rate:7.1f} img/s")


if __name__ == "__main__":
    main()
