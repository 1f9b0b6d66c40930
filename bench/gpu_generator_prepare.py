"""Prepare the inputs of ``bench/gpu_generator_run.sh`` (the folder it reads as ``DEV``).

The device call carries at most 64 MiB, so the 169 MB training LMDB stays behind: the run
re-renders the webface pool and re-extracts the teacher features there. This copies what
cannot be rebuilt in seconds (the teacher's and the judge's weights), a 400-pair prefix of
the toy LFW set for scoring, and writes one params file per run: params.yaml with the run's
``generator`` section and the FR checkpoints pointing into ``DEV``.

Usage::

    python bench/gpu_generator_prepare.py --root outputs/tiny --out .devdata
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import yaml

from vec2face.data.verification_bin import read_pair_sample, write_bin

# The runs of the 2026-12-04 session (README, Status): A is the longest CPU run's recipe
# (bf16 on CUDA), B the paper-size generator with the same losses (fp16 + grad scaler).
_COMMON = {"batch_size": 64, "num_workers": 5, "keep_checkpoints": 100, "warmup_epochs": 0.5}
_LOSS = {"fr_perceptual": 0.5, "adaptive_gan_weight": True}
RUNS = {
    "a": {
        **_COMMON, "epochs": 16, "lr": 6e-4, "amp_cuda_dtype": "bfloat16",
        "model_args": {"vector_scale": math.sqrt(512), "dec_norm_groups": 8},
        "loss": {**_LOSS, "disc_start": 8},
    },
    "b": {
        **_COMMON, "model": "vit_base_patch16", "discriminator": "patchgan", "epochs": 8,
        "lr": 2e-4, "model_args": {"vector_scale": math.sqrt(512)},
        "loss": {**_LOSS, "disc_start": 5},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="outputs/tiny", help="the tiny pipeline's outputs")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default=".devdata")
    ap.add_argument("--pairs", type=int, default=400, help="toy-LFW pairs carried")
    args = ap.parse_args()
    root, out = Path(args.root), Path(args.out)
    for role in ("fr_teacher", "fr_judge"):
        (out / role).mkdir(parents=True, exist_ok=True)
        for name in ("backbone.pt", "backbone.json"):
            shutil.copy2(root / role / name, out / role / name)
    blobs, issame = read_pair_sample(root / "benchmarks" / "lfw.bin", args.pairs)
    (out / "bins").mkdir(exist_ok=True)
    write_bin(blobs, issame.tolist(), out / "bins" / "lfw.bin")
    params = yaml.safe_load(Path(args.params).read_text())
    params["fr_teacher"]["checkpoint"] = str(out / "fr_teacher")
    params["fr_judge"]["checkpoint"] = str(out / "fr_judge")
    for run, section in RUNS.items():
        section = {"teacher_checkpoint": str(out / "fr_teacher"), **section}
        text = yaml.safe_dump({**params, "generator": section}, sort_keys=False)
        (out / f"params_{run}.yaml").write_text(text)
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main()
