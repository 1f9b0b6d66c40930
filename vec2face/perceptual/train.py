"""Train the toy perceptual trunk on a toy pool's ground truth, and measure it.

The pool (``make_toyfaces`` output, the ``perceptual`` pool: nobody else's people) holds for
every image the renderer's identity parameters (``identities.parquet``) and the image's
nuisance parameters (``manifest.parquet``). The trunk regresses all of them, standardised,
and classifies the identity; what it learns to see in the process is what the generator's
perceptual term compares (:class:`vec2face.generator.losses.ToyTrunkDistance`).

Figures, on a pool of identities the trunk never saw (:func:`trunk_figures`): the share of
the variance of the identity and of the nuisance parameters it explains (R^2), yaw and
age errors, and :func:`prefers_sharp`, the test a perceptual distance exists for.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field

from vec2face.attributes.base import uint8_to_input
from vec2face.config import StepConfig
from vec2face.data.images import decode_files
from vec2face.errors import ConfigError, DataFormatError
from vec2face.models._registry import list_models
from vec2face.models.trunk import ToyPerceptualTrunk, build_trunk
from vec2face.toyfaces.identity import IDENTITY_FIELDS
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS
from vec2face.training import (
    autocast_for,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from vec2face.training.schedules import warmup_cosine_lr
from vec2face.utils.io import atomic_path, save_torch_atomic
from vec2face.utils.seeding import derive_seed, rng_for

__all__ = [
    "TRUNK_FILE",
    "PerceptualTrainConfig",
    "TrunkData",
    "load_trunk",
    "load_trunk_data",
    "prefers_sharp",
    "target_fields",
    "train_trunk",
    "trunk_figures",
]

#: the trained trunk inside a training output folder
TRUNK_FILE = "trunk.pt"

#: fields that only pick a random pattern (hair strands, freckles, background blotches,
#: sensor noise): a number no image shows, so nothing to regress
_PATTERN_SEEDS = ("hair_seed", "freckle_seed", "bg_seed", "noise_seed")


def target_fields() -> tuple[str, ...]:
    """The regressed ground truth: identity fields, then nuisance fields, seeds left out."""
    return tuple(f for f in (*IDENTITY_FIELDS, *NUISANCE_FIELDS) if f not in _PATTERN_SEEDS)


def _identity_count() -> int:
    return sum(f not in _PATTERN_SEEDS for f in IDENTITY_FIELDS)


class PerceptualTrainConfig(StepConfig):
    """Training of the toy perceptual trunk (params section ``perceptual_train``)."""

    arch: str = Field("toy_trunk", description="registered model of family 'trunk'")
    epochs: int = Field(6, gt=0, description="passes over the training images")
    batch_size: int = Field(64, gt=0, description="images per step")
    lr: float = Field(2e-3, gt=0, description="peak AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay (weights only)")
    warmup_epochs: float = Field(0.3, ge=0, description="linear warmup before the cosine decay")
    class_weight: float = Field(
        0.5, ge=0, description="weight of the identity cross-entropy beside the regression MSE"
    )
    amp: bool = Field(True, description="bf16 autocast on CPU (fp16 on CUDA)")
    seed: int = Field(0, description="seed of initialisation and order")
    device: str = Field("cpu", description="torch device")


@dataclass
class TrunkData:
    """Toy images with their ground truth.

    Attributes:
        images: uint8 (N, 112, 112, 3).
        targets: float32 (N, T) in :func:`target_fields` order.
        labels: int64 (N,) identity index within the pool.
    """

    images: np.ndarray
    targets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def load_trunk_data(root: str | Path, max_images: int = 0) -> TrunkData:
    """Decode a toy pool with every image's identity and nuisance parameters.

    Args:
        root: the pool folder (``manifest.parquet``, ``identities.parquet``, images).
        max_images: keep the first this many images (0: all).

    Raises:
        DataFormatError: a missing table or column, or an unreadable image (naming it).
    """
    root = Path(root)
    tables = {}
    for name in ("manifest", "identities"):
        path = root / f"{name}.parquet"
        if not path.is_file():
            raise DataFormatError(
                f"{root}: no {name}.parquet; expected a toy pool written by 'vec2face toyfaces'"
            )
        tables[name] = pd.read_parquet(path)
    df = tables["manifest"].merge(tables["identities"], on="identity", how="left",
                                  validate="many_to_one")
    missing = [c for c in ("path", "identity", *target_fields()) if c not in df.columns]
    if missing:
        raise DataFormatError(f"{root}: ground-truth columns missing: {missing[:5]}")
    if df[list(target_fields())].isna().any().any():
        raise DataFormatError(f"{root}/manifest.parquet: images of identities that "
                              "identities.parquet does not hold")
    if max_images:
        df = df.iloc[:max_images]
    return TrunkData(
        decode_files(root, df["path"]),
        df[list(target_fields())].to_numpy(np.float32),
        df["identity"].to_numpy(np.int64),
    )


# ----------------------------------------------------------------------------- figures


def _in_batches(fn, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            outs.append(fn(uint8_to_input(torch.from_numpy(images[s:s + batch]), "cpu")))
    return torch.cat(outs)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with edge replication. x: (N, C, H, W) -> same shape."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


#: blur widths searched for the one whose MSE equals the shift's
_SIGMAS = np.geomspace(0.15, 4.0, 48)


def prefers_sharp(distance, images: np.ndarray) -> float:
    """Share of images for which ``distance`` finds a 1-pixel shift closer than a blur of
    the same pixel MSE.

    MSE cannot tell the two apart (their MSEs are equal by construction), yet a shifted face
    is the same sharp face while a blurred one has lost its edges: a perceptual distance
    should call the shift the smaller change (LPIPS does on natural images). For every image
    the blur's Gaussian sigma is bracketed on a grid and bisected until its MSE matches the
    shift's to 0.1%.

    Args:
        distance: (N, 3, H, W), (N, 3, H, W) in [-1, 1] -> (N,) distances.
        images: uint8 (N, 112, 112, 3).

    Returns:
        The share in [0, 1]; 0.5 is a coin's.
    """
    x = uint8_to_input(torch.from_numpy(images), "cpu")
    # shift right by one pixel, repeating the first column (no wrap-around seam)
    shifted = torch.cat([x[..., :1], x[..., :-1]], dim=3)
    target = ((shifted - x) ** 2).flatten(1).mean(1)
    curve = torch.stack([((_blur(x, s) - x) ** 2).flatten(1).mean(1) for s in _SIGMAS], 1)
    blurred = torch.empty_like(x)
    for i in range(len(x)):
        xi, want = x[i:i + 1], float(target[i])
        k = int(np.clip(np.searchsorted(curve[i].numpy(), want), 1, len(_SIGMAS) - 1))
        lo, hi = float(_SIGMAS[k - 1]), float(_SIGMAS[k])
        for _ in range(30):  # the blur's MSE grows with sigma: bisect on it
            sigma = 0.5 * (lo + hi)
            candidate = _blur(xi, sigma)
            mse = float(((candidate - xi) ** 2).mean())
            if abs(mse - want) <= 1e-3 * want:
                break
            lo, hi = (sigma, hi) if mse < want else (lo, sigma)
        blurred[i] = candidate[0]
    with torch.no_grad():
        d_shift = torch.cat([distance(shifted[s:s + 128], x[s:s + 128])
                             for s in range(0, len(x), 128)])
        d_blur = torch.cat([distance(blurred[s:s + 128], x[s:s + 128])
                            for s in range(0, len(x), 128)])
    return float((d_shift < d_blur).float().mean())


#: images of the held-out pool that :func:`prefers_sharp` uses
SHARP_IMAGES = 500


def trunk_figures(trunk: ToyPerceptualTrunk, pool_dir: str | Path) -> dict[str, float]:
    """Held-out figures of a trunk with its regression head, in float32.

    Returns:
        ``identity_r2`` / ``nuisance_r2``: mean over the identity / nuisance fields of the
        variance explained (1 - SSE/SST); ``yaw_mae`` (degrees) and ``age_mae`` (years);
        ``prefers_sharp`` (:func:`prefers_sharp` on the first :data:`SHARP_IMAGES` images,
        through :class:`~vec2face.generator.losses.ToyTrunkDistance`).
    """
    from vec2face.generator.losses import ToyTrunkDistance

    data = load_trunk_data(pool_dir)
    trunk = trunk.float().eval()
    pred = _in_batches(trunk.predict, data.images).numpy()
    truth = data.targets
    sst = ((truth - truth.mean(0)) ** 2).sum(0)
    r2 = 1.0 - ((pred - truth) ** 2).sum(0) / np.maximum(sst, 1e-12)
    fields = target_fields()
    k = _identity_count()
    varying = sst > 1e-9  # a field constant in the pool has no variance to explain
    figures = {
        "identity_r2": float(r2[:k][varying[:k]].mean()),
        "nuisance_r2": float(r2[k:][varying[k:]].mean()),
        "yaw_mae": float(np.abs(pred[:, fields.index("yaw")] - truth[:, fields.index("yaw")]).mean()),
        "age_mae": float(np.abs(pred[:, fields.index("age")] - truth[:, fields.index("age")]).mean()),
        "prefers_sharp": prefers_sharp(ToyTrunkDistance(trunk), data.images[:SHARP_IMAGES]),
    }
    return {name: round(v, 6) for name, v in figures.items()}


# ----------------------------------------------------------------------------- training


def _new_trunk(config: PerceptualTrainConfig, data: TrunkData) -> ToyPerceptualTrunk:
    if config.arch not in list_models("trunk"):
        raise ConfigError(f"perceptual_train.arch '{config.arch}' unknown; "
                          f"known: {', '.join(list_models('trunk'))}")
    torch.manual_seed(derive_seed("perceptual", "init", config.seed))
    trunk = build_trunk(config.arch, targets=data.targets.shape[1],
                        classes=int(data.labels.max()) + 1)
    # standardised targets: every field weighs the same in the MSE whatever its unit
    trunk.target_mean.copy_(torch.from_numpy(data.targets.mean(0)))
    trunk.target_std.copy_(torch.from_numpy(np.maximum(data.targets.std(0), 1e-6)))
    return trunk


def _epoch(trunk, data: TrunkData, optimizer, config: PerceptualTrainConfig, epoch: int,
           device: torch.device) -> dict[str, float]:
    """One seeded pass; learning rate set per step. Returns mean losses and the last lr."""
    trunk.train()
    order = rng_for("perceptual", "order", config.seed, epoch).permutation(len(data))
    steps = max(1, len(data) // config.batch_size)
    total, warmup = steps * config.epochs, config.warmup_epochs * steps
    mean, std = trunk.target_mean, trunk.target_std
    sums = np.zeros(2)
    lr = 0.0
    for step in range(steps):
        index = order[step * config.batch_size:(step + 1) * config.batch_size]
        x = uint8_to_input(torch.from_numpy(data.images[index]), device)
        y = (torch.from_numpy(data.targets[index]).to(device) - mean) / std
        labels = torch.from_numpy(data.labels[index]).to(device)
        lr = warmup_cosine_lr(epoch * steps + step, config.lr, warmup, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast_for(device, config.amp):
            z, logits = trunk(x)
        mse = F.mse_loss(z.float(), y)
        ce = F.cross_entropy(logits.float(), labels)
        loss = mse + config.class_weight * ce
        check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += (float(mse.detach()), float(ce.detach()))
    return {"mse": sums[0] / steps, "cross_entropy": sums[1] / steps, "lr": lr}


def train_trunk(
    config: PerceptualTrainConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    heldout_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train the trunk on a toy pool; resumes from ``out_dir/checkpoints``.

    Args:
        config: training settings.
        data_dir: the training pool.
        out_dir: receives :data:`TRUNK_FILE` (stages and regression head, classifier
            dropped), ``metrics.json`` and ``checkpoints/`` (one per epoch).
        heldout_dir: a pool of other identities to measure on (:func:`trunk_figures`).
        progress: print one line per epoch.

    Returns:
        A summary: per-epoch losses, held-out figures, sizes and wall time.
    """
    from tqdm import tqdm

    device = torch.device(config.device)
    out = Path(out_dir)
    data = load_trunk_data(data_dir)
    trunk = _new_trunk(config, data).to(device).to(memory_format=torch.channels_last)
    decay = [p for p in trunk.parameters() if p.ndim > 1]
    rest = [p for p in trunk.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    start, history = 0, []
    last = latest_checkpoint(out / "checkpoints")
    if last is not None:
        state = load_checkpoint(last)
        if json.loads(state["config"]) != config.model_dump(mode="json"):
            raise ConfigError(f"{last}: a checkpoint of other perceptual_train settings; "
                              f"remove {out} to start over")
        trunk.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), json.loads(state["history"])
    wall = time.perf_counter()
    for epoch in tqdm(range(start, config.epochs), desc="perceptual trunk", unit="epoch",
                      initial=start, total=config.epochs, disable=not progress):
        history.append({"epoch": epoch + 1, **_epoch(trunk, data, optimizer, config, epoch, device)})
        save_checkpoint({"model": trunk.state_dict(), "optimizer": optimizer.state_dict(),
                         "epoch": epoch + 1, "history": json.dumps(history),
                         "config": json.dumps(config.model_dump(mode="json"))},
                        out / "checkpoints", epoch + 1)
    trunk = trunk.cpu().to(memory_format=torch.contiguous_format).without_classifier().eval()
    summary = {
        "epochs": config.epochs,
        "images": len(data),
        "identities": int(len(np.unique(data.labels))),
        "history": history,
        "train_wall_s": round(time.perf_counter() - wall, 1),
        "heldout": trunk_figures(trunk, heldout_dir) if heldout_dir is not None else {},
    }
    save_torch_atomic({"model": trunk.state_dict(), "arch": config.arch,
                       "config": trunk.cfg.to_dict(), "fields": list(target_fields())},
                      out / TRUNK_FILE)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def load_trunk(path: str | Path | None = None) -> ToyPerceptualTrunk:
    """A trained trunk in eval mode: ``path`` (a :data:`TRUNK_FILE` or the folder holding
    one), or the zoo's ``perceptual`` when ``path`` is None.

    Raises:
        ConfigError: a missing file, or a file that is not a trunk (naming it).
    """
    if path is None:
        from vec2face.zoo.models import load

        return load("perceptual")
    from vec2face.models.state_dict import load_state_dict_strict
    from vec2face.utils.io import load_torch_safely

    path = Path(path)
    if path.is_dir():
        path = path / TRUNK_FILE
    if not path.is_file():
        raise ConfigError(f"perceptual trunk not found: {path}")
    try:
        state = load_torch_safely(path)
    except ValueError as exc:
        raise ConfigError(f"cannot read perceptual trunk {path}: {exc}") from None
    if not isinstance(state, dict) or not {"model", "arch", "config"} <= set(state):
        raise ConfigError(f"{path}: not a perceptual trunk (needs model, arch, config)")
    trunk = build_trunk(state["arch"], **state["config"])
    load_state_dict_strict(trunk, state["model"], source=str(path))
    return trunk.eval()
