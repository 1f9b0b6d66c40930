"""Stop a run on a non-finite loss, naming where it happened."""

from __future__ import annotations

import math

import torch

from vec2face.errors import Vec2FaceError


class NonFiniteLossError(Vec2FaceError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_finite(loss: torch.Tensor | float, epoch: int, step: int, batch: int | None = None) -> None:
    """Raise :class:`NonFiniteLossError` naming epoch, step and batch if ``loss`` is not finite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        where = f"epoch {epoch}, step {step}" + (f", batch {batch}" if batch is not None else "")
        raise NonFiniteLossError(f"non-finite loss ({value}) at {where}; last good checkpoint kept")
