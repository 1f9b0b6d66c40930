"""Training engine of face-recognition models (the paper's Table 5 recipe).

``train_one_epoch`` runs one pass and returns mean statistics; ``fit`` wires data, backbone,
margin head, optimiser, schedule, per-epoch validation, checkpoints, resume and tracking
around it. The paper recipe (the config's defaults): SE-IR50, ArcFace s 64 m 0.5, SGD lr 0.1
momentum 0.9 weight decay 5e-4, batch 128, 26 epochs with lr x0.1 at 12/20/24, fp16 autocast
on CUDA, random augmentation + random erasing + horizontal flip. ``torchrun`` gives DDP
(gloo on CPU, nccl on CUDA) with a rank-sharded sampler.

Reproducibility: the data order depends on ``(seed, epoch)``, augmentation draws on
``(seed, epoch, rank, step)`` and the global RNG (dropout) is reseeded from
``(seed, epoch, rank)`` at every epoch start; the head's class sampler travels in its state
dict. So a run resumed from ``last.pt`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import Field, field_validator
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vec2face.config import StepConfig
from vec2face.errors import ConfigError
from vec2face.fr.data import (
    AugmentConfig,
    BatchStream,
    FRTrainingData,
    augment_batch,
    augment_generator,
    to_float_input,
)
from vec2face.fr.evaluate import evaluate_sets, load_verification_sets
from vec2face.fr.heads import ArcFace, CosFace, MarginClassifier
from vec2face.models import build_backbone, list_models
from vec2face.tracking import NullTracker, Tracker
from vec2face.training import (
    DistEnv,
    all_ranks_sum,
    autocast_for,
    average_buffers,
    barrier,
    check_finite,
    cleanup_distributed,
    init_distributed,
    latest_checkpoint,
    load_checkpoint,
    make_grad_scaler,
    multistep_lr,
    resolve_bf16,
    save_checkpoint,
    warmup_cosine_lr,
)
from vec2face.training.precision import Bf16Setting
from vec2face.utils.hashing import state_sha256
from vec2face.utils.io import atomic_path, save_torch_atomic
from vec2face.utils.paths import path_in_folder
from vec2face.utils.seeding import derive_seed

log = logging.getLogger(__name__)

__all__ = [
    "BACKBONE_FILE",
    "FRTrainConfig",
    "FRTrainPaths",
    "MarginModel",
    "fit",
    "save_backbone",
    "train_one_epoch",
]

BACKBONE_FILE = "backbone.pt"
BACKBONE_META = "backbone.json"


class FRTrainConfig(StepConfig):
    """Settings of ``vec2face fr train`` (the ``fr_train`` section of params.yaml).

    Defaults are the paper's Table 5 recipe; the ``tiny`` profile
    (:mod:`vec2face.fr.profiles`) overrides sizes, schedule and precision for CPU minutes.
    """

    backbone: str = Field(
        "se_ir50", description="registered backbone (r18, r50, r100, se_ir50, tiny, ...)"
    )
    backbone_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="IResNetConfig fields changed from the registered variant (e.g. widths)",
    )
    embedding_size: int = Field(512, ge=1, description="embedding dimension")
    image_size: int = Field(
        112, ge=16, multiple_of=16, description="side of the aligned training faces"
    )
    margin: Literal["arcface", "cosface"] = Field("arcface", description="margin head")
    scale: float = Field(64.0, gt=0, description="logit scale s")
    margin_value: float = Field(0.5, ge=0, description="margin m (ArcFace radians, CosFace cosine)")
    sample_rate: float = Field(1.0, gt=0, le=1, description="Partial-FC share of classes per step")
    epochs: int = Field(26, ge=1, description="training epochs")
    batch_size: int = Field(128, ge=1, description="images per process per step")
    lr: float = Field(0.1, gt=0, description="peak learning rate (SGD)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(5e-4, ge=0, description="SGD weight decay (every trainable tensor)")
    lr_schedule: Literal["step", "cosine"] = Field(
        "step", description="step: x lr_gamma at lr_milestones; cosine: half-cycle to 0"
    )
    lr_milestones: tuple[int, ...] = Field(
        (12, 20, 24), description="epochs where the step schedule decays"
    )
    lr_gamma: float = Field(0.1, gt=0, description="step-schedule decay factor")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warmup, in (fractional) epochs")
    clip_grad: float | None = Field(
        5.0, gt=0, description="gradient-norm clip of backbone + head (None: off)"
    )
    flip: bool = Field(True, description="random horizontal flip")
    rand_augment: bool = Field(True, description="random photometric + geometric augmentation")
    augment_magnitude: float = Field(
        0.5, ge=0, le=1, description="strength of the random augmentation"
    )
    erase_prob: float = Field(0.5, ge=0, le=1, description="random-erasing probability")
    amp: Bf16Setting = Field(
        True, description="mixed precision: fp16 + grad scaler on CUDA, bf16 on CPU; auto: "
        "on CUDA, and on a CPU where bf16 runs faster than fp32 (AMX)")
    channels_last: bool = Field(
        True, description="NHWC activations (faster convolutions, AMX/tensor cores)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    threads: int = Field(0, ge=0, description="CPU threads per process (0: torch's default)")
    seed: int = Field(0, description="seed of initialisation, data order, augmentation, sampling")
    num_workers: int = Field(4, ge=0, description="decoding workers per process (uncached data)")
    cache_max_gb: float = Field(
        0.0, ge=0, description="decode the whole dataset into memory when it fits this size"
    )
    val_every: int = Field(1, ge=0, description="validate every N epochs (0: only after the last)")
    val_sets: tuple[str, ...] | None = Field(
        None, description="benchmark stems to validate on (None: all present)"
    )
    val_pairs: int | None = Field(
        None,
        ge=10,
        description="pairs per set in validation, evenly spaced (None: all; fr evaluate uses all)",
    )
    eval_batch_size: int = Field(128, ge=1, description="images per forward pass in validation")
    keep_checkpoints: int = Field(2, ge=1, description="epoch checkpoints kept besides last.pt")

    @field_validator("backbone")
    @classmethod
    def _registered(cls, name: str) -> str:
        known = list_models("backbone")
        if name not in known:
            raise ValueError(f"unknown backbone '{name}'; known: {', '.join(known)}")
        return name

    def augment(self) -> AugmentConfig:
        """The batch-augmentation settings."""
        return AugmentConfig(
            flip=self.flip,
            rand_augment=self.rand_augment,
            magnitude=self.augment_magnitude,
            erase_prob=self.erase_prob,
        )


@dataclass(frozen=True)
class FRTrainPaths:
    """Where an FR training run reads and writes.

    Attributes:
        data: training datasets, concatenated with disjoint labels.
        out: output folder (``backbone.pt``, ``backbone.json``, ``checkpoints/``, ``metrics.json``).
        bins: folder of verification ``.bin`` sets for validation (None: no validation).
        masks: optional record mask per dataset.
    """

    data: tuple[Path, ...]
    out: Path
    bins: Path | None = None
    masks: tuple[str | Path | None, ...] | None = field(default=None)


class MarginModel(nn.Module):
    """Backbone + margin classifier as one module, so one DDP wrapper syncs both."""

    def __init__(self, backbone: nn.Module, head: MarginClassifier):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images: (N, 3, H, W) in [-1, 1]; labels: (N,) -> (loss, accuracy) scalars."""
        out = self.head(self.backbone(images).float(), labels)
        return out.loss, out.accuracy


def build_margin_model(config: FRTrainConfig, num_classes: int) -> MarginModel:
    """Backbone and head of ``config`` for ``num_classes`` identities (seeded initialisation)."""
    torch.manual_seed(derive_seed(config.seed, "fr-init"))
    backbone = build_backbone(
        config.backbone,
        config.embedding_size,
        **{"input_size": config.image_size, **config.backbone_overrides},
    )
    margin = (
        ArcFace(config.scale, config.margin_value)
        if config.margin == "arcface"
        else CosFace(config.scale, config.margin_value)
    )
    head = MarginClassifier(
        config.embedding_size, num_classes, margin, config.sample_rate, seed=config.seed
    )
    return MarginModel(backbone, head)


def learning_rate(config: FRTrainConfig, epoch_progress: float) -> float:
    """The lr at fractional epoch ``epoch_progress`` (set every iteration)."""
    if config.lr_schedule == "cosine":
        return warmup_cosine_lr(epoch_progress, config.lr, config.warmup_epochs, config.epochs)
    return multistep_lr(
        epoch_progress, config.lr, config.lr_milestones, config.lr_gamma, config.warmup_epochs
    )


def train_one_epoch(
    model: nn.Module,
    batches: BatchStream,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    config: FRTrainConfig,
    *,
    device: torch.device,
    rank: int = 0,
) -> dict[str, float]:
    """Train backbone and head for one epoch.

    Each step: lr from the schedule, uint8 batch -> [-1, 1] (channels-last) -> augmentation
    -> forward under autocast -> loss checked for NaN/inf on every rank -> backward,
    gradient clipping, SGD step.

    Args:
        model: a :class:`MarginModel`, optionally wrapped in DDP.
        batches: this rank's batches (its epoch already selected).
        optimizer: SGD over backbone and head.
        scaler: gradient scaler (active only for fp16 on CUDA).
        epoch: 0-based epoch index.
        config: the training settings.
        device: where the model lives.
        rank: this process's rank (its augmentation stream).

    Returns:
        Means over the epoch of ``loss`` and ``accuracy`` (averaged over ranks), the last
        ``lr``, ``grad_norm``, ``steps``, ``epoch_time_s`` and ``images_per_s`` (all ranks).

    Raises:
        NonFiniteLossError: the loss is NaN/inf on some rank (names epoch, step and batch).
    """
    distributed = isinstance(model, DistributedDataParallel)
    world = dist.get_world_size() if distributed else 1
    params = [p for p in model.parameters() if p.requires_grad]
    steps = len(batches)
    aug = config.augment()
    gen = augment_generator(config.seed, epoch, rank)
    clip = config.clip_grad if config.clip_grad is not None else math.inf
    model.train()
    sums: dict[str, float] = defaultdict(float)
    lr = config.lr
    seen = 0
    start = time.perf_counter()
    for i, (images, labels) in enumerate(batches):
        step = epoch * steps + i
        lr = learning_rate(config, epoch + i / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = augment_batch(to_float_input(images, device, config.channels_last), aug, gen)
        labels = labels.to(device, non_blocking=True)
        with autocast_for(device, config.amp):
            loss, accuracy = model(x, labels)
        check_finite(all_ranks_sum(loss, distributed), epoch, step, batch=i)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        scaler.step(optimizer)
        scaler.update()
        sums["loss"] += float(loss.detach())
        sums["accuracy"] += float(accuracy)
        if math.isfinite(norm):
            sums["grad_norm"] += norm
        seen += images.shape[0] * world
    elapsed = time.perf_counter() - start
    stats = {k: v / max(steps, 1) for k, v in sums.items()}
    if distributed:
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        stats = {k: float(v) / world for k, v in zip(keys, values.tolist(), strict=True)}
    stats.update(
        lr=lr, steps=float(steps), epoch_time_s=elapsed, images_per_s=seen / max(elapsed, 1e-9)
    )
    return stats


def save_backbone(backbone: nn.Module, config: FRTrainConfig, out_dir: str | Path) -> Path:
    """Write ``backbone.pt`` (plain state dict, contiguous tensors) and ``backbone.json``.

    ``backbone.json`` records the registered name, the embedding size and any architecture
    overrides, so :func:`vec2face.fr.extract.load_fr_model` rebuilds the same network.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    path = out / BACKBONE_FILE
    save_torch_atomic(state, path)
    meta = {
        "backbone": config.backbone,
        "embedding_size": config.embedding_size,
        "overrides": {"input_size": config.image_size, **config.backbone_overrides}
        if config.image_size != 112
        else config.backbone_overrides,
    }
    with atomic_path(out / BACKBONE_META) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def _checkpoint_state(
    model: MarginModel, optimizer, scaler, epoch: int, config: FRTrainConfig
) -> dict:
    return {
        "epoch": epoch,
        "backbone": model.backbone.state_dict(),
        "head": model.head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "config": json.loads(config.model_dump_json()),
    }


def _restore(model: MarginModel, optimizer, scaler, state: dict, config: FRTrainConfig) -> int:
    saved = state.get("config", {})
    for key in ("backbone", "embedding_size", "margin", "batch_size", "seed", "backbone_overrides"):
        mine = json.loads(config.model_dump_json())[key]
        if key in saved and saved[key] != mine:
            raise ConfigError(
                f"cannot resume: checkpoint was trained with fr_train.{key}={saved[key]!r}, "
                f"this run has {mine!r}"
            )
    model.backbone.load_state_dict(state["backbone"])
    model.head.load_state_dict(state["head"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    return int(state["epoch"])


def _validate(
    model: MarginModel, sets, config: FRTrainConfig, device: torch.device
) -> dict[str, float]:
    results = evaluate_sets(
        model.backbone,
        sets,
        config.eval_batch_size,
        device,
        autocast=config.amp and device.type == "cpu",
    )
    flat: dict[str, float] = {}
    for name, summary in results.items():
        flat.update({f"val/{name}/{k}": v for k, v in summary.items()})
    if results:
        flat["val/average/accuracy"] = sum(r["accuracy"] for r in results.values()) / len(results)
    return flat


def fit(
    config: FRTrainConfig,
    paths: FRTrainPaths,
    tracker: Tracker | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train an FR model (backbone + margin head) on one or several datasets.

    Runs as DDP when ``torchrun`` describes several processes; rank 0 validates, writes
    checkpoints and talks to the tracker. Outputs in ``paths.out``:

    * ``checkpoints/checkpoint_XXXX.pt`` + ``checkpoints/last.pt`` after every epoch (atomic);
    * ``backbone.pt`` (plain backbone state dict, loadable with ``load_backbone``) and
      ``backbone.json`` (name, embedding size, overrides) at the end;
    * ``metrics.json``: the returned summary, with ``backbone`` relative to ``paths.out``.

    Args:
        config: training settings.
        paths: data, output and benchmark folders.
        tracker: where params and metrics go (default: nowhere).
        resume: continue from ``checkpoints/last.pt`` when it exists.

    Returns:
        ``{"epochs", "num_classes", "num_images", "backbone", "metrics", "history"}``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        ConfigError / DataFormatError: bad settings or data.
    """
    tracker = tracker or NullTracker()
    env = init_distributed(config.device)
    device = env.device
    if config.threads:
        torch.set_num_threads(config.threads)
    # decided once, on the threads it trains with; what ran is what the run records
    config = config.model_copy(update={"amp": resolve_bf16(config.amp, device)})
    out = Path(paths.out)
    ckpt_dir = out / "checkpoints"
    try:
        data, batches = _training_data(config, paths, env)
        model, optimizer, scaler = _model_and_optimizer(config, data.num_classes, device)
        start_epoch = 0
        last = latest_checkpoint(ckpt_dir) if resume else None
        if last is not None:
            start_epoch = _restore(model, optimizer, scaler, load_checkpoint(last, device), config)
            log.info("resumed from %s at epoch %d", last, start_epoch)
        train_model: nn.Module = model
        if env.distributed:
            train_model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        sets = _validation_sets(config, paths) if env.is_main else []
        if env.is_main:
            tracker.log_params(
                {
                    "fr_train": json.loads(config.model_dump_json()),
                    "data": [str(p) for p in paths.data],
                    **_data_summary(data, env),
                }
            )

        history: list[dict[str, float]] = []
        stats: dict[str, float] = {}
        for epoch in range(start_epoch, config.epochs):
            torch.manual_seed(derive_seed(config.seed, "fr-epoch", epoch, env.rank))
            batches.set_epoch(epoch)
            stats = train_one_epoch(
                train_model, batches, optimizer, scaler, epoch, config, device=device, rank=env.rank
            )
            if env.distributed:
                average_buffers(model)
            if env.is_main:
                due = config.val_every and (epoch + 1) % config.val_every == 0
                if sets and (due or epoch + 1 == config.epochs):
                    stats.update(_validate(model, sets, config, device))
                stats["epoch"] = float(epoch + 1)
                history.append(stats)
                tracker.log_metrics(stats, step=epoch + 1)
                log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in stats.items()})
                save_checkpoint(
                    _checkpoint_state(model, optimizer, scaler, epoch + 1, config),
                    ckpt_dir,
                    epoch + 1,
                    keep=config.keep_checkpoints,
                )
            barrier()

        result: dict[str, Any] = {"epochs": config.epochs, **_data_summary(data, env)}
        if env.is_main:
            if not stats and sets:  # resumed after the last epoch: validate the final model
                stats = _validate(model, sets, config, device)
            _write_outputs(model, config, out, result, stats, history, tracker)
        else:
            result["backbone_sha256"] = state_sha256(model.backbone)
        barrier()
        return result
    finally:
        cleanup_distributed()


def _training_data(
    config: FRTrainConfig, paths: FRTrainPaths, env: DistEnv
) -> tuple[FRTrainingData, BatchStream]:
    """The datasets (decoded into memory when they fit ``cache_max_gb``) and this rank's
    shuffled batches."""
    data = FRTrainingData(paths.data, paths.masks, image_size=config.image_size)
    if data.cache_bytes() <= config.cache_max_gb * 2**30:
        data.decode_all()
    batches = BatchStream(
        data, config.batch_size, **env.loader_args(config.seed, config.num_workers)
    )
    return data, batches


def _data_summary(data: FRTrainingData, env: DistEnv) -> dict[str, Any]:
    return {
        "num_classes": data.num_classes,
        "num_images": len(data),
        "label_ranges": data.label_ranges,
        "world_size": env.world_size,
    }


def _validation_sets(config: FRTrainConfig, paths: FRTrainPaths) -> list:
    """The verification sets validated on (``val_pairs`` pairs of each), or none."""
    if paths.bins is None:
        return []
    return [s.subset(config.val_pairs) for s in load_verification_sets(paths.bins, config.val_sets)]


def _model_and_optimizer(config: FRTrainConfig, num_classes: int, device: torch.device):
    """Backbone + margin head on ``device``, SGD over its trainable tensors, grad scaler."""
    model = build_margin_model(config, num_classes).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    return model, optimizer, make_grad_scaler(device, config.amp)


def _write_outputs(
    model: MarginModel,
    config: FRTrainConfig,
    out: Path,
    result: dict[str, Any],
    stats: dict[str, float],
    history: list[dict[str, float]],
    tracker: Tracker,
) -> None:
    """``backbone.pt`` + ``backbone.json`` and ``metrics.json`` (rank 0); fills ``result``."""
    backbone_path = save_backbone(model.backbone, config, out)
    result.update(backbone=str(backbone_path), metrics=stats, history=history)
    result["backbone_sha256"] = state_sha256(model.backbone)
    # the file names the backbone relative to ``out``: the same output, the same bytes
    recorded = {**result, "backbone": path_in_folder(backbone_path, out)}
    with atomic_path(out / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(recorded, indent=2, default=str) + "\n")
    tracker.log_artifact(backbone_path)
    tracker.log_artifact(out / BACKBONE_META)


def train_paths(
    data: Sequence[str | Path],
    out: str | Path,
    bins: str | Path | None = None,
    masks: Sequence[str | Path | None] | None = None,
) -> FRTrainPaths:
    """Build :class:`FRTrainPaths` from plain arguments."""
    return FRTrainPaths(
        data=tuple(Path(p) for p in data),
        out=Path(out),
        bins=Path(bins) if bins is not None else None,
        masks=tuple(masks) if masks is not None else None,
    )
