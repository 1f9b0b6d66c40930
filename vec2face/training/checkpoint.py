"""Atomic, resumable checkpoints: ``<dir>/checkpoint_<epoch:04d>.pt`` plus ``last.pt``.

A checkpoint is a plain dict of tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``. It is written to a temporary name and renamed, so a
killed run never leaves a half-written file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from vec2face.errors import ConfigError
from vec2face.utils.io import atomic_path, load_torch_safely, save_torch_atomic


def save_checkpoint(state: dict[str, Any], directory: str | Path, epoch: int, keep: int = 2) -> Path:
    """Write ``state`` as epoch ``epoch``'s checkpoint and point ``last.pt`` at it.

    Args:
        state: what to save (model/optimiser state dicts, epoch, rng states, metadata).
        directory: checkpoint folder (created if missing).
        epoch: the number of completed epochs this state represents.
        keep: how many epoch checkpoints to keep (older ones are removed).

    Returns:
        The epoch checkpoint's path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint_{epoch:04d}.pt"
    save_torch_atomic(state, path)
    with atomic_path(directory / "last.pt") as tmp:
        shutil.copyfile(path, tmp)
    for old in sorted(directory.glob("checkpoint_*.pt"))[:-keep] if keep > 0 else []:
        os.unlink(old)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    """``<directory>/last.pt`` if it exists."""
    p = Path(directory) / "last.pt"
    return p if p.is_file() else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``).

    Raises:
        ConfigError: the file is missing, or is not a checkpoint (names it).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        return load_torch_safely(path, map_location)
    except ValueError as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from None
