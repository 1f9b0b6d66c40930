"""Generation throughput of the paper-size Vec2Face generator on CPU (2 threads).

Measures, for ``vit_base_patch16`` with random weights:

* FLOPs per image (``torch.utils.flop_counter``) and the conv decoder's share;
* images/s of ``generate`` at batch 8 and 32, fp32 and bf16 autocast, after a warm-up,
  best of several runs, for our model and for an official-style baseline on the same weights
  in the same process (``official_generate``: fp32 weights under ``torch.autocast`` for bf16,
  unfused attention, NCHW convolutions: how the official code runs when wrapped in CPU
  autocast). The speed-up column is the like-for-like comparison on this machine; "vs ref"
  divides by the issue's reference figures, taken on a CPU with AMX-BF16;
* the cosine agreement between the features of fp32 and bf16 images through a fixed,
  randomly initialised FR-like network (our IResNet-18 when available, else a conv stack).

Usage: ``python bench/bench_generator.py [--quick] [--threads 2]``. Speeds on a shared machine
are approximate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vec2face.models import build_generator
from vec2face.models.generator import Vec2FaceGenerator

# img/s of the official code as the issue quotes it (2 threads, a CPU with AMX-BF16); the
# official-style column measures the same code path on the machine at hand.
OFFICIAL_REFERENCE = {("fp32", 8): 5.2, ("bf16", 8): 24.5}


def cpu_name() -> str:
    """The CPU's model name and its bf16 matrix extensions (AMX / AVX-512 BF16), from /proc."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown CPU"
    fields = {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in lines) if v}
    name, flags = fields.get("model name", "?"), fields.get("flags", "").split()
    ext = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{name} ({', '.join(ext) or 'no bf16 matrix extension'})"


def flops_per_image(model: Vec2FaceGenerator) -> tuple[float, float]:
    """(GFLOP per image, share of the conv decoder)."""
    with FlopCounterMode(display=False) as counter:
        model.generate(torch.randn(1, model.arch.rep_dim), seed=0, batch_size=1)
    total = counter.get_total_flops()
    decoder = sum(
        sum(c.values())
        for k, c in counter.get_flop_counts().items()
        if k.split(".")[-1] == "Decoder"
    )
    return total / 1e9, decoder / total


def official_generate(
    model: Vec2FaceGenerator, vectors: torch.Tensor, batch: int, bf16: bool
) -> torch.Tensor:
    """Generation as the official code runs it, on the same weights: fp32 weights, CPU bf16
    by wrapping the forward in ``torch.autocast`` (weights re-cast at every call, GroupNorm
    kept in fp32 by autocast's op lists), explicit-softmax attention, NCHW convolutions,
    ``torch.no_grad``. (N, 512) -> (N, 3, 112, 112)."""
    blocks = [*model.blocks, *model.decoder_blocks]
    for blk in blocks:
        blk.attn.fused_attn = False
    keep_all, mask_all = model.draw_masks(
        vectors.shape[0], model.gen_masking, torch.Generator().manual_seed(0)
    )
    out = []
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for s in range(0, vectors.shape[0], batch):
                keep, mask = keep_all[s : s + batch], mask_all[s : s + batch]
                latent, _ = model.forward_encoder(vectors[s : s + batch], keep, mask)
                _, z = model.forward_decoder(latent, keep, mask)
                out.append(model.im_decoder(z).float().clamp(-1.0, 1.0))
    finally:
        for blk in blocks:
            blk.attn.fused_attn = True
    return torch.cat(out)


def images_per_second(
    model: Vec2FaceGenerator,
    batch: int,
    bf16: bool,
    batches: int,
    runs: int,
    official: bool = False,
) -> float:
    """Best-of-``runs`` rate of one generation call over ``batches`` batches, after a warm-up;
    ``official``: :func:`official_generate` instead of ``model.generate``."""
    vectors = torch.randn(batch * batches, model.arch.rep_dim)

    def call(v: torch.Tensor) -> None:
        if official:
            official_generate(model, v, batch, bf16)
        else:
            model.generate(v, seed=0, batch_size=batch, autocast_bf16=bf16)

    call(vectors[:batch])
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        call(vectors)
        best = min(best, time.perf_counter() - start)
    return vectors.shape[0] / best


def fr_like_network() -> tuple[nn.Module, str]:
    """A fixed, randomly initialised FR-like feature extractor (N, 3, 112, 112) -> (N, 512)."""
    torch.manual_seed(1234)
    try:
        from vec2face.models.iresnet import build_backbone

        return build_backbone("r18").eval(), "IResNet-18 (random init)"
    except ImportError:
        layers: list[nn.Module] = []
        ch = 3
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.BatchNorm2d(out), nn.PReLU(out)]
            ch = out
        net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 7 * 7, 512))
        return net.eval(), "4-layer conv stack (random init)"


def bf16_agreement(model: Vec2FaceGenerator, n: int) -> tuple[float, float, float, str]:
    """(mean cosine, min cosine, max |pixel diff|) between fp32 and bf16 images, and the FR net."""
    vectors = torch.randn(n, model.arch.rep_dim)
    fp32 = model.generate(vectors, seed=3, batch_size=8)
    bf16 = model.generate(vectors, seed=3, batch_size=8, autocast_bf16=True)
    net, name = fr_like_network()
    with torch.inference_mode():
        cos = F.cosine_similarity(net(fp32), net(bf16), dim=1)
    return cos.mean().item(), cos.min().item(), (fp32 - bf16).abs().max().item(), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and runs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches, runs = (1, 2) if args.quick else (3, 4)

    model = build_generator("vit_base_patch16").eval()
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    gflop, dec_share = flops_per_image(model)
    print(
        f"vit_base_patch16: {n_params:.1f}M params, {gflop:.1f} GFLOP/image, conv decoder {dec_share:.0%}"
    )
    print(f"{cpu_name()}; threads={args.threads}, {batches} batch(es) per timed call, best of {runs}\n")
    print(
        f"{'batch':>5} {'dtype':>5} {'ours img/s':>11} {'official-style':>15} {'speed-up':>9} {'vs ref':>7}"
    )
    for batch in (8, 32):
        for dtype in ("fp32", "bf16"):
            bf16 = dtype == "bf16"
            ours = images_per_second(model, batch, bf16, batches, runs)
            base = images_per_second(model, batch, bf16, batches, runs, official=True)
            ref = OFFICIAL_REFERENCE.get((dtype, batch))
            vs_ref = f"{ours / ref:6.2f}x" if ref else "      -"
            print(
                f"{batch:>5} {dtype:>5} {ours:>11.2f} {base:>15.2f} {ours / base:>8.2f}x {vs_ref}"
            )

    mean_cos, min_cos, max_diff, net_name = bf16_agreement(model, 8 if args.quick else 32)
    print(
        f"\nfp32 vs bf16 images through {net_name}: cosine mean {mean_cos:.4f}, min {min_cos:.4f}; "
        f"max |pixel diff| {max_diff:.3f}"
    )


if __name__ == "__main__":
    main()
