"""What every attribute estimator is: a differentiable module from images to attributes.

AttrOP back-propagates through estimators to the generator's input, so an estimator maps
images ``(N, 3, 112, 112)`` RGB in [-1, 1] to ``{attribute: (N,) tensor}`` with gradients;
dataset reports call :meth:`AttributeEstimator.predict` on uint8 images. The toy estimator
(:mod:`vec2face.attributes.estimators`) and the real adapters
(:mod:`vec2face.attributes.real`) both derive from it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

#: every attribute an estimator can provide (degrees, years, MagFace's quality scale)
ATTRIBUTES: tuple[str, ...] = ("yaw", "pitch", "roll", "age", "quality")


class AttributeEstimator(nn.Module):
    """Base of every estimator: ``forward(images) -> {attribute: (N,) tensor}``.

    Subclasses set :attr:`provides` (the attributes their forward returns) and
    implement :meth:`forward`; they must stay differentiable with respect to the
    images (no ``no_grad``, no rounding) because AttrOP back-propagates through them.
    """

    provides: tuple[str, ...] = ATTRIBUTES

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, 112, 112) RGB in [-1, 1] -> {name: (N,) float32} for ``provides``."""
        raise NotImplementedError

    def _device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def predict(
        self, images: np.ndarray, batch_size: int = 128, amp: bool = False
    ) -> dict[str, np.ndarray]:
        """Estimate attributes of uint8 images, batch by batch, in eval mode.

        Args:
            images: uint8 (N, 112, 112, 3) RGB.
            batch_size: images per forward pass.
            amp: bf16 (CPU) / fp16 (CUDA) autocast.

        Returns:
            {name: float32 (N,)} for every attribute in ``provides``.

        Raises:
            ValueError: images are not uint8 (N, H, W, 3).
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"predict expects uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        self.eval()
        device = self._device()
        out: dict[str, list[np.ndarray]] = {name: [] for name in self.provides}
        try:
            for s in range(0, len(images), batch_size):
                x = uint8_to_input(torch.from_numpy(images[s : s + batch_size]), device)
                with _autocast(device, amp):
                    pred = self(x)
                for name in self.provides:
                    out[name].append(pred[name].float().cpu().numpy())
        finally:
            self.train(was_training)
        return {
            name: (np.concatenate(v) if v else np.zeros(0, np.float32)).astype(np.float32)
            for name, v in out.items()
        }


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(
        device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16
    )


def uint8_to_input(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1], channels-last in memory."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
