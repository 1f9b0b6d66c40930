"""Shared by the HSFace writer and AttrOP tests: a tiny generator checkpoint with identity
vectors, and an attribute estimator with known outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vec2face.attributes import AttributeEstimator
from vec2face.models import build_generator
from vec2face.models.generator import save_generator_checkpoint


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A random tiny generator checkpoint and 8 identity vectors (.npy)."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("hsface_inputs")
    torch.manual_seed(0)
    save_generator_checkpoint(build_generator("tiny"), d / "gen.pth")
    vectors = np.random.default_rng(0).standard_normal((8, 512)).astype(np.float32)
    np.save(d / "ids.npy", vectors)
    return d / "gen.pth", d / "ids.npy"


class HalfContrastEstimator(AttributeEstimator):
    """Known, differentiable attributes: yaw from the brightness difference of the image's
    halves, ``90 tanh(4 (right - left))`` degrees; quality from the global contrast,
    ``20 + 20 std`` (about the MagFace range)."""

    provides = ("yaw", "quality")

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, H, W) in [-1, 1] -> {yaw, quality}: (N,)."""
        gray = images.float().mean(1)
        half = gray.shape[-1] // 2
        diff = gray[..., half:].mean((1, 2)) - gray[..., :half].mean((1, 2))
        return {"yaw": 90 * torch.tanh(4 * diff), "quality": 20 + 20 * gray.std((1, 2))}


@pytest.fixture(scope="session")
def half_contrast() -> HalfContrastEstimator:
    return HalfContrastEstimator()
