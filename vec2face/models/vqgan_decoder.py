"""The VQGAN-style convolutional image decoder of Vec2Face (a 7x7 token map -> 112x112 RGB).

Module names and wiring follow the decoder of taming-transformers as the official Vec2Face
code uses it (``im_decoder``), so that official weights load unchanged: ``conv_in``,
``mid.block_1/2``, ``up[level].block[i]`` / ``up[level].upsample``, ``norm_out``, ``conv_out``.

Two properties of the official decoder are kept on purpose because the released weights were
trained with them:

* there are no attention modules: the official config lists ``attn_resolutions: [16]`` but its
  decoder builds none (and no level of a 7 -> 112 pyramid has resolution 16 anyway);
* a residual block that changes width has no skip from its input: its 1x1 ``nin_shortcut`` has
  shape (out, out) and is applied to the block's own output, ``out = nin_shortcut(h) + h``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm-swish-conv twice, plus the official (quirky) shortcut described above."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, norm_groups: int = 32):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = _group_norm(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _group_norm(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(out_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W) -> (N, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.in_channels != self.out_channels:
            # Official wiring: the shortcut branch sees h, not x (see module docstring).
            return self.nin_shortcut(h) + h
        return x + h


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, 2H, 2W)."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """Token map -> image: conv_in, two middle res blocks, one level per ``ch_mult`` entry.

    Levels run from the coarsest (``ch * ch_mult[-1]`` channels) to the finest; every level but
    the finest ends with a 2x upsample, so ``len(ch_mult) - 1`` doublings (7 -> 112 for five
    levels).

    Args:
        ch: base channel count.
        ch_mult: channel multipliers per level, finest first (official: 1, 1, 2, 2, 4).
        num_res_blocks: residual blocks per level.
        z_channels: channels of the input map.
        out_ch: output channels (3 for RGB).
        dropout: dropout inside residual blocks (0 in the official config).
        norm_groups: GroupNorm groups (32 in the official config, where the finest level has
            128 channels: 4 per group).
    """

    def __init__(
        self,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        z_channels: int,
        out_ch: int = 3,
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout, norm_groups)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout, norm_groups)

        # Built coarse-to-fine but stored finest-first (``up[0]`` is the 112x112 level), which
        # is the layout of the official state dict.
        levels: list[nn.Module] = []
        for i_level in reversed(range(self.num_resolutions)):
            block_out = ch * ch_mult[i_level]
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, dropout, norm_groups))
                block_in = block_out
            level = nn.Module()
            level.block = blocks
            if i_level != 0:
                level.upsample = Upsample(block_in)
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)

        self.norm_out = _group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, z_channels, h, w) -> (N, out_ch, h * 2**(levels-1), w * 2**(levels-1)).

        The output is not clamped: training regresses it onto images in [-1, 1] and generation
        clamps it.
        """
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.block_1(h))
        for i_level in reversed(range(self.num_resolutions)):
            level = self.up[i_level]
            for block in level.block:
                h = block(h)
            if i_level != 0:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
