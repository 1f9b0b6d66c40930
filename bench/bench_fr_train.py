"""Is the FR data pipeline a bottleneck? Full training step vs bare forward+backward.

Both figures use the same backbone, ArcFace head, SGD step, batch size, precision and
memory format; the bare figure feeds one fixed tensor, the full figure runs the engine's
``train_one_epoch`` on JPEG records (decoded once into the uint8 cache, or by DataLoader
workers with ``--workers N``), including uint8 -> float conversion and augmentation.
Rounds alternate bare and full so load from other processes hits both alike; the best
round of each is printed, and the target is full >= 0.9 x bare.

Run as ``python bench/bench_fr_train.py [--backbone tiny] [--batch 32] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vec2face.data import encode_image, write_lmdb
from vec2face.fr.data import BatchStream, FRTrainingData
from vec2face.fr.profiles import fr_train_config
from vec2face.fr.train import build_margin_model, train_one_epoch
from vec2face.training import autocast_for, make_grad_scaler


def _write_records(path: Path, n: int, identities: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (identities, 14, 14, 3)).repeat(8, 1).repeat(8, 2)
    records = []
    for i in range(n):
        img = np.clip(base[i % identities] + rng.integers(-30, 31, (112, 112, 3)), 0, 255)
        records.append((encode_image(img.astype(np.uint8), "jpeg", 90), i % identities))
    write_lmdb(records, path, layout="fr")
    return path


def _bare_seconds(model, optimizer, scaler, x, y, steps: int, amp: bool) -> float:
    device = x.device
    start = time.perf_counter()
    for _ in range(steps):
        with autocast_for(device, amp):
            loss, _ = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=0, help="0: decoded cache; N: N decoding workers"
    )
    parser.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    parser.add_argument(
        "--augment",
        choices=["paper", "flip"],
        default="paper",
        help="paper: random augmentation + erasing + flip; flip: flip only",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    amp = not args.no_amp
    paper = args.augment == "paper"
    cfg = fr_train_config(
        None,
        None,
        dict(
            backbone=args.backbone,
            batch_size=args.batch,
            amp=amp,
            channels_last=True,
            device="cpu",
            num_workers=args.workers,
            rand_augment=paper,
            erase_prob=0.5 if paper else 0.0,
            lr_schedule="cosine",
            epochs=1,
            lr=0.01,
        ),
    )
    device = torch.device("cpu")
    identities = 50
    with tempfile.TemporaryDirectory() as tmp:
        data = FRTrainingData(
            [_write_records(Path(tmp) / "d.lmdb", args.batch * args.steps, identities)]
        )
        if args.workers == 0:
            data.decode_all()
        stream = BatchStream(data, args.batch, seed=0, num_workers=args.workers)
        model = build_margin_model(cfg, identities).to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        scaler = make_grad_scaler(device, amp)
        x = (torch.rand(args.batch, 3, 112, 112) * 2 - 1).contiguous(
            memory_format=torch.channels_last
        )
        y = torch.randint(0, identities, (args.batch,))
        _bare_seconds(model, optimizer, scaler, x, y, 2, amp)  # warm-up
        bare, full = [], []
        for r in range(args.rounds):
            bare.append(_bare_seconds(model, optimizer, scaler, x, y, args.steps, amp))
            stream.set_epoch(r)
            stats = train_one_epoch(model, stream, optimizer, scaler, r, cfg, device=device)
            full.append(stats["epoch_time_s"] / stats["steps"])
    b, f = args.batch / min(bare), args.batch / min(full)
    mode = "decoded cache" if args.workers == 0 else f"{args.workers} decoding workers"
    print(
        f"{args.backbone}, batch {args.batch}, 112x112, {args.threads} threads, "
        f"{'bf16 autocast' if amp else 'fp32'}, channels_last, augment={args.augment}, {mode}"
    )
    print(f"bare forward+backward+step: {b:8.1f} img/s")
    print(f"full training step:         {f:8.1f} img/s  ({f / b:.2f} x bare; target >= 0.90)")


if __name__ == "__main__":
    main()
