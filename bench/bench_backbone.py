"""Throughput of an FR backbone on CPU: forward+backward (training) and forward-only (inference).

Prints images/s (best of several timed iterations after warm-up) for each batch size,
precision (fp32, bf16 autocast) and memory format (contiguous NCHW, channels_last).
Run as ``python bench/bench_backbone.py [--quick] [--model r50] [--threads 2]``.
The insightface r50 reference on the development machine (fp32, NCHW, 2 threads):
~5.4 img/s forward+backward at batch 32, ~18 img/s forward-only at batch 64.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time

import torch

from vec2face.models import build_backbone


def _step(model: torch.nn.Module, x: torch.Tensor, train: bool, bf16: bool) -> None:
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if train:
        with amp:
            out = model(x)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad(), amp:
            model(x)


def bench(
    model: torch.nn.Module,
    batch: int,
    train: bool,
    bf16: bool,
    channels_last: bool,
    warmup: int,
    iters: int,
) -> float:
    """Best images/s over ``iters`` timed steps after ``warmup`` untimed ones."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train(train)
    x = (torch.rand(batch, 3, 112, 112) * 2 - 1).contiguous(memory_format=fmt)
    for _ in range(warmup):
        _step(model, x, train, bf16)
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        _step(model, x, train, bf16)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="r50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    parser.add_argument(
        "--iters", type=int, default=3, help="timed iterations per setting (best is kept)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one timed iteration per setting")
    parser.add_argument(
        "--formats", nargs="+", default=["nchw", "channels_last"], choices=["nchw", "channels_last"]
    )
    args = parser.parse_args()
    if args.quick:
        args.iters, args.warmup = 1, 1

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_backbone(args.model)
    print(
        f"{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{args.threads} threads, best of {args.iters} after {args.warmup} warm-up"
    )
    print(f"{'mode':<9} {'batch':>5} {'precision':<9} {'format':<13} {'img/s':>7}")
    for train, batch, bf16, fmt in itertools.product(
        (True, False), args.batches, (False, True), args.formats
    ):
        rate = bench(model, batch, train, bf16, fmt == "channels_last", args.warmup, args.iters)
        mode = "fwd+bwd" if train else "fwd"
        print(
            f"{mode:<9} {batch:>5} {'bf16' if bf16 else 'fp32':<9} {fmt:<13} {rate:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
