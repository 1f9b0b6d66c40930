"""How fast the tiny generator learns the feature-to-pixel map: held-out MSE against steps.

Trains a generator on pixel MSE alone (AdamW, bf16 autocast, constant lr after a short
warmup) on the first records of a training LMDB (image + teacher feature) and prints the
MSE on the last ``--heldout`` records (other identities: records are stored identity by
identity) every ``--eval-every`` steps, beside two reference points computed on the same
split: the mean training image and the closed-form ridge map from feature to pixels.

It isolates the question "does this architecture / initialisation / masking learn the
image layout quickly?" from the other loss terms; ``--texture W`` adds the TextureLoss term
(the printed train loss is then the sum), and every evaluation also prints the sharpness
ratio of the held-out reconstructions (face-box Laplacian variance, generated / real, as
bench_generator_quality.py measures it). ``--npz`` trains on any images and vectors instead,
e.g. the toy renderer's own parameters: what a decoder learns in N steps when the input
tells it everything. Usage:

    python bench/bench_generator_learning.py --data TRAIN_LMDB --steps 600 \
        [--whiten] [--pos-std 0.5] [--train-mask 0.5,0.75] [--set dec_norm_groups=8] \
        [--decoder-only] [--texture 0.3 --trunk TEACHER_DIR] [--grid recon.png] \
        [--per-identity 12]

The bottleneck test (ridge from the top-k principal directions of the features, per k)::

    python bench/bench_generator_learning.py --data TRAIN_LMDB --records 12256 \
        --heldout 2000 --pca-dims 64,128,192,256,384,512
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from vec2face.fr.extract import load_trained_backbone
from vec2face.generator.data import GeneratorTrainingData
from vec2face.generator.losses import TextureLoss
from vec2face.generator.quality import laplacian_variance
from vec2face.models import build_backbone, build_generator
from vec2face.models.generator import MaskingConfig


def load_records(
    path: str, n: int, heldout: int = 0, per_identity: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` records: images (n, 3, 112, 112) uint8, features (n, D) float32.

    With ``per_identity`` K: the last ``heldout`` records of the file (whole identities when
    the file holds them identity by identity, as the subset does), preceded by ``n - heldout``
    training records made of the first K images of as many identities as that takes: the
    same number of training images spread over more identities.
    """
    data = GeneratorTrainingData(path)
    if per_identity is None:
        chosen = np.arange(min(n, len(data)))
    else:
        labels = data.faces.labels
        test = np.arange(len(data) - heldout, len(data))
        seen: dict[int, int] = {}
        train = []
        for i, label in enumerate(labels[: len(data) - heldout]):
            if seen.get(int(label), 0) < per_identity and len(train) < n - heldout:
                seen[int(label)] = seen.get(int(label), 0) + 1
                train.append(i)
        print(f"training on {len(train)} images of {len(seen)} identities")
        chosen = np.concatenate([np.asarray(train, dtype=np.int64), test])
    n = len(chosen)
    images = torch.empty(n, 3, 112, 112, dtype=torch.uint8)
    feats = torch.empty(n, data.feature_dim)
    for row, i in enumerate(chosen.tolist()):
        # The stored uint8 image, not the [-1, 1] tensor of data[i]: 4x less memory held.
        sample = data.faces[i]
        images[row] = torch.from_numpy(sample.image).permute(2, 0, 1)
        feats[row] = torch.from_numpy(sample.feature)
    return images, feats


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def ridge_mse(train_x, train_y, test_x, test_y, lam: float = 0.01) -> float:
    """Held-out MSE of the closed-form ridge map from (centred) features to pixels."""
    mx, my = train_x.mean(0), train_y.mean(0)
    x, y = (train_x - mx).double(), (train_y - my).double()
    a = x.T @ x + lam * torch.eye(x.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(a, x.T @ y)
    pred = ((test_x - mx).double() @ w + my.double()).float()
    return float(F.mse_loss(pred, test_y))


def ridge_mse_top_pcs(train_x, train_y, test_x, test_y, dims: list[int], lam: float = 0.01):
    """Held-out ridge MSE from the top-k principal directions of the training features, per k
    in ``dims``: how much of the pixels a k-wide linear bottleneck (the tiny generator's
    vector projection is 512 -> 192) can carry. Returns {k: MSE}."""
    mx = train_x.mean(0)
    centred = (train_x - mx).double()
    _, evecs = torch.linalg.eigh(centred.T @ centred)
    order = evecs.flip(1)  # eigh sorts ascending: largest variance first
    out = {}
    for k in dims:
        basis = order[:, :k].float()
        out[k] = ridge_mse((train_x - mx) @ basis, train_y, (test_x - mx) @ basis, test_y, lam)
    return out


class DecoderOnly(nn.Module):
    """The generator's convolutional image decoder fed by its vector projection (whitened
    with ``--whiten``) and one learned linear map to the 7x7 input map: the transformer path
    taken out of the question.

    forward(vectors (N, D)) -> object with ``images`` (N, 3, 112, 112).
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.vector_scale = generator.arch.vector_scale
        self.proj = generator.latent_prior_proj_f
        self.im_decoder = generator.im_decoder
        self.z_channels = generator.arch.z_channels
        self.to_map = nn.Linear(self.proj.out_features, 49 * self.z_channels)

    def forward(self, vectors: torch.Tensor, generator: torch.Generator | None = None):
        z = self.to_map(self.proj(vectors * self.vector_scale))
        z = z.reshape(-1, 7, 7, self.z_channels).permute(0, 3, 1, 2).contiguous()
        return argparse.Namespace(images=self.im_decoder(z))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="training LMDB with teacher features")
    src.add_argument(
        "--npz",
        help="instead of --data: an .npz with 'images' (N, 3, 112, 112) uint8 and 'features' "
        "(N, D) float32, e.g. the toy renderer's own parameters (an upper bound on what "
        "any feature can tell the decoder)",
    )
    ap.add_argument("--records", type=int, default=6256, help="records read (train + held out)")
    ap.add_argument("--heldout", type=int, default=256)
    ap.add_argument(
        "--per-identity",
        type=int,
        default=None,
        help="train on the first K images of each identity (held out: the file's last records)",
    )
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.6e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--whiten", action="store_true", help="init_input_whitening on the train split")
    ap.add_argument("--pos-std", type=float, default=None, help="re-init both position embeddings")
    ap.add_argument("--train-mask", default=None, help="ratio_min,ratio_mu of the training masking")
    ap.add_argument("--set", action="append", default=[], help="arch override KEY=VALUE (JSON value)")
    ap.add_argument("--decoder-only", action="store_true", help="see DecoderOnly")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--save", default=None, help="save the trained model's state dict here")
    ap.add_argument("--no-ridge", action="store_true")
    ap.add_argument(
        "--pca-dims",
        default=None,
        help="comma-separated k: print the ridge MSE from the top-k principal directions of "
        "the features for each k (the bottleneck test) and stop",
    )
    ap.add_argument("--texture", type=float, default=0.0, help="weight of the TextureLoss term")
    ap.add_argument("--texture-patch", type=int, default=16)
    ap.add_argument(
        "--trunk",
        default="random",
        help="FR trunk of the texture term: a `vec2face fr train` output, or 'random' (a "
        "randomly initialised tiny IResNet)",
    )
    ap.add_argument(
        "--grid",
        default=None,
        help="after training, save a PNG of 8 held-out originals over their reconstructions",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.time()
    if args.npz:
        with np.load(args.npz) as z:
            images = torch.from_numpy(z["images"][: args.records])
            feats = torch.from_numpy(z["features"][: args.records]).float()
    else:
        images, feats = load_records(args.data, args.records, args.heldout, args.per_identity)
    n_train = len(images) - args.heldout
    test_img = to_float(images[n_train:])
    test_f = feats[n_train:]
    mean_img = to_float(images[:n_train]).mean(0, keepdim=True)
    print(f"records: {n_train} train, {args.heldout} held out ({time.time() - t0:.0f} s to read)")
    print(f"mean-image MSE: {float(F.mse_loss(mean_img.expand_as(test_img), test_img)):.4f}")
    if not args.no_ridge:
        train_pixels = to_float(images[:n_train]).flatten(1)
        print(f"ridge MSE:      {ridge_mse(feats[:n_train], train_pixels, test_f, test_img.flatten(1)):.4f}")
        if args.pca_dims:
            dims = [int(k) for k in args.pca_dims.split(",")]
            table = ridge_mse_top_pcs(feats[:n_train], train_pixels, test_f, test_img.flatten(1), dims)
            for k, mse in table.items():
                print(f"ridge MSE from the top {k:>3} principal directions: {mse:.4f}")
            return
        del train_pixels

    overrides = {"vector_scale": math.sqrt(feats.shape[1]), "rep_dim": feats.shape[1]}
    for kv in args.set:
        key, value = kv.split("=", 1)
        overrides[key] = json.loads(value)
    if args.train_mask:
        lo, mu = (float(v) for v in args.train_mask.split(","))
        overrides["train_masking"] = MaskingConfig(ratio_min=lo, ratio_mu=mu)
    model = build_generator("tiny", **overrides)
    if args.whiten:
        print("whitening:", model.init_input_whitening(feats[:n_train]))
    if args.pos_std is not None:
        with torch.no_grad():
            torch.nn.init.normal_(model.token_emb.position_embeddings.weight, std=args.pos_std)
            torch.nn.init.normal_(model.decoder_pos_embed_learned, std=args.pos_std)
    if args.decoder_only:
        model = DecoderOnly(model)
    texture = None
    if args.texture > 0:
        if args.trunk == "random":
            trunk = build_backbone("tiny")
        else:
            trunk = load_trained_backbone(args.trunk)
        texture = TextureLoss(trunk, args.texture_patch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    warmup = max(1, args.steps // 20)
    g = torch.Generator().manual_seed(args.seed)

    def predict() -> torch.Tensor:
        """Held-out reconstructions, (heldout, 3, 112, 112) float32."""
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=not args.fp32):
            out = torch.cat([model(test_f[s : s + 64]).images.float() for s in range(0, len(test_f), 64)])
        model.train()
        return out

    def evaluate() -> tuple[float, float]:
        """Held-out MSE and sharpness ratio (face-box Laplacian variance, generated / real)."""
        pred = predict()
        as_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
        sharp = laplacian_variance(as_u8(pred)).mean() / laplacian_variance(as_u8(test_img)).mean()
        return float(F.mse_loss(pred, test_img)), float(sharp)

    t0 = time.time()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / warmup)
        idx = torch.randint(0, n_train, (args.batch,), generator=g)
        with torch.autocast("cpu", torch.bfloat16, enabled=not args.fp32):
            out = model(feats[idx], generator=g)
            target = to_float(images[idx])
            loss = F.mse_loss(out.images.float(), target)
            if texture is not None:
                loss = loss + args.texture * texture(out.images, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            mse, sharp = evaluate()
            print(
                f"step {step:5d}  train {loss.item():.4f}  held-out {mse:.4f}  "
                f"sharpness {sharp:.3f}  ({time.time() - t0:.0f} s)",
                flush=True,
            )
    if args.save:
        torch.save(model.state_dict(), args.save)
    if args.grid:
        pred = predict()[:8].clamp(-1, 1)
        rows = torch.cat([torch.cat(list(test_img[:8]), 2), torch.cat(list(pred), 2)], 1)
        image = ((rows + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(image).save(args.grid)
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    main()
