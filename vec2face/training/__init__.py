"""Pieces every training engine shares: distributed setup, sharded loaders, precision,
schedules, atomic resumable checkpoints, and the non-finite-loss guard."""

from vec2face.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from vec2face.training.distributed import (
    DistEnv,
    all_ranks_sum,
    average_buffers,
    barrier,
    cleanup_distributed,
    init_distributed,
    unwrap,
)
from vec2face.training.guards import NonFiniteLossError, check_finite
from vec2face.training.loaders import batch_loader, shard_sampler
from vec2face.training.precision import (
    amp_dtype,
    autocast_for,
    make_grad_scaler,
    resolve_bf16,
)
from vec2face.training.schedules import multistep_lr, warmup_cosine_lr

__all__ = [
    "DistEnv", "NonFiniteLossError", "all_ranks_sum", "amp_dtype", "autocast_for",
    "average_buffers", "barrier", "batch_loader", "check_finite", "cleanup_distributed",
    "init_distributed", "latest_checkpoint", "load_checkpoint", "make_grad_scaler",
    "multistep_lr", "resolve_bf16", "save_checkpoint", "shard_sampler", "unwrap", "warmup_cosine_lr",
]
