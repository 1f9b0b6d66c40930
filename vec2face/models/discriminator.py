"""PatchGAN discriminator used to train the Vec2Face generator.

The layout follows the discriminator the official Vec2Face training uses (the ViT-VQGAN
discriminator of lucidrains' parti-pytorch, dims 64, 128, 256, 512): a multi-scale "cross
embedding" stem at full resolution, three stride-2 stages with a residual block each, and a
4x4 valid convolution to patch logits. Module names match it, so official discriminator
states load by name.

How the official training uses it: its generator step computes ``-mean(D(fake))`` with the
discriminator still trainable (it is never frozen), so the generator's adversarial gradient
also flows into this network and its optimiser applies it; pushed to call fakes real, it
settles near 1 for real and fake alike and the GAN is in effect off. The trainer here
freezes it during the generator's update (a proper adversary) unless
``generator.gan.official_leak: true`` asks for the official behaviour
(:mod:`vec2face.generator.train`).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from vec2face.errors import ConfigError
from vec2face.models._registry import create, list_models, register


def _leaky_relu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1)


class CrossEmbedLayer(nn.Module):
    """Parallel convolutions of several kernel sizes, concatenated along channels.

    Output widths halve with each larger kernel (out/2, out/4, ... and the rest to the last).
    """

    def __init__(self, dim_in: int, kernel_sizes: tuple[int, ...], dim_out: int, stride: int = 1):
        super().__init__()
        kernel_sizes = tuple(sorted(kernel_sizes))
        widths = [dim_out // 2**i for i in range(1, len(kernel_sizes))]
        widths.append(dim_out - sum(widths))
        self.convs = nn.ModuleList(
            nn.Conv2d(dim_in, w, k, stride=stride, padding=(k - stride) // 2)
            for k, w in zip(kernel_sizes, widths)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W) -> (N, dim_out, H / stride, W / stride)."""
        return torch.cat([conv(x) for conv in self.convs], dim=1)


class ConvBlock(nn.Module):
    """GroupNorm -> LeakyReLU -> 3x3 conv."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, dim)
        self.activation = _leaky_relu()
        self.project = nn.Conv2d(dim, dim_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, dim, H, W) -> (N, dim_out, H, W)."""
        return self.project(self.activation(self.groupnorm(x)))


class ResnetBlock(nn.Module):
    """One ConvBlock plus a (1x1-projected when widths differ) skip."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.block = ConvBlock(dim, dim_out, groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, dim, H, W) -> (N, dim_out, H, W)."""
        return self.block(x) + self.res_conv(x)


class PatchDiscriminator(nn.Module):
    """Images (N, 3, H, W) in [-1, 1] -> patch logits (N, 1, H/8 - 3, W/8 - 3); 11x11 at 112.

    Args:
        dims: stage widths; the stem outputs ``dims[0]`` at full resolution and every further
            width halves the resolution.
        channels: input channels.
        groups: GroupNorm groups.
        cross_embed_kernel_sizes: stem kernel sizes.
    """

    def __init__(
        self,
        dims: tuple[int, ...] = (64, 128, 256, 512),
        channels: int = 3,
        groups: int = 8,
        cross_embed_kernel_sizes: tuple[int, ...] = (3, 7, 15),
    ):
        super().__init__()
        if len(dims) < 2 or any(d % groups for d in dims):
            raise ConfigError(
                f"discriminator: dims {dims} need >= 2 widths, each divisible by groups={groups}"
            )
        self.dims = tuple(dims)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(
                    CrossEmbedLayer(channels, cross_embed_kernel_sizes, dims[0], stride=1),
                    _leaky_relu(),
                )
            ]
        )
        for dim_in, dim_out in itertools.pairwise(dims):
            self.layers.append(
                nn.Sequential(
                    nn.Conv2d(dim_in, dim_out, 4, stride=2, padding=1),
                    _leaky_relu(),
                    nn.GroupNorm(groups, dim_out),
                    ResnetBlock(dim_out, dim_out, groups),
                )
            )
        self.to_logits = nn.Sequential(
            nn.Conv2d(dims[-1], dims[-1], 1),
            _leaky_relu(),
            nn.Conv2d(dims[-1], 1, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) -> (N, 1, h, w) logits, one per overlapping patch."""
        for layer in self.layers:
            x = layer(x)
        return self.to_logits(x)


@register("discriminator", "patchgan")
def patchgan(**overrides: Any) -> PatchDiscriminator:
    """The paper's discriminator: widths 64, 128, 256, 512."""
    return PatchDiscriminator(**overrides)


@register("discriminator", "patchgan_tiny")
def patchgan_tiny(**overrides: Any) -> PatchDiscriminator:
    """Widths 16, 32, 64, 128 (same layout, ~16x fewer FLOPs) for CPU training of ``tiny``."""
    return PatchDiscriminator(**{"dims": (16, 32, 64, 128), **overrides})


def build_discriminator(name: str = "patchgan", **overrides: Any) -> PatchDiscriminator:
    """Build a registered discriminator; unknown names list the known ones (ConfigError)."""
    known = list_models("discriminator")
    if name not in known:
        raise ConfigError(f"unknown discriminator '{name}'; known: {', '.join(known)}")
    return create("discriminator", name, **overrides)
