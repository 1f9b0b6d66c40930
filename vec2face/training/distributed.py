"""Process-group setup for ``torchrun``: gloo on CPU, nccl on CUDA.

Nothing happens at import time; a single process without torchrun's environment
variables runs as rank 0 of 1 with no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def loader_args(self, seed: int, num_workers: int) -> dict[str, Any]:
        """What a training loader needs to give this rank its share of a seeded shuffle."""
        return {
            "seed": seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": num_workers,
            "pin_memory": self.device.type == "cuda",
        }


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Args:
        device: "cpu", "cuda" or "auto" (CUDA when available).

    Returns:
        The process's rank, world size, local rank and device.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a :class:`DistributedDataParallel` wrapper (or ``module`` itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def all_ranks_sum(value: torch.Tensor, distributed: bool) -> torch.Tensor:
    """A scalar summed over ranks, shape (1,), float32.

    Checked for NaN/inf, the sum makes every rank stop together when any rank's value is
    not finite: a rank that stopped alone would leave the others waiting in the gradient
    all-reduce.
    """
    v = value.detach().float().reshape(1).clone()
    if distributed:
        dist.all_reduce(v)
    return v


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, in place.

    DDP broadcasts rank 0's buffers before each forward, so after the last step of an epoch
    every rank holds statistics updated by its own batch; averaging makes the ranks equal
    (and the saved model the same on every rank).
    """
    world = dist.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(world)
