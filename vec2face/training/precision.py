"""One mixed-precision path with an ``enabled`` flag: fp16 on CUDA (or bf16, by choice), bf16
on CPU.

A setting may also be ``"auto"`` (:func:`resolve_bf16`): mixed precision on CUDA, and on a
CPU only where bf16 actually runs faster. That is a property of the CPU, not of the model:
with AMX, bf16 convolutions ran 2.8-5x faster than fp32 here; with oneDNN held to AVX-512
BF16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``, a CPU without AMX) they ran at 0.65-0.9x,
and the toy generator, the FR models' training and inference followed (0.73x, 0.81x, 0.64x;
bench/bench_precision.py, docs/experiments/2026-12-06-main-job-time.md).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

#: a mixed-precision setting: on, off, or "auto" (:func:`resolve_bf16`)
Bf16Setting = bool | Literal["auto"]

#: "auto" takes bf16 on a CPU when it runs the probe at least this much faster than fp32
#: (measured: 2.8-5.0 with AMX, 0.65-0.88 without; the margin keeps noise from deciding)
AUTO_BF16_MIN_SPEEDUP = 1.3

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


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup(threads: int) -> float:
    """fp32 time over bf16 time of a small channels-last convolution stack on this CPU, at
    ``threads`` intra-op threads (the best of 5 alternating rounds each; about 0.3 s).

    Three 3x3 convolutions of 64 channels on (32, 64, 28, 28) maps: the shape of the toy
    generator's decoder and the FR backbones' middle stages, where their time goes.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        net = nn.Sequential(*[m for _ in range(3) for m in (nn.Conv2d(64, 64, 3, padding=1),
                                                           nn.ReLU())]).eval()
        net = net.to(memory_format=torch.channels_last)
        x = torch.randn(32, 64, 28, 28, generator=gen).to(memory_format=torch.channels_last)
        best = {False: float("inf"), True: float("inf")}
        with torch.inference_mode():
            for bf16 in (False, True):  # warm-up: oneDNN builds its kernels on first use
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    net(x)
            for _ in range(5):
                for bf16 in (False, True):
                    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                        t = time.perf_counter()
                        net(x)
                        best[bf16] = min(best[bf16], time.perf_counter() - t)
    finally:
        torch.set_num_threads(previous)
    return best[False] / best[True]


def resolve_bf16(setting: Bf16Setting, device: torch.device | str) -> bool:
    """Whether a mixed-precision ``setting`` runs reduced precision on ``device``.

    ``True``/``False`` as given. ``"auto"``: on CUDA yes; on a CPU when
    :func:`cpu_bf16_speedup` is at least :data:`AUTO_BF16_MIN_SPEEDUP` (decided once per
    process and thread count, and logged).

    Raises:
        ValueError: a setting other than a bool or ``"auto"``.
    """
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f"mixed-precision setting must be true, false or 'auto', got {setting!r}")
    device = torch.device(device)
    if device.type != "cpu":
        return device.type == "cuda"
    speedup = cpu_bf16_speedup(torch.get_num_threads())
    chosen = speedup >= AUTO_BF16_MIN_SPEEDUP
    log.info("precision auto: bf16 runs %.2fx fp32 on this CPU -> %s", speedup,
             "bf16" if chosen else "fp32")
    return chosen
