"""bf16 against fp32 on this CPU, for the main job's models and for the ``auto`` probe.

``precision: auto`` (``vec2face.training.precision.resolve_bf16``) runs bf16 on a CPU only
where a 0.3 s probe shows it at least 1.3x faster than fp32. This script prints the probe
and, for the models the main job runs, images/s in each precision (best of ``--rounds``
after a warm-up, ``--threads`` threads):

* the zoo generator's ``generate`` at batch 64 (HSFace writing, the ablation);
* ``tiny_patch4`` (the main job's FR models) and ``tiny`` (the zoo teacher): inference at
  batch 128 (features, evaluation) and a training step at batch 128.

Run it with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` to hold oneDNN to AVX-512 BF16, as on
a CPU without AMX; the CPU line and the cap are printed first.

Usage: ``python bench/bench_precision.py [--threads 2] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generator import cpu_name, images_per_second  # noqa: E402

from vec2face import zoo  # noqa: E402
from vec2face.models import build_backbone  # noqa: E402
from vec2face.training.precision import AUTO_BF16_MIN_SPEEDUP, cpu_bf16_speedup  # noqa: E402


def best_seconds(fn, rounds: int) -> float:
    fn()  # warm-up: oneDNN builds its kernels on first use
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def fr_rates(name: str, rounds: int) -> dict[str, tuple[float, float]]:
    """{"infer"|"train": (fp32 images/s, bf16 images/s)} of backbone ``name`` at batch 128."""
    model = build_backbone(name).to(memory_format=torch.channels_last)
    x = torch.randn(128, 3, 112, 112).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    rates: dict[str, list[float]] = {"infer": [], "train": []}
    for bf16 in (False, True):
        def infer(bf16=bf16):
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                model(x)

        def train(bf16=bf16):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = model(x).float().pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        model.eval()
        rates["infer"].append(128 / best_seconds(infer, rounds))
        model.train()
        rates["train"].append(128 / best_seconds(train, max(1, rounds - 1)))
    return {k: (v[0], v[1]) for k, v in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '')!r}; "
          f"{args.threads} threads")
    speedup = cpu_bf16_speedup(args.threads)
    print(f"auto probe: bf16 runs {speedup:.2f}x fp32 -> "
          f"{'bf16' if speedup >= AUTO_BF16_MIN_SPEEDUP else 'fp32'}")
    rows = []
    generator = zoo.load("generator")
    gen = [images_per_second(generator, 64, bf16, batches=1, runs=args.rounds)
           for bf16 in (False, True)]
    rows.append(("zoo generator, generate, batch 64", *gen))
    for name in ("tiny_patch4", "tiny"):
        for kind, (fp32, bf16) in fr_rates(name, args.rounds).items():
            rows.append((f"{name}, {kind}, batch 128", fp32, bf16))
    print(f"{'model':<36} {'fp32 img/s':>11} {'bf16 img/s':>11} {'bf16/fp32':>10}")
    for label, fp32, bf16 in rows:
        print(f"{label:<36} {fp32:>11.0f} {bf16:>11.0f} {bf16 / fp32:>10.2f}")


if __name__ == "__main__":
    main()
