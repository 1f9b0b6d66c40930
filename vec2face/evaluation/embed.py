"""Inference for the verification protocol: images -> flip-summed FR embeddings."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

__all__ = ["flip_sum_embeddings", "to_model_input"]


def to_model_input(
    images_uint8_nhwc: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1] on ``device``, channels-last."""
    x = torch.as_tensor(images_uint8_nhwc).to(device)
    # permute keeps the NHWC storage, which is what channels_last convolutions want.
    x = x.permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


@torch.no_grad()
def flip_sum_embeddings(
    model: nn.Module,
    images_uint8_nhwc: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast_bf16: bool = False,
) -> np.ndarray:
    """Embed images and their horizontal mirrors and sum the two, as insightface's test does.

    The model is run in eval mode; each batch and its mirror go through one forward pass.
    The sums are not normalised (:func:`verification_accuracy` normalises them).

    Args:
        model: FR backbone taking (N, 3, H, W) in [-1, 1].
        images_uint8_nhwc: (N, H, W, 3) uint8 RGB images.
        batch_size: images per forward pass (the pass itself holds twice as many).
        device: where to run.
        autocast_bf16: run under bfloat16 autocast (fast on AVX-512/AMX CPUs and recent GPUs).

    Returns:
        (N, D) float32 embeddings: f(image) + f(mirrored image).
    """
    images = (
        np.asarray(images_uint8_nhwc)
        if not torch.is_tensor(images_uint8_nhwc)
        else images_uint8_nhwc
    )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {tuple(images.shape)}")
    if images.dtype not in (np.uint8, torch.uint8):
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    amp = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if autocast_bf16
        else contextlib.nullcontext()
    )
    chunks: list[np.ndarray] = []
    try:
        with amp:
            for start in range(0, images.shape[0], batch_size):
                x = to_model_input(images[start : start + batch_size], device)
                both = torch.cat([x, torch.flip(x, dims=[3])]).contiguous(
                    memory_format=torch.channels_last
                )
                out = model(both).float()
                n = x.shape[0]
                chunks.append((out[:n] + out[n:]).cpu().numpy())
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("no images to embed")
    return np.concatenate(chunks)
