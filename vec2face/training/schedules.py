"""Learning-rate schedules as pure functions of the iteration (set per iteration)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def warmup_cosine_lr(it: float, base_lr: float, warmup_iters: float, total_iters: float,
                     min_lr: float = 0.0) -> float:
    """Linear warmup to ``base_lr`` then a half-cycle cosine down to ``min_lr`` (MAE's schedule)."""
    if it < warmup_iters:
        return base_lr * it / max(warmup_iters, 1e-12)
    frac = (it - warmup_iters) / max(total_iters - warmup_iters, 1e-12)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))


def multistep_lr(epoch: float, base_lr: float, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_epochs: float = 0.0) -> float:
    """Step decay by ``gamma`` at each milestone epoch, after an optional linear warmup."""
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    return base_lr * gamma ** sum(epoch >= m for m in milestones)
