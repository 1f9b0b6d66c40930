"""One mixed-precision path with an ``enabled`` flag: fp16 on CUDA, bf16 on CPU."""

from __future__ import annotations

import contextlib

import torch


def autocast_for(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Autocast for ``device``: fp16 on CUDA (paper recipe), bf16 on CPU (AMX), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A gradient scaler, active only for fp16 on CUDA (bf16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")
