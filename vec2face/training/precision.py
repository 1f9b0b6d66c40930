"""One mixed-precision path with an ``enabled`` flag: fp16 on CUDA (or bf16, by choice), bf16
on CPU."""

from __future__ import annotations

import contextlib

import torch

CUDA_AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_dtype(device: torch.device, cuda_dtype: str = "float16") -> torch.dtype:
    """The autocast dtype on ``device``: ``cuda_dtype`` on CUDA, bf16 elsewhere (AMX)."""
    if cuda_dtype not in CUDA_AMP_DTYPES:
        raise ValueError(f"cuda_dtype must be one of {sorted(CUDA_AMP_DTYPES)}, got {cuda_dtype!r}")
    return CUDA_AMP_DTYPES[cuda_dtype] if device.type == "cuda" else torch.bfloat16


def autocast_for(
    device: torch.device, enabled: bool, cuda_dtype: str = "float16"
) -> contextlib.AbstractContextManager:
    """Autocast for ``device``: fp16 on CUDA (paper recipe; bf16 when ``cuda_dtype`` says so,
    which needs no loss scaling), bf16 on CPU (AMX), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device, cuda_dtype))


def make_grad_scaler(
    device: torch.device, enabled: bool, cuda_dtype: str = "float16"
) -> torch.amp.GradScaler:
    """A gradient scaler, active only for fp16 on CUDA (bf16 needs none)."""
    active = enabled and amp_dtype(device, cuda_dtype) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=active)
