"""Training engine of the Vec2Face generator (the paper's optimisation recipe).

``train_one_epoch`` runs one pass over the data and returns mean statistics; ``fit`` wires
data, models, optimisers, resume, checkpoints, sample grids and tracking around it. The
recipe is the paper's: AdamW (betas 0.9, 0.99) for generator and discriminator,
``lr = blr x effective_batch / 112``, per-iteration linear warmup then half-cycle cosine,
gradient clipping at 2.0, fp16 autocast with a gradient scaler on CUDA (bf16 autocast on
CPU), the GAN terms from ``disc_start`` on, and ``torchrun``/DDP across processes.

Reproducibility: the global RNG (masks, dropout) is reseeded at the start of every epoch
from ``(seed, epoch, rank)`` and the data order depends only on ``(seed, epoch)``, so a run
resumed from an epoch's checkpoint ends with the same weights as an uninterrupted one, on
every rank. A run can also pause mid-epoch (``fit(..., budget=ChunkBudget(...))``: a time or
step budget, checked at optimiser-step boundaries): its checkpoint then adds the step within
the epoch and every rank's torch/numpy/python RNG states, and the resumed run skips the
batches already consumed, so chunks of a long run add up to the unbroken run.

The official GAN (``gan.official_leak``): the official Vec2Face step computes the
generator's adversarial loss with the discriminator still trainable and never freezes it,
so the generator's loss also sends gradients into the discriminator, which its optimiser
applies: the discriminator is pushed to call fakes real, and in practice it settles at 1
for real and fake alike, which switches the GAN off. The default is the proper adversary
(the discriminator frozen during the generator's update); ``official_leak: true``
reproduces the official behaviour.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from vec2face.config import StepConfig
from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.fr.extract import load_trained_backbone
from vec2face.generator.data import GeneratorTrainingData, make_train_loader, tensor_to_image
from vec2face.generator.losses import GeneratorLoss, GeneratorLossConfig, ls_discriminator_loss
from vec2face.models import build_discriminator, build_generator, list_models
from vec2face.models.generator import (
    CHECKPOINT_KEY,
    Vec2FaceGenerator,
    load_generator_checkpoint,
    save_generator_checkpoint,
)
from vec2face.presets import preset_sections
from vec2face.tracking import NullTracker, Tracker, flatten
from vec2face.training import (
    DistEnv,
    all_ranks_sum,
    amp_dtype,
    autocast_for,
    barrier,
    check_finite,
    cleanup_distributed,
    init_distributed,
    latest_checkpoint,
    load_checkpoint,
    make_grad_scaler,
    resolve_bf16,
    save_checkpoint,
    unwrap,
    warmup_cosine_lr,
)
from vec2face.training.precision import Bf16Setting
from vec2face.utils.hashing import state_sha256
from vec2face.utils.io import atomic_path, save_torch_atomic
from vec2face.utils.paths import path_in_folder
from vec2face.utils.seeding import derive_seed

log = logging.getLogger(__name__)

LR_REFERENCE_BATCH = 112  # the official scaling: lr = blr * effective_batch / 112
#: records whose features set the whitening init (every record of the toy subset)
WHITEN_RECORDS = 50_000
#: the final discriminator beside ``generator.pt`` (what a warm start from the folder reads)
DISCRIMINATOR_FILE = "discriminator.pt"


class GanConfig(BaseModel):
    """How the GAN step is wired (``generator.gan``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    official_leak: bool = Field(
        False,
        description="reproduce the official step: the discriminator stays trainable during "
        "the generator's update, so the generator's adversarial gradient also reaches the "
        "discriminator and is applied by its optimiser (false: the discriminator is frozen "
        "then, the proper adversary)",
    )


class GeneratorTrainConfig(StepConfig):
    """Settings of ``vec2face generator train`` (the ``generator`` section of params.yaml).

    Defaults are the paper's recipe; the tiny profile overrides sizes and epochs.
    """

    model: str = Field(
        "vit_base_patch16", description="registered generator (tiny, vit_base_patch16, ...)"
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="architecture overrides of the generator (GeneratorArch fields, e.g. "
        "vector_scale); the checkpoint records the resulting arch",
    )
    discriminator: str = Field(
        "patchgan", description="registered discriminator (patchgan, patchgan_tiny)"
    )
    whiten_input_init: bool = Field(
        False,
        description="initialise the vector projection to PCA-whiten the training features "
        "(Vec2FaceGenerator.init_input_whitening; for teachers with anisotropic features). "
        "Initialisation only: the model and its checkpoint layout are unchanged",
    )
    init: str = Field(
        "scratch",
        description="starting weights: scratch (random), zoo (the toy zoo's generator and "
        "discriminator), or a generator checkpoint file (a run's generator.pt, "
        "a registry version's, the official vec2face_generator.pth; a discriminator.pt beside "
        "it warm-starts the discriminator too)",
    )
    epochs: int = Field(100, ge=1, description="training epochs")
    max_steps: int = Field(
        0,
        ge=0,
        description="stop after this many training steps (batches), with the warmup/cosine "
        "schedule laid over them (0: every epoch); the step budget of a warm start",
    )
    batch_size: int = Field(32, ge=1, description="images per process per step")
    accum_iter: int = Field(
        1, ge=1, description="steps whose gradients are summed before one update"
    )
    blr: float = Field(
        4e-5, gt=0, description="base lr; lr = blr * batch_size * accum_iter * world_size / 112"
    )
    lr: float | None = Field(None, gt=0, description="absolute lr (overrides the blr scaling)")
    warmup_epochs: float = Field(
        5.0, ge=0, description="linear warmup length, in (fractional) epochs"
    )
    min_lr: float = Field(0.0, ge=0, description="floor of the half-cycle cosine")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas (both optimisers)")
    weight_decay: float = Field(
        0.01,
        ge=0,
        description="AdamW weight decay on every parameter (torch's default, as the official code)",
    )
    disc_lr_schedule: bool = Field(
        False,
        description="apply the warmup/cosine schedule to the discriminator too "
        "(the official code keeps the discriminator at the constant lr)",
    )
    clip_grad: float | None = Field(
        2.0, gt=0, description="gradient-norm clip of each network (None: off)"
    )
    loss: GeneratorLossConfig = Field(
        default_factory=GeneratorLossConfig,
        description="loss weights, disc_start epoch, adaptive GAN weight, GAN generator term",
    )
    gan: GanConfig = Field(
        default_factory=GanConfig, description="wiring of the GAN step (official_leak)"
    )
    amp: Bf16Setting = Field(
        True,
        description="mixed precision: fp16 autocast + grad scaler on CUDA, bf16 autocast on "
        "CPU; auto: on CUDA, and on a CPU where bf16 runs faster than fp32 (AMX)",
    )
    amp_cuda_dtype: Literal["float16", "bfloat16"] = Field(
        "float16",
        description="autocast dtype on CUDA: float16 with the grad scaler (the paper's), or "
        "bfloat16 (Ampere and later; no loss scaling, no fp16 overflow)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    seed: int = Field(0, description="seed of initialisation, data order, masks and dropout")
    num_workers: int = Field(
        4, ge=0, description="DataLoader worker processes per training process"
    )
    sample_grid_size: int = Field(
        8, ge=1, description="rows (input | reconstruction) of each epoch's sample grid"
    )
    keep_checkpoints: int = Field(2, ge=1, description="epoch checkpoints kept besides last.pt")
    teacher: str = Field("r100", description="backbone of the frozen FR teacher (identity loss)")
    teacher_checkpoint: str | None = Field(
        None, description="teacher weights (.pth); required when loss.identity, loss.fr_perceptual or loss.texture > 0"
    )
    lpips_backbone_weights: str | None = Field(
        None,
        description="torchvision ImageNet weights of the LPIPS trunk (loss.lpips_net) "
        "(else the torch hub cache, else a random trunk, recorded as such)",
    )
    perceptual_trunk_checkpoint: str | None = Field(
        None,
        description="the toy perceptual trunk of loss.perceptual_trunk toy (a 'trunk.pt' or "
        "its folder; default: the zoo's 'perceptual')",
    )
    mask: str | None = Field(
        None, description=".npy record mask, e.g. the official 50K-identity mask"
    )

    @field_validator("model", "discriminator", "teacher")
    @classmethod
    def _registered(cls, name: str, info: Any) -> str:
        family = {"model": "generator", "discriminator": "discriminator", "teacher": "backbone"}[
            info.field_name
        ]
        known = list_models(family)
        if name not in known:
            raise ValueError(f"unknown {family} '{name}'; known: {', '.join(known)}")
        return name

    @model_validator(mode="after")
    def _teacher_needed(self) -> GeneratorTrainConfig:
        for term in self.loss.teacher_terms:
            if not self.teacher_checkpoint:
                raise ValueError(
                    f"teacher_checkpoint is required when loss.{term} > 0 "
                    f"(the {term} loss needs the frozen teacher)"
                )
        return self


#: The ``generator`` section of each preset (``vec2face/presets/<name>.yaml``): ``paper`` is
#: the config defaults (the official recipe); ``tiny`` trains the tiny model on the toy
#: WebFace subset on 2 CPU cores. Values stack as: defaults < profile < params.yaml section <
#: explicit overrides.
GENERATOR_PROFILES: dict[str, dict[str, Any]] = preset_sections("generator")

#: sub-sections of ``generator`` whose keys merge one by one across the config layers
_NESTED_SECTIONS = ("loss", "gan")


def generator_train_config(
    profile: str | None = None,
    params: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> GeneratorTrainConfig:
    """Build a :class:`GeneratorTrainConfig`: defaults < profile < params < overrides.

    Nested ``loss`` and ``gan`` values merge key by key at every level.

    Raises:
        ConfigError: an unknown profile, or an invalid value (naming section and key).
    """
    from vec2face.config import load_step_config, read_params

    if profile is not None and profile not in GENERATOR_PROFILES:
        raise ConfigError(
            f"unknown generator profile '{profile}'; known: {', '.join(GENERATOR_PROFILES)}"
        )
    data = read_params(params) if isinstance(params, (str, Path)) else dict(params or {})
    merged: dict[str, Any] = {}
    for layer in (
        GENERATOR_PROFILES.get(profile or "paper", {}),
        data.get("generator") or {},
        {k: v for k, v in (overrides or {}).items() if v is not None},
    ):
        if not isinstance(layer, dict):
            raise ConfigError("params section 'generator' must be a mapping")
        nested = {}
        for key in _NESTED_SECTIONS:
            value = layer.get(key)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"params section 'generator.{key}' must be a mapping")
            nested[key] = {**merged.get(key, {}), **(value or {})}
        merged = {**merged, **layer, **nested}
    return load_step_config(GeneratorTrainConfig, "generator", {"generator": merged})


@dataclasses.dataclass(frozen=True)
class ChunkBudget:
    """When one chunk of a long run pauses: after ``minutes`` of wall time or ``steps``
    batches of this chunk, whichever comes first, at the first optimiser-step boundary
    after it (``None``: no limit of that kind).

    ``clock`` (seconds, monotonic) can be injected so tests pause deterministically.
    """

    minutes: float | None = None
    steps: int | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError(f"--max-minutes must be > 0 (got {self.minutes})")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"the chunk's step budget must be >= 1 (got {self.steps})")


class _Pauser:
    """Decides, at step boundaries, whether the chunk's budget is spent: rank 0 reads its
    clock and broadcasts the answer, so every rank pauses after the same step."""

    def __init__(self, budget: ChunkBudget | None, env: DistEnv, first_step: int) -> None:
        self.budget, self.env, self.first_step = budget, env, first_step
        self.start = budget.clock() if budget is not None else 0.0

    def __call__(self, global_step: int) -> bool:
        if self.budget is None:
            return False
        b = self.budget
        spent = (b.steps is not None and global_step - self.first_step >= b.steps) or (
            b.minutes is not None and b.clock() - self.start >= 60.0 * b.minutes
        )
        if self.env.distributed:
            flag = torch.tensor([float(spent)], device=self.env.device)
            dist.broadcast(flag, 0)
            spent = bool(flag.item())
        return spent


# --------------------------------------------------------------------------------------------
# One epoch
# --------------------------------------------------------------------------------------------
_PATH_FIELDS = (
    "teacher_checkpoint", "lpips_backbone_weights", "perceptual_trunk_checkpoint", "mask"
)


def _recorded_config(config: GeneratorTrainConfig, out_dir: Path) -> dict[str, Any]:
    """``config`` as the checkpoints in ``out_dir`` hold it: its paths relative to ``out_dir``,
    so the same training under another output root writes the same bytes."""
    dump = config.model_dump(mode="json")
    for key in _PATH_FIELDS:
        if dump[key] is not None:
            dump[key] = path_in_folder(dump[key], out_dir)
    return dump


def train_one_epoch(
    model: nn.Module,
    disc: nn.Module,
    loss_fn: GeneratorLoss,
    loader: DataLoader,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
    epoch: int,
    config: GeneratorTrainConfig,
    *,
    base_lr: float,
    device: torch.device,
    progress: bool = False,
    schedule_epochs: float | None = None,
    max_batches: int | None = None,
    start_batch: int = 0,
    pause: Callable[[int], bool] | None = None,
) -> dict[str, float]:
    """Train generator and discriminator for one epoch.

    Each step: generator forward and loss (discriminator frozen), then, once the GAN weight
    is on (``epoch >= loss.disc_start``), the least-squares discriminator loss on real and
    detached generated images; both losses are checked for NaN/inf on every rank before any
    backward pass. Gradients are summed over ``accum_iter`` steps (DDP synchronises only on
    the last), unscaled, clipped and applied. Steps that do not fill a whole accumulation
    group at the end of the epoch are skipped.

    Args:
        model: the generator, optionally wrapped in DDP.
        disc: the discriminator, optionally wrapped in DDP.
        loss_fn: generator loss (holds the frozen teacher and LPIPS).
        loader: yields (images (N, 3, 112, 112) in [-1, 1], features (N, 512), labels (N,)).
        optimizers: (generator optimiser, discriminator optimiser).
        scaler: gradient scaler (a disabled one outside fp16 CUDA).
        epoch: index of this epoch (0-based), for the LR schedule and the GAN switch.
        config: the training settings.
        base_lr: peak learning rate.
        device: where the models live.
        progress: show a tqdm bar.
        schedule_epochs: length of the warmup/cosine schedule in epochs (default
            ``config.epochs``; shorter under a ``max_steps`` budget).
        max_batches: stop after this many batches (the last epoch of a ``max_steps`` budget).
        start_batch: batches of this epoch already consumed (a mid-epoch resume: the
            loader's sampler already skips them; the schedule and step numbers count them).
        pause: called with the global step after every optimiser step that does not end
            the epoch; True stops the epoch there (``paused_at`` in the result).

    Returns:
        Means over the epoch's steps of every loss term (``mse``, ``lpips``, ``ssim``,
        ``token``, ``identity``, ``gan``, ``total`` as computed), ``gan_weight``,
        ``disc_loss`` (when the discriminator trained), finite gradient norms before clipping
        (``grad_norm_g``, ``grad_norm_d``), ``grad_overflows`` (optimiser steps the fp16
        scaler skipped), plus the last ``lr``, ``steps``, ``epoch_time_s``
        and ``images_per_s`` (all processes); averaged over ranks under DDP; ``paused_at``
        (batches of the epoch done) when ``pause`` stopped it early.

    Raises:
        NonFiniteLossError: a loss is NaN/inf on some rank (names epoch, step and batch).
    """
    gen, dsc = unwrap(model), unwrap(disc)
    distributed = isinstance(model, DistributedDataParallel)
    accum = config.accum_iter
    usable, stop = _epoch_steps(len(loader) + start_batch, accum, max_batches)
    total_epochs = config.epochs if schedule_epochs is None else schedule_epochs
    gan_on = loss_fn.gan_weight(epoch) > 0
    clip = config.clip_grad if config.clip_grad is not None else math.inf
    _start_training(model, disc, loss_fn, optimizers)

    meter = _EpochMeter(dist.get_world_size() if distributed else 1)
    lr = base_lr
    paused_at = None
    bar = tqdm(
        loader, f"epoch {epoch}", stop, disable=not progress, leave=False, dynamic_ncols=True,
        initial=start_batch,
    )
    for i, (images, features, _labels) in enumerate(bar, start=start_batch):
        if i >= stop:
            break
        if i % accum == 0:
            lr = warmup_cosine_lr(
                epoch + i / usable, base_lr, config.warmup_epochs, total_epochs, config.min_lr
            )
            _set_lr(optimizers, lr, config.disc_lr_schedule)
        boundary = (i + 1) % accum == 0
        images = images.to(device, non_blocking=True)
        features = features.to(device, non_blocking=True)

        with _no_sync(model, disc, gan_on, sync=boundary):
            terms = _backward(
                model, disc, loss_fn, scaler, images, features, config, device, gan_on,
                epoch=epoch, step=epoch * usable + i, batch=i,
            )
        if boundary:
            meter.overflows += _apply_gradients(scaler, optimizers, (gen, dsc), gan_on, clip, terms)

        meter.add(terms, images.shape[0])
        if progress:
            bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lr:.2e}")
        if boundary and pause is not None and i + 1 < stop and pause(epoch * usable + i + 1):
            paused_at = i + 1
            break
    bar.close()
    stats = meter.stats(distributed, lr=lr, steps=(paused_at or stop) - start_batch)
    if paused_at is not None:
        stats["paused_at"] = float(paused_at)
    return stats


def _start_training(model, disc, loss_fn, optimizers) -> None:
    """Training mode everywhere, the discriminator frozen (the generator's loss reads it),
    no gradient left over from a previous epoch."""
    model.train()
    disc.train()
    loss_fn.train()
    unwrap(disc).requires_grad_(False)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)


def _set_lr(optimizers, lr: float, discriminator_too: bool) -> None:
    """The generator's learning rate, and the discriminator's when it follows the schedule."""
    opt_g, opt_d = optimizers
    for opt in (opt_g, opt_d) if discriminator_too else (opt_g,):
        for group in opt.param_groups:
            group["lr"] = lr


def _no_sync(model, disc, gan_on: bool, sync: bool) -> contextlib.ExitStack:
    """DDP's ``no_sync`` on the networks that run backward, except on an update step: the
    gradients of an accumulation group are reduced across ranks once, on its last step."""
    stack = contextlib.ExitStack()
    if isinstance(model, DistributedDataParallel) and not sync:
        stack.enter_context(model.no_sync())
        if gan_on:
            stack.enter_context(disc.no_sync())
    return stack


def _backward(
    model, disc, loss_fn, scaler, images, features, config, device, gan_on, *, epoch, step, batch
) -> dict[str, float]:
    """Losses of one batch, checked finite on every rank, then their scaled gradients added
    (``/ accum_iter``); returns the loss terms (``disc_loss`` too when the GAN is on).

    Raises:
        NonFiniteLossError: a loss is NaN/inf on some rank, before any backward pass.
    """
    total, terms, d_loss = _step_losses(
        model, disc, loss_fn, images, features, epoch, config, device, gan_on
    )
    losses = [total] if d_loss is None else [total, d_loss]
    distributed = isinstance(model, DistributedDataParallel)
    checked = all_ranks_sum(torch.stack([x.detach().float() for x in losses]).sum(), distributed)
    check_finite(checked, epoch, step, batch=batch)

    if gan_on and config.gan.official_leak:
        # One backward of both losses: the generator's adversarial gradient and the
        # discriminator's own meet in the discriminator's parameters, and under DDP each
        # parameter's gradient is then ready (and reduced) once per step.
        scaler.scale((total + d_loss) / config.accum_iter).backward()
    else:
        scaler.scale(total / config.accum_iter).backward()
        if gan_on:
            scaler.scale(d_loss / config.accum_iter).backward()
    if gan_on:
        unwrap(disc).requires_grad_(False)
        terms["disc_loss"] = float(d_loss.detach())
    return terms


def _epoch_steps(steps_in_loader: int, accum: int, max_batches: int | None) -> tuple[int, int]:
    """(steps that fill whole accumulation groups, steps this epoch runs)."""
    usable = steps_in_loader - steps_in_loader % accum
    if usable == 0:
        raise ConfigError(
            f"generator.accum_iter={accum} exceeds the {steps_in_loader} steps of one epoch"
        )
    stop = usable if max_batches is None else min(usable, max_batches - max_batches % accum)
    return usable, stop


def _step_losses(model, disc, loss_fn, images, features, epoch, config, device, gan_on):
    """(generator loss, its terms, discriminator loss or None) of one batch.

    The generator's loss sees the discriminator frozen, unless ``gan.official_leak`` keeps
    it trainable as the official code does (the generator's adversarial loss then has a
    graph into the discriminator's parameters); with the GAN on, the discriminator's
    least-squares loss is computed on real and detached generated images, its parameters
    trainable until the caller's backward pass has run.
    """
    gen, dsc = unwrap(model), unwrap(disc)
    if gan_on and config.gan.official_leak:
        dsc.requires_grad_(True)
    with autocast_for(device, config.amp, config.amp_cuda_dtype):
        out = model(features)
        total, terms = loss_fn(
            out.images,
            images,
            out.tokens,
            out.target_tokens,
            features,
            epoch=epoch,
            discriminator=dsc if gan_on else None,
            last_layer=gen.last_layer() if config.loss.adaptive_gan_weight else None,
        )
    if not gan_on:
        return total, terms, None
    dsc.requires_grad_(True)
    with autocast_for(device, config.amp, config.amp_cuda_dtype):
        # One pass over real and fake together: DDP allows one forward per backward,
        # and GroupNorm makes the result identical to two separate passes.
        logits = disc(torch.cat([images, out.images.detach()]))
        d_loss = ls_discriminator_loss(*logits.chunk(2))
    return total, terms, d_loss


def _apply_gradients(scaler, optimizers, nets, gan_on: bool, clip: float, terms) -> int:
    """Unscale, clip and apply the accumulated gradients (the discriminator's only with the
    GAN on); record finite norms in ``terms``; return the steps an fp16 overflow skipped."""
    (opt_g, opt_d), (gen, dsc) = optimizers, nets
    norms = {"grad_norm_g": (opt_g, gen)}
    if gan_on:
        norms["grad_norm_d"] = (opt_d, dsc)
    overflows = 0
    for name, (opt, net) in norms.items():
        scaler.unscale_(opt)
        norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), clip))
        # fp16 overflow: the scaler skips this step and lowers its scale; not a failure.
        if math.isfinite(norm):
            terms[name] = norm
        else:
            overflows += 1
        scaler.step(opt)
    scaler.update()
    opt_g.zero_grad(set_to_none=True)
    opt_d.zero_grad(set_to_none=True)
    return overflows


class _EpochMeter:
    """Running sums of the per-step loss terms, images seen and skipped updates."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.images = 0
        self.overflows = 0
        self.start = time.perf_counter()

    def add(self, terms: dict[str, float], batch_size: int) -> None:
        for k, v in terms.items():
            self.sums[k] += v
            self.counts[k] += 1
        self.images += batch_size * self.world

    def stats(self, distributed: bool, lr: float, steps: int) -> dict[str, float]:
        """Means over the steps (and ranks), then the last lr, steps and throughput."""
        elapsed = time.perf_counter() - self.start
        stats = {k: self.sums[k] / self.counts[k] for k in sorted(self.sums)}
        if distributed:
            # Every rank computed the same terms, so the keys line up; grad norms are equal.
            values = torch.tensor([stats[k] for k in stats], dtype=torch.float64)
            dist.all_reduce(values)
            stats = {k: float(v) / self.world for k, v in zip(stats, values.tolist(), strict=True)}
        stats.update(
            lr=lr,
            steps=float(steps),
            grad_overflows=float(self.overflows),
            epoch_time_s=elapsed,
            images_per_s=self.images / max(elapsed, 1e-9),
        )
        return stats


# --------------------------------------------------------------------------------------------
# Sample grids, fingerprints
# --------------------------------------------------------------------------------------------
def save_sample_grid(
    generator: Vec2FaceGenerator,
    images: torch.Tensor,
    features: torch.Tensor,
    path: str | Path,
    seed: int = 0,
) -> Path:
    """Write a PNG with one row per sample: input image | reconstruction from its feature.

    Args:
        generator: the (unwrapped) generator; ``generate`` runs it in eval mode.
        images: (K, 3, 112, 112) inputs in [-1, 1].
        features: (K, 512) their teacher features.
        path: the PNG to write (atomically).
        seed: seed of the generation masks (fixed, so grids of different epochs compare).

    Returns:
        ``path``.
    """
    recon = generator.generate(features, seed=seed, batch_size=features.shape[0])
    rows = np.concatenate(
        [tensor_to_image(images), tensor_to_image(recon)], axis=2
    )  # (K, H, 2W, 3)
    grid = rows.reshape(-1, rows.shape[2], 3)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def _fixed_samples(dataset: GeneratorTrainingData, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` samples spread evenly over the dataset: the same rows in every epoch's grid."""
    k = min(k, len(dataset))
    positions = np.linspace(0, len(dataset) - 1, k).round().astype(int)
    items = [dataset[int(p)] for p in positions]
    return torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
def fit(
    config: GeneratorTrainConfig,
    data_path: str | Path,
    out_dir: str | Path,
    tracker: Tracker | None = None,
    resume: bool = False,
    progress: bool = True,
    budget: ChunkBudget | None = None,
) -> dict[str, Any]:
    """Train a Vec2Face generator on a training-layout dataset.

    Runs under ``torchrun`` as DDP (gloo on CPU, nccl on CUDA) when the environment describes
    several processes; rank 0 writes checkpoints, samples and tracking. Outputs in ``out_dir``:

    * ``checkpoints/checkpoint_XXXX.pt`` and ``checkpoints/last.pt`` after every epoch (atomic):
      ``model_vec2face`` (generator state dict, the official key), ``arch``, ``masking``,
      ``model_disc``, ``optimizer_g``, ``optimizer_d``, ``scaler``, ``epoch`` (epochs
      completed), ``step_in_epoch`` (0), ``global_step``, ``train_seconds`` (training wall
      time of the whole run so far), ``config`` and ``metadata``;
      ``load_generator_checkpoint`` reads them too;
    * ``checkpoints/last.pt`` alone when a ``budget`` pauses the run mid-epoch (atomic): the
      same keys with ``step_in_epoch`` > 0 and ``rng`` (each rank's torch, CUDA, numpy
      and python RNG states), what an exact continuation needs;
    * ``samples/epoch_XXXX.png``: input | reconstruction rows (also sent to the tracker);
    * ``generator.pt``: the final generator, as ``save_generator_checkpoint`` writes it;
    * ``discriminator.pt``: the final discriminator (``{"model_disc", "name"}``), so that a
      later run warm-starts both from this folder (``init: <out_dir>/generator.pt``).

    Args:
        config: training settings.
        data_path: training-layout dataset (image, teacher feature, label records).
        out_dir: output folder.
        tracker: receives params (incl. ``pretrained_lpips_backbone``), per-epoch metrics
            (``step=epoch``) and the sample grids; nothing is tracked when None.
        resume: continue from ``checkpoints/last.pt`` (a fresh start when there is none);
            the checkpoint's architecture, discriminator, ``model_args``, ``loss`` and
            ``gan`` must match ``config`` (a resume changes the objective nowhere). Other
            changed settings are logged and used: a longer ``epochs`` extends a long run,
            and its schedule follows the new length from the resume point on.
        progress: tqdm bar on rank 0.
        budget: pause this chunk when it is spent (checked at optimiser-step boundaries),
            leaving a resumable checkpoint and no ``generator.pt``.

    Returns:
        Summary: epochs, start_epoch, final ``stats``, output paths, lr, effective batch
        size, world size, the LPIPS backbone flag, this rank's generator fingerprint,
        whether all ranks hold identical weights, ``paused`` (the budget stopped the run
        before its end), ``global_step``, ``epoch`` and ``step_in_epoch`` where it stands,
        ``chunk_steps`` (batches this call trained) and ``train_seconds`` (the run's, as its
        last checkpoint records it, which is where a resumed chunk counts on from).

    Raises:
        ConfigError: bad settings or files (teacher weights named with their config key), or
            checkpoints already in ``out_dir`` without ``resume``.
        DataFormatError: the dataset has no features or too few samples.
        NonFiniteLossError: a loss became NaN/inf; the last good checkpoint is kept.
    """
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(config.device)
    try:
        return _fit(
            config, Path(data_path), Path(out_dir), tracker or NullTracker(), resume, progress,
            env, budget,
        )
    finally:
        if owns_group:
            cleanup_distributed()


def _fit(
    config: GeneratorTrainConfig,
    data_path: Path,
    out_dir: Path,
    tracker: Tracker,
    resume: bool,
    progress: bool,
    env: DistEnv,
    budget: ChunkBudget | None = None,
) -> dict[str, Any]:
    device = env.device
    # decided once per run, as it will train; the checkpoints record what ran
    config = config.model_copy(update={"amp": resolve_bf16(config.amp, device)})
    ckpt_dir = out_dir / "checkpoints"
    last = _checkpoint_to_resume(ckpt_dir, resume)

    # Data first: a dataset without features fails before any model is built.
    dataset = GeneratorTrainingData(data_path, config.mask)
    loader = make_train_loader(
        dataset, config.batch_size, **env.loader_args(config.seed, config.num_workers)
    )

    generator, discriminator, init_from, whitening = _build_models(
        config, dataset, device, fresh=last is None
    )
    loss_fn = _loss(config, device)

    effective_batch, base_lr = _peak_lr(config, env.world_size)
    opt_g, opt_d = (_adamw(net, base_lr, config) for net in (generator, discriminator))
    scaler = make_grad_scaler(device, config.amp, config.amp_cuda_dtype)

    recorded_config = _recorded_config(config, out_dir)
    point = _ResumePoint()
    if last is not None:
        point = _restore(
            last, config, recorded_config, generator, discriminator, opt_g, opt_d, scaler,
            env.world_size,
        )
        whitening = _saved_whitening(point.metadata)  # the first run's init travels on
        log.info("resuming from %s at epoch %d, step %d of it", last, point.epoch,
                 point.step_in_epoch)
    start_epoch, stats = point.epoch, point.stats
    model, disc = _wrap_ddp((generator, discriminator), env)

    figures = _run_figures(env, effective_batch, base_lr, loss_fn)
    metadata = _checkpoint_metadata(
        config, recorded_config, data_path, out_dir, len(dataset), figures, init_from, whitening
    )
    extra = {"config": recorded_config, "metadata": metadata}  # in every checkpoint
    if env.is_main:
        _log_run_params(tracker, config, metadata, device, generator, discriminator)
        grid_samples = _fixed_samples(dataset, config.sample_grid_size)
    samples: list[str] = []

    steps_per_epoch, schedule_epochs, epochs = _schedule_length(config, len(loader))
    epoch, step_in_epoch = start_epoch, point.step_in_epoch
    pause = _Pauser(budget, env, epoch * steps_per_epoch + step_in_epoch)
    chunk_steps, paused = 0, False
    # The run's training time as its last checkpoint records it: a resumed chunk starts
    # from that figure, so the summary reports the same one and a curve stays monotone.
    run_seconds = point.train_seconds
    t0 = time.perf_counter()
    while epoch < epochs and not paused:
        torch.manual_seed(derive_seed(config.seed, "generator-epoch", epoch, env.rank))
        loader.sampler.set_epoch(epoch)
        loader.generator.manual_seed(derive_seed(config.seed, "loader", epoch, env.rank))
        if step_in_epoch:
            # The paused epoch: its remaining batches, the RNG where the pause left it.
            loader.sampler.skip(step_in_epoch * config.batch_size)
            _set_rng_state(point.rng[env.rank], device)
        stats = train_one_epoch(
            model, disc, loss_fn, loader, (opt_g, opt_d), scaler, epoch, config,
            base_lr=base_lr, device=device, progress=progress and env.is_main,
            schedule_epochs=schedule_epochs,
            max_batches=config.max_steps - epoch * steps_per_epoch if config.max_steps else None,
            start_batch=step_in_epoch, pause=pause,
        )
        chunk_steps += int(stats["steps"])
        step_in_epoch = int(stats.pop("paused_at", 0))
        paused = step_in_epoch > 0
        epoch += 0 if paused else 1
        rng = _gather_rng_states(env, device) if paused else None  # every rank takes part
        run_seconds = point.train_seconds + time.perf_counter() - t0
        if env.is_main:
            state = _training_state(generator, discriminator, (opt_g, opt_d), scaler, epoch)
            state.update(
                extra, stats=stats, step_in_epoch=step_in_epoch,
                global_step=epoch * steps_per_epoch + step_in_epoch,
                train_seconds=run_seconds,
            )
            if paused:
                # Mid-epoch: last.pt alone (atomic); the epoch checkpoints stay epoch ends.
                save_torch_atomic({**state, "rng": rng}, ckpt_dir / "last.pt")
            else:
                save_checkpoint(state, ckpt_dir, epoch, keep=config.keep_checkpoints)
                samples.append(_report_epoch(
                    tracker, generator, grid_samples, out_dir, epoch - 1, config.seed, stats
                ))
        barrier()
        if not paused and epoch < epochs and pause(epoch * steps_per_epoch):
            paused = True  # the budget ran out with the epoch: its checkpoint is the pause
    train_time = time.perf_counter() - t0

    final = out_dir / "generator.pt"
    if env.is_main and not paused:
        _save_final(generator, discriminator, config.discriminator, final, epochs, extra)
    barrier()
    fingerprint = state_sha256(generator)
    in_sync = _replicas_in_sync(fingerprint, env)
    global_step = epoch * steps_per_epoch + step_in_epoch
    if paused:
        log.info("paused at step %d (epoch %d, step %d of it) after %d steps this chunk",
                 global_step, epoch, step_in_epoch, chunk_steps)
    return {
        "epochs": epochs,
        "steps": min(config.max_steps or math.inf, config.epochs * steps_per_epoch),
        "init": init_from,
        "start_epoch": start_epoch,
        "stats": stats,
        "train_time_s": train_time,
        "train_seconds": run_seconds,
        "paused": paused,
        "global_step": global_step,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "chunk_steps": chunk_steps,
        "images_seen": global_step * effective_batch,
        "device": str(device),
        "generator": None if paused else str(final),
        "checkpoint": str(ckpt_dir / "last.pt"),
        "samples": samples,
        **figures,
        "rank": env.rank,
        "weights_sha256": fingerprint,
        "replicas_in_sync": in_sync,
    }


def _rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch (and CUDA), numpy and python RNG states, as plain values and
    tensors (what ``torch.load(weights_only=True)`` reads back)."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                  int(np_gauss), float(np_cached)],
        "python": [py_version, list(py_internal), py_gauss],
    }


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`_rng_state` recorded (the CUDA state only on a CUDA device)."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _gather_rng_states(env: DistEnv, device: torch.device) -> list[dict[str, Any]]:
    """Every rank's RNG states, indexed by rank (a collective under DDP)."""
    mine = _rng_state(device)
    if not env.distributed:
        return [mine]
    states: list[Any] = [None] * env.world_size
    dist.all_gather_object(states, mine)
    return states


def _peak_lr(config: GeneratorTrainConfig, world_size: int) -> tuple[int, float]:
    """(effective batch, peak lr): ``config.lr``, else the official ``blr x batch / 112``."""
    effective_batch = config.batch_size * config.accum_iter * world_size
    if config.lr is not None:
        return effective_batch, config.lr
    return effective_batch, config.blr * effective_batch / LR_REFERENCE_BATCH


def _checkpoint_to_resume(ckpt_dir: Path, resume: bool) -> Path | None:
    """``last.pt`` when resuming from one; refuses to write over checkpoints otherwise."""
    last = latest_checkpoint(ckpt_dir)
    if last is not None and not resume:
        raise ConfigError(
            f"{ckpt_dir} already holds checkpoints; pass resume (--resume) to continue "
            "or use a new output folder"
        )
    if resume and last is None:
        log.info("no checkpoint in %s; starting from scratch", ckpt_dir)
    return last


def _wrap_ddp(nets: tuple[nn.Module, ...], env: DistEnv) -> tuple[nn.Module, ...]:
    """The networks wrapped in DDP when several processes train (as they are otherwise)."""
    if not env.distributed:
        return nets
    ids = [env.device.index] if env.device.type == "cuda" else None
    return tuple(DistributedDataParallel(m, device_ids=ids) for m in nets)


def _checkpoint_metadata(
    config, recorded_config, data_path, out_dir, samples, figures, init_from, whitening
) -> dict[str, Any]:
    """What the checkpoints record about the run besides its config (paths relative to
    ``out_dir``, as in ``recorded_config``)."""
    return {
        "data": path_in_folder(data_path, out_dir),
        "mask": recorded_config["mask"],
        "samples": samples,
        **figures,
        "discriminator": config.discriminator,
        "teacher": config.teacher,
        "init": init_from,
        **{f"whitening_{k}": v for k, v in whitening.items()},
    }


def _schedule_length(config: GeneratorTrainConfig, loader_steps: int) -> tuple[int, float, int]:
    """(optimiser-aligned steps per epoch, schedule length in epochs, epochs to run): a
    ``max_steps`` budget shortens the warmup/cosine schedule to end with it."""
    steps_per_epoch = loader_steps - loader_steps % config.accum_iter
    schedule_epochs = float(config.epochs)
    if config.max_steps:
        schedule_epochs = min(schedule_epochs, config.max_steps / steps_per_epoch)
    return steps_per_epoch, schedule_epochs, math.ceil(schedule_epochs)


def _report_epoch(tracker, generator, grid_samples, out_dir, epoch, seed, stats) -> str:
    """Write the epoch's sample grid, send it and the statistics to the tracker, log them."""
    grid = _epoch_grid(generator, grid_samples, out_dir, epoch, seed)
    tracker.log_metrics(stats, step=epoch)
    tracker.log_artifact(grid)
    log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in stats.items()))
    return str(grid)


def _saved_whitening(metadata: dict[str, Any]) -> dict[str, float]:
    prefix = "whitening_"
    return {k[len(prefix):]: v for k, v in metadata.items() if k.startswith(prefix)}


def _save_final(generator, discriminator, disc_name: str, path: Path, epochs: int, extra) -> None:
    """``generator.pt`` and, beside it, ``discriminator.pt`` (a later warm start reads both)."""
    save_generator_checkpoint(generator, path, epoch=epochs, extra=extra)
    disc_state = {"model_disc": discriminator.state_dict(), "name": disc_name}
    save_torch_atomic(disc_state, path.parent / DISCRIMINATOR_FILE)


def _run_figures(env: DistEnv, effective_batch: int, lr: float, loss_fn) -> dict[str, Any]:
    return {
        "world_size": env.world_size,
        "effective_batch_size": effective_batch,
        "lr": lr,
        "pretrained_lpips_backbone": loss_fn.pretrained_lpips_backbone,
    }


def _epoch_grid(generator, samples, out_dir: Path, epoch: int, seed: int) -> Path:
    """``samples/epoch_XXXX.png``: the fixed samples' originals beside their reconstructions."""
    device = generator.latent_prior_proj_f.weight.device
    images, features = (t.to(device) for t in samples)
    path = out_dir / "samples" / f"epoch_{epoch:04d}.png"
    return save_sample_grid(generator, images, features, path, seed=seed)


def _loss(config: GeneratorTrainConfig, device: torch.device) -> GeneratorLoss:
    """The loss, with the frozen teacher its identity and FR-perceptual terms need and the
    toy perceptual trunk when its lpips term runs through it."""
    teacher = trunk = None
    if config.loss.teacher_terms:
        teacher = load_trained_backbone(
            config.teacher_checkpoint, config.teacher, config_key="generator.teacher_checkpoint"
        )
    if config.loss.lpips > 0 and config.loss.perceptual_trunk == "toy":
        from vec2face.perceptual.train import load_trunk

        trunk = load_trunk(config.perceptual_trunk_checkpoint)
    return GeneratorLoss(config.loss, teacher, config.lpips_backbone_weights, trunk).to(device)


def _adamw(net: nn.Module, lr: float, config: GeneratorTrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        net.parameters(), lr=lr, betas=config.betas, weight_decay=config.weight_decay
    )


def _log_run_params(tracker, config, metadata, device, generator, discriminator) -> None:
    """The run's settings, its metadata (paths aside) and the models' sizes, flattened."""
    tracker.log_params(flatten({
        **config.model_dump(mode="json"),
        **{k: v for k, v in metadata.items() if k not in ("data", "mask")},
        "device": str(device),
        "precision": _precision_name(device, config.amp, config.amp_cuda_dtype),
        "generator_params": sum(p.numel() for p in generator.parameters()),
        "discriminator_params": sum(p.numel() for p in discriminator.parameters()),
    }))


def _build_models(
    config: GeneratorTrainConfig, dataset: GeneratorTrainingData, device: torch.device, fresh: bool
) -> tuple[nn.Module, nn.Module, str, dict[str, float]]:
    """Generator and discriminator on ``device``, warm-started or whitened when a fresh run
    asks for it: (generator, discriminator, where the weights came from, whitening figures)."""
    # Same seed on every rank: identical initial weights (DDP broadcasts rank 0's anyway).
    torch.manual_seed(derive_seed(config.seed, "generator-init"))
    generator = build_generator(config.model, **config.model_args).to(device)
    if generator.arch.rep_dim != dataset.feature_dim:
        raise ConfigError(
            f"generator.model '{config.model}' takes {generator.arch.rep_dim}-d vectors, the data "
            f"carries {dataset.feature_dim}-d features"
        )
    discriminator = build_discriminator(config.discriminator).to(device)
    init_from = "scratch"
    if config.init != "scratch" and fresh:
        init_from = warm_start(config, generator, discriminator)
        log.info("warm start from %s", init_from)
    whitening: dict[str, float] = {}
    if config.whiten_input_init and fresh and config.init == "scratch":
        # Features only (no image decoding), evenly spaced records: deterministic, no RNG.
        features = torch.from_numpy(dataset.features(WHITEN_RECORDS))
        whitening = generator.init_input_whitening(features)
        log.info("vector projection initialised to whiten the features: %s", whitening)
    return generator, discriminator, init_from, whitening


def _training_state(generator, discriminator, optimizers, scaler, epoch: int) -> dict[str, Any]:
    """What a resumable checkpoint holds besides the config, metadata and statistics."""
    opt_g, opt_d = optimizers
    return {
        CHECKPOINT_KEY: generator.state_dict(),
        "arch": generator.arch.to_dict(),
        "masking": {
            "train": dataclasses.asdict(generator.train_masking),
            "generation": dataclasses.asdict(generator.gen_masking),
        },
        "model_disc": discriminator.state_dict(),
        "optimizer_g": opt_g.state_dict(),
        "optimizer_d": opt_d.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
    }


def _replicas_in_sync(fingerprint: str, env: DistEnv) -> bool:
    """Whether every rank ends with the same weights (always, without a process group)."""
    if not env.distributed:
        return True
    prints: list[Any] = [None] * env.world_size
    dist.all_gather_object(prints, fingerprint)
    if len(set(prints)) > 1:
        log.warning("generator weights differ between ranks: %s", prints)
    return len(set(prints)) == 1


def warm_start(
    config: GeneratorTrainConfig, generator: Vec2FaceGenerator, discriminator: nn.Module
) -> str:
    """Load ``config.init``'s weights into a freshly built generator and discriminator.

    ``zoo`` takes the toy zoo's generator and discriminator (verified by sha256); a path
    takes a generator checkpoint and, when a ``discriminator.pt`` (``{"model_disc", "name"}``)
    lies beside it, that discriminator. Nothing is written.

    Returns:
        Where the weights came from (for the checkpoint's metadata and the tracker).

    Raises:
        ConfigError: the source's generator (or discriminator) has another architecture than
            ``generator.model`` (``generator.discriminator``); names both.
    """
    if config.init == "zoo":
        from vec2face import zoo

        meta = zoo.manifest("generator")
        source = zoo.load("generator")
        disc_state = zoo.load_discriminator().state_dict()
        disc_name = meta["architecture"]["discriminator"]
        origin = f"zoo generator v{meta['version']} (sha256 {meta['sha256'][:12]})"
    else:
        path = Path(config.init)
        if not path.is_file():
            raise ConfigError(f"generator.init: {path} not found (scratch, zoo or a checkpoint)")
        source, report = load_generator_checkpoint(path)
        beside = path.with_name(DISCRIMINATOR_FILE)
        disc_state, disc_name = None, config.discriminator
        if report.discriminator is not None:  # a training checkpoint carries its own
            disc_state = report.discriminator
            disc_name = report.metadata.get("config", {}).get("discriminator", disc_name)
        elif beside.is_file():
            payload = load_checkpoint(beside)
            disc_state, disc_name = payload["model_disc"], payload.get("name", disc_name)
        origin = str(path)
    if source.arch.to_dict() != generator.arch.to_dict():
        diff = sorted(k for k, v in source.arch.to_dict().items()
                      if generator.arch.to_dict().get(k) != v)
        raise ConfigError(
            f"generator.init: {origin} is a '{source.arch.name}' generator, generator.model is "
            f"'{config.model}' (differs in {', '.join(diff)}); warm-start from a checkpoint of "
            "the same architecture"
        )
    if disc_name != config.discriminator:
        raise ConfigError(
            f"generator.init: {origin} carries a '{disc_name}' discriminator, "
            f"generator.discriminator is '{config.discriminator}'"
        )
    generator.load_state_dict(source.state_dict())
    if disc_state is not None:
        discriminator.load_state_dict(disc_state)
    return origin


def _precision_name(device: torch.device, amp: bool, cuda_dtype: str = "float16") -> str:
    if not amp:
        return "fp32"
    if amp_dtype(device, cuda_dtype) == torch.float16:
        return "fp16-autocast+grad-scaler"
    return "bf16-autocast"


@dataclasses.dataclass
class _ResumePoint:
    """Where a run resumes: epochs completed, batches of the next one done (a mid-epoch
    pause) with every rank's RNG states then, that epoch's stats, the checkpoint's
    metadata and the run's training wall time so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    rng: list[dict[str, Any]] | None = None
    stats: dict[str, float] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_seconds: float = 0.0


#: config keys that define what a run optimises: a resume must keep them (another
#: architecture, discriminator or objective would not continue the same run)
RESUME_FIXED = ("model", "model_args", "discriminator", "loss", "gan")
#: what a mid-epoch resume needs unchanged too: the batches it skips are these settings'
MID_EPOCH_FIXED = ("batch_size", "accum_iter", "seed")


def resume_mismatches(saved: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """The :data:`RESUME_FIXED` settings in which a checkpoint's recorded config ``saved``
    differs from ``recorded`` (the config being resumed), as ``"checkpoint KEY X does not
    match generator.KEY Y"`` lines. Keys of a sub-section that one side lacks compare with
    their default (a checkpoint from before a new loss term was added resumes)."""
    defaults = GeneratorTrainConfig.model_construct().model_dump(mode="json")
    out = []
    for key in RESUME_FIXED:
        if key not in saved:
            continue
        mine, theirs = recorded.get(key), saved[key]
        if isinstance(mine, dict) and isinstance(theirs, dict):
            base = defaults.get(key) or {}
            for sub in sorted(set(mine) | set(theirs)):
                a, b = theirs.get(sub, base.get(sub)), mine.get(sub, base.get(sub))
                if a != b:
                    out.append(f"checkpoint {key}.{sub} {a!r} does not match "
                               f"generator.{key}.{sub} {b!r}")
        elif mine != theirs:
            out.append(f"checkpoint {key} {theirs!r} does not match generator.{key} {mine!r}")
    return out


def _restore(
    path: Path,
    config: GeneratorTrainConfig,
    recorded_config: dict[str, Any],
    generator: Vec2FaceGenerator,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    world_size: int = 1,
) -> _ResumePoint:
    """Load a training checkpoint into the models, optimisers and scaler.

    ``recorded_config`` (``config`` as checkpoints hold it) is compared with the saved one:
    a difference in :data:`RESUME_FIXED` is refused, any other changed setting is logged.
    A checkpoint paused mid-epoch also needs the same :data:`MID_EPOCH_FIXED` settings and
    world size (the data each rank skips depends on them).

    Raises:
        Vec2FaceError: not a generator training checkpoint, or a refused difference (one
            line naming each differing setting with both values).
    """
    state = load_checkpoint(path)
    missing = [
        k
        for k in (CHECKPOINT_KEY, "model_disc", "optimizer_g", "optimizer_d", "epoch")
        if k not in state
    ]
    if missing:
        raise Vec2FaceError(
            f"{path}: not a generator training checkpoint (missing {', '.join(missing)})"
        )
    if state.get("arch") != generator.arch.to_dict():
        theirs = (state.get("arch") or {}).get("name", "?")
        diff = sorted(k for k, v in (state.get("arch") or {}).items()
                      if generator.arch.to_dict().get(k) != v)
        raise Vec2FaceError(
            f"{path}: checkpoint generator '{theirs}' does not match "
            f"generator.model '{config.model}' (differs in {', '.join(diff) or 'arch'})"
        )
    saved = state.get("config") or {}
    step_in_epoch = int(state.get("step_in_epoch", 0))
    refused = resume_mismatches(saved, recorded_config)
    if step_in_epoch:
        refused += [f"checkpoint {k} {saved[k]!r} does not match generator.{k} "
                    f"{recorded_config[k]!r} (paused mid-epoch)"
                    for k in MID_EPOCH_FIXED if k in saved and saved[k] != recorded_config[k]]
        ranks = len(state.get("rng") or [])
        if ranks != world_size:
            refused.append(f"checkpoint paused mid-epoch in a world of {ranks} process(es), "
                           f"this run has {world_size}")
    if refused:
        raise Vec2FaceError(f"{path}: cannot resume: {'; '.join(refused)}")
    changed = sorted(k for k, v in recorded_config.items() if k in saved and saved[k] != v)
    if changed:
        log.warning("resuming %s with changed settings: %s", path, ", ".join(changed))
    generator.load_state_dict(state[CHECKPOINT_KEY])
    discriminator.load_state_dict(state["model_disc"])
    opt_g.load_state_dict(state["optimizer_g"])
    opt_d.load_state_dict(state["optimizer_d"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return _ResumePoint(
        epoch=int(state["epoch"]),
        step_in_epoch=step_in_epoch,
        rng=state.get("rng"),
        stats=dict(state.get("stats") or {}),
        metadata=dict(state.get("metadata") or {}),
        train_seconds=float(state.get("train_seconds", 0.0)),
    )
