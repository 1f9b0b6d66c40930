"""Train and evaluate the toy attribute estimator on labelled toy faces.

The data is a pool written by :func:`vec2face.toyfaces.world.make_toyfaces`: image
folders plus ``manifest.parquet`` holding every image's ground truth. Targets are the
manifest's ``yaw``, ``pitch``, ``roll`` and ``age`` and the quality score
:func:`~vec2face.attributes.estimators.toy_quality_label` of its ``blur``, ``noise`` and
``jpeg_quality``. The whole set is decoded into memory once (uint8, 37.6 KB an image),
so the CPU spends its time in the network, not in JPEG decoding.

Figures are measured on identities the model never saw: a separate held-out pool when
given, else ``val_fraction`` of the training pool's identities set aside.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from scipy.stats import spearmanr

from vec2face.attributes.base import ATTRIBUTES, AttributeEstimator, uint8_to_input
from vec2face.attributes.estimators import (
    ToyAttributeNet,
    build_attribute_net,
    toy_checkpoint_state,
    toy_quality_label,
)
from vec2face.config import StepConfig
from vec2face.data.images import decode_files
from vec2face.errors import DataFormatError
from vec2face.models._registry import list_models
from vec2face.tracking import NullTracker, Tracker
from vec2face.training import (
    autocast_for,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from vec2face.training.schedules import warmup_cosine_lr
from vec2face.utils.io import atomic_path, save_torch_atomic
from vec2face.utils.paths import path_in_folder
from vec2face.utils.seeding import derive_seed, rng_for

__all__ = [
    "MODEL_FILE",
    "AttributesTrainConfig",
    "LabelledImages",
    "attribute_metrics",
    "evaluate_estimator",
    "load_labelled_toyfaces",
    "train_attributes",
    "train_one_epoch",
]

#: The trained estimator inside a `vec2face attributes train` output folder.
MODEL_FILE = "model.pt"

_LABEL_COLUMNS = ("yaw", "pitch", "roll", "age", "blur", "noise", "jpeg_quality")


class AttributesTrainConfig(StepConfig):
    """Training of the toy attribute estimator (params section ``attributes_train``)."""

    arch: str = Field("attrnet_s", description="registered model of family 'attributes'")
    epochs: int = Field(6, gt=0, description="passes over the training images")
    batch_size: int = Field(128, gt=0, description="images per step")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    warmup_epochs: float = Field(0.3, ge=0, description="linear warmup before the cosine decay")
    max_images: int = Field(0, ge=0, description="use at most this many training images (0: all)")
    val_fraction: float = Field(
        0.05, ge=0, lt=1, description="share of identities held out when no held-out pool is given"
    )
    flip: bool = Field(True, description="random horizontal flip (negates yaw and roll)")
    amp: bool = Field(True, description="bf16 autocast on CPU (fp16 on CUDA)")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: leave torch's default)")
    loss_weights: tuple[float, float, float, float, float] = Field(
        (1.0, 1.0, 1.0, 1.0, 1.0),
        description="weights of the yaw, pitch, roll, age, quality losses",
    )
    seed: int = Field(0, description="seed of initialisation, split, order and flips")
    device: str = Field("cpu", description="torch device")


@dataclass
class LabelledImages:
    """Toy images with their targets.

    Attributes:
        images: uint8 (N, 112, 112, 3).
        targets: float32 (N, 5) in the order of :data:`ATTRIBUTES` (quality = toy label).
        identities: int64 (N,) identity of each image.
        paths: (N,) relative image paths.
    """

    images: np.ndarray
    targets: np.ndarray
    identities: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> LabelledImages:
        """The images at ``index`` (an int or bool array)."""
        return LabelledImages(
            self.images[index], self.targets[index], self.identities[index], self.paths[index]
        )


def load_labelled_toyfaces(root: str | Path, max_images: int = 0, seed: int = 0) -> LabelledImages:
    """Decode a toy pool (``make_toyfaces`` output) with its attribute targets.

    Args:
        root: the pool folder (holds ``manifest.parquet`` and the image folders).
        max_images: keep at most this many images, whole identities first (0: all).
        seed: picks which identities are kept when ``max_images`` trims the set.

    Raises:
        DataFormatError: no manifest, a manifest without the ground-truth columns, or an
            unreadable image.
    """
    root = Path(root)
    manifest_path = root / "manifest.parquet"
    if not manifest_path.is_file():
        raise DataFormatError(
            f"{root}: no manifest.parquet; expected a toy pool written by 'vec2face toyfaces'"
        )
    df = pd.read_parquet(manifest_path)
    missing = [c for c in ("path", "identity", *_LABEL_COLUMNS) if c not in df.columns]
    if missing:
        raise DataFormatError(f"{manifest_path}: missing ground-truth columns {missing}")
    if max_images and max_images < len(df):
        ids = df["identity"].unique()
        order = rng_for("attributes", "subset", seed).permutation(len(ids))
        counts = df.groupby("identity").size().reindex(ids[order]).to_numpy()
        keep = ids[order][
            : max(1, int(np.searchsorted(np.cumsum(counts), max_images, side="right")))
        ]
        df = df[df["identity"].isin(keep)].reset_index(drop=True)
    images = decode_files(root, df["path"])
    quality = toy_quality_label(
        df["blur"].to_numpy(), df["noise"].to_numpy(), df["jpeg_quality"].to_numpy()
    )
    targets = np.stack(
        [df[c].to_numpy(np.float32) for c in ("yaw", "pitch", "roll", "age")] + [quality], axis=1
    )
    return LabelledImages(
        images,
        targets.astype(np.float32),
        df["identity"].to_numpy(np.int64),
        df["path"].to_numpy(str),
    )


def attribute_metrics(pred: dict[str, np.ndarray], targets: np.ndarray) -> dict[str, float]:
    """Mean absolute errors per attribute and the quality rank correlation.

    Args:
        pred: {attribute: (N,)} estimates.
        targets: (N, 5) truth in :data:`ATTRIBUTES` order.

    Returns:
        ``<attr>_mae`` for every attribute, ``quality_spearman`` (estimate vs the toy
        quality label, i.e. minus the rank correlation with the degradation) and ``n``.
    """
    out: dict[str, float] = {"n": float(len(targets))}
    for i, name in enumerate(ATTRIBUTES):
        if name in pred:
            out[f"{name}_mae"] = float(np.mean(np.abs(pred[name] - targets[:, i])))
    if "quality" in pred and len(targets) > 1:
        out["quality_spearman"] = float(spearmanr(pred["quality"], targets[:, 4]).statistic)
    return out


def evaluate_estimator(
    model: AttributeEstimator, data: LabelledImages, batch_size: int = 256, amp: bool = False
) -> dict[str, float]:
    """:func:`attribute_metrics` of ``model`` on ``data``."""
    return attribute_metrics(
        model.predict(data.images, batch_size=batch_size, amp=amp), data.targets
    )


def _batch(
    data: LabelledImages, index: np.ndarray, flip: np.ndarray | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, 112, 112) in [-1, 1] and targets (B, 5), mirrored where ``flip``."""
    x = uint8_to_input(torch.from_numpy(data.images[index]), device)
    y = torch.from_numpy(data.targets[index]).to(device)
    if flip is not None and flip.any():
        f = torch.from_numpy(flip).to(device)
        x = torch.where(f[:, None, None, None], x.flip(3), x)
        # A mirror turns the head the other way and tilts it the other way.
        sign = torch.tensor([-1.0, 1.0, -1.0, 1.0, 1.0], device=device)
        y = torch.where(f[:, None], y * sign, y)
    return x, y


def train_one_epoch(
    model: ToyAttributeNet,
    data: LabelledImages,
    optimizer: torch.optim.Optimizer,
    config: AttributesTrainConfig,
    epoch: int,
    device: torch.device,
) -> dict[str, float]:
    """One pass over ``data`` in a seeded order; learning rate set per iteration.

    Returns:
        {"loss", "loss_<attr>" (mean normalized L1 per attribute), "lr", "images"}.

    Raises:
        NonFiniteLossError: naming the epoch and step.
    """
    model.train()
    rng = rng_for("attributes", "order", config.seed, epoch)
    order = rng.permutation(len(data))
    flips = rng.random(len(data)) < 0.5 if config.flip else None
    steps = len(data) // config.batch_size or 1
    total = steps * config.epochs
    warmup = config.warmup_epochs * steps
    weights = torch.tensor(config.loss_weights, device=device)
    sums = torch.zeros(len(ATTRIBUTES), device=device)
    lr = 0.0
    for step in range(steps):
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        x, y = _batch(data, index, None if flips is None else flips[index], device)
        lr = warmup_cosine_lr(epoch * steps + step, config.lr, warmup, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast_for(device, config.amp):
            z = model.normalized(x)
        # L1 in units of each attribute's scale: the figures we report are MAEs.
        per_attr = (z.float() - (y - model.offsets) / model.scales).abs().mean(0)
        loss = (per_attr * weights).sum()
        check_finite(loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += per_attr.detach()
    means = (sums / steps).tolist()
    stats = {
        "loss": float(sum(w * m for w, m in zip(config.loss_weights, means, strict=True))),
        "lr": lr,
        "images": float(steps * config.batch_size),
    }
    stats.update({f"loss_{name}": m for name, m in zip(ATTRIBUTES, means, strict=True)})
    return stats


def _split(
    data: LabelledImages, fraction: float, seed: int
) -> tuple[LabelledImages, LabelledImages | None]:
    if fraction <= 0:
        return data, None
    ids = np.unique(data.identities)
    n_val = max(1, round(len(ids) * fraction))
    if n_val >= len(ids):
        raise ValueError(
            f"val_fraction {fraction} leaves no training identities ({len(ids)} in all)"
        )
    val_ids = rng_for("attributes", "split", seed).choice(ids, n_val, replace=False)
    is_val = np.isin(data.identities, val_ids)
    return data.take(~is_val), data.take(is_val)


def train_attributes(
    config: AttributesTrainConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    heldout_dir: str | Path | None = None,
    resume: bool = False,
    tracker: Tracker | None = None,
) -> dict:
    """Train the toy attribute estimator and measure it on held-out identities.

    Args:
        config: training settings.
        data_dir: a labelled toy pool (``make_toyfaces`` output) to train on.
        out_dir: receives ``model.pt`` (the estimator for
            :func:`~vec2face.attributes.estimators.load_toy_estimator`), ``metrics.json``
            and ``checkpoints/`` (one per epoch, for ``resume``).
        heldout_dir: a toy pool of other identities to report on; without it
            ``config.val_fraction`` of the training identities are held out.
        resume: continue from ``out_dir/checkpoints/last.pt`` if present.
        tracker: where parameters and per-epoch metrics go.

    Returns:
        A summary: held-out metrics, training time (wall and process CPU seconds),
        image counts and the model path. ``metrics.json`` holds the same with the
        paths (model, held-out pool) relative to ``out_dir``, as does ``model.pt``'s
        copy of the held-out metrics.
    """
    tracker = tracker or NullTracker()
    if config.arch not in list_models("attributes"):
        raise ValueError(
            f"unknown attributes arch '{config.arch}'; "
            f"known: {', '.join(list_models('attributes'))}"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracker.log_params(config.model_dump())

    t_load = time.perf_counter()
    train_data, val_data = _datasets(config, data_dir, heldout_dir)
    load_s = time.perf_counter() - t_load

    model, optimizer = _model_and_optimizer(config, device)
    start_epoch, history = 0, []
    ckpt_dir = out / "checkpoints"
    last = latest_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        state = load_checkpoint(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]), list(json.loads(state["history"]))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    for epoch in range(start_epoch, config.epochs):
        stats = train_one_epoch(model, train_data, optimizer, config, epoch, device)
        if val_data is not None:
            heldout = evaluate_estimator(model, val_data, amp=config.amp)
            stats.update({f"val_{k}": v for k, v in heldout.items()})
        history.append({"epoch": epoch + 1, **stats})
        tracker.log_metrics(stats, step=epoch + 1)
        save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "history": json.dumps(history),
            },
            ckpt_dir,
            epoch + 1,
        )
    train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    model.eval()
    metrics = evaluate_estimator(model, val_data, amp=config.amp) if val_data is not None else {}
    summary = {
        "heldout": {
            "source": str(heldout_dir)
            if heldout_dir is not None
            else f"{config.val_fraction:.0%} of training identities",
            "images": len(val_data) if val_data is not None else 0,
            "identities": int(np.unique(val_data.identities).size) if val_data is not None else 0,
            **metrics,
        },
        "train_images": len(train_data),
        "train_identities": int(np.unique(train_data.identities).size),
        "epochs": config.epochs,
        "train_wall_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu, 1),
        "load_s": round(load_s, 1),
        "torch_threads": torch.get_num_threads(),
        "history": history,
        "model": str(out / MODEL_FILE),
    }
    _write_outputs(model, config, out, summary, heldout_dir)
    tracker.log_metrics({f"heldout_{k}": v for k, v in metrics.items()})
    tracker.log_artifact(out / MODEL_FILE)
    return summary


def _datasets(config: AttributesTrainConfig, data_dir, heldout_dir):
    """(training data, held-out data): another pool's identities, or a share of this one's."""
    data = load_labelled_toyfaces(data_dir, config.max_images, config.seed)
    if heldout_dir is not None:
        return data, load_labelled_toyfaces(heldout_dir)
    return _split(data, config.val_fraction, config.seed)


def _model_and_optimizer(config: AttributesTrainConfig, device: torch.device):
    """The seeded estimator (channels-last) and AdamW without decay on biases and norms."""
    torch.manual_seed(derive_seed("attributes", "init", config.seed))
    model = build_attribute_net(config.arch).to(device).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    return model, optimizer


def _write_outputs(model, config: AttributesTrainConfig, out: Path, summary: dict, heldout_dir):
    """``model.pt`` (with its held-out metrics) and ``metrics.json``, paths relative to ``out``:
    the same output, the same bytes."""
    heldout = dict(summary["heldout"])
    if heldout_dir is not None:
        heldout["source"] = path_in_folder(heldout_dir, out)
    recorded = {**summary, "heldout": heldout, "model": path_in_folder(out / MODEL_FILE, out)}
    state = toy_checkpoint_state(
        model,
        config.arch,
        {
            "train_config": json.dumps(config.model_dump()),
            "metrics": json.dumps(recorded["heldout"]),
        },
    )
    save_torch_atomic(state, out / MODEL_FILE)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(recorded, indent=2))
