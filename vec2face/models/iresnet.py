"""IResNet face-recognition backbones (insightface ``arcface_torch`` layout), plus SE-IR50.

Module names, shapes and the forward pass follow insightface's ``backbones/iresnet.py``,
so an insightface ``r18``/``r34``/``r50``/``r100`` state dict loads with ``strict=True``
and gives the same embeddings. ``se_ir50`` is the Table 5 FR model of Vec2Face (the
layout of the public SOTA-FR trainer's ``mode="se"``): the r50 layout plus a
squeeze-excitation unit in the first block of each stage, which rescales that block's
shortcut branch. ``tiny`` is a narrow, shallow variant for the CPU toy world.

Every variant maps a (N, 3, 112, 112) image in [-1, 1] to a (N, embedding_size) vector.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch
from torch import nn

from vec2face.models._registry import create, register

__all__ = ["IBasicBlock", "IResNet", "IResNetConfig", "SEModule", "build_backbone"]

BACKBONE_FAMILY = "backbone"


@dataclass(frozen=True)
class IResNetConfig:
    """Architecture of an IResNet.

    Attributes:
        layers: blocks per stage (four stages).
        widths: output channels per stage; insightface uses (64, 128, 256, 512).
        stem_width: channels of the stem convolution.
        embedding_size: output dimension (insightface ``num_features``).
        input_size: square input side; each stage halves it, so 112 -> 7x7 at the end.
        dropout: dropout before ``fc`` (insightface default 0).
        se_reduction: if set, the first block of each stage gets an SE unit with this
            channel reduction (``attn.fc1``/``attn.fc2``); None for plain IResNet.
        fp16: run the convolutional trunk under autocast (float16 on CUDA, bfloat16 on
            CPU) and ``fc``/``features`` in float32, as insightface's ``fp16`` flag does.
        stem_stride: stride of the stem convolution. insightface uses 1; the toy world's
            small models use 2 so that the first stage runs at 56x56 (4x fewer FLOPs
            there), and the final map is ceil(S / 32) wide. 4 is a patchify stem (a 4x4
            kernel at stride 4, as ConvNeXt's): the first stage runs at 28x28.
    """

    layers: tuple[int, int, int, int]
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_width: int = 64
    embedding_size: int = 512
    input_size: int = 112
    dropout: float = 0.0
    se_reduction: int | None = None
    fp16: bool = False
    stem_stride: int = 1

    def __post_init__(self) -> None:
        if len(self.layers) != 4 or len(self.widths) != 4:
            raise ValueError(
                f"IResNet needs 4 stages, got layers={self.layers} widths={self.widths}"
            )
        if any(n < 1 for n in self.layers):
            raise ValueError(f"every stage needs at least one block, got layers={self.layers}")
        if self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")
        if self.stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")

    @property
    def final_side(self) -> int:
        """Side of the last stage's map: each stride-2 conv (kernel 3, pad 1) rounds up."""
        side = self.input_size // 4 if self.stem_stride == 4 else self.input_size
        for _ in range(4 + (self.stem_stride == 2)):
            side = (side + 1) // 2
        return side


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class SEModule(nn.Module):
    """Squeeze-excitation: global average pool, 1x1 conv down, ReLU, 1x1 conv up, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f"SE reduction {reduction} too large for {channels} channels")
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W), each channel scaled by a gate in (0, 1)."""
        gate = x.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(self.fc2(self.relu(self.fc1(gate))))
        return x * gate


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: bn1-conv1-bn2-prelu-conv2(stride)-bn3 + shortcut."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        se_reduction: int | None = None,
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample
        self.stride = stride
        self.attn = SEModule(planes, se_reduction) if se_reduction else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)."""
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        if self.attn is not None:
            # SE-IR50 (SOTA-FR "se" mode) gates the shortcut, not the residual branch.
            shortcut = self.attn(shortcut)
        out += shortcut  # in place, as insightface: one activation-sized buffer fewer per block
        return out


class IResNet(nn.Module):
    """insightface IResNet: 3x3 stem, four stride-2 stages, BN-flatten-dropout-FC-BN1d head."""

    def __init__(self, cfg: IResNetConfig):
        super().__init__()
        self.cfg = cfg
        self.fp16 = cfg.fp16
        # A patchify stem (stride 4) sees each 4x4 patch once; the others are insightface's.
        kernel, pad = (4, 0) if cfg.stem_stride == 4 else (3, 1)
        self.conv1 = nn.Conv2d(
            3, cfg.stem_width, kernel_size=kernel, stride=cfg.stem_stride, padding=pad, bias=False
        )
        self.bn1 = nn.BatchNorm2d(cfg.stem_width, eps=1e-5)
        self.prelu = nn.PReLU(cfg.stem_width)
        inplanes = cfg.stem_width
        for i, (blocks, planes) in enumerate(zip(cfg.layers, cfg.widths), start=1):
            self.add_module(
                f"layer{i}", self._make_layer(inplanes, planes, blocks, cfg.se_reduction)
            )
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.dropout = nn.Dropout(p=cfg.dropout, inplace=True)
        side = cfg.final_side
        self.fc = nn.Linear(inplanes * side * side, cfg.embedding_size)
        self.features = nn.BatchNorm1d(cfg.embedding_size, eps=1e-5)
        self._init_weights()

    @staticmethod
    def _make_layer(
        inplanes: int, planes: int, blocks: int, se_reduction: int | None
    ) -> nn.Sequential:
        downsample = nn.Sequential(
            _conv1x1(inplanes, planes, stride=2), nn.BatchNorm2d(planes, eps=1e-5)
        )
        layers = [IBasicBlock(inplanes, planes, 2, downsample, se_reduction)]
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # A learnable scale on the embedding BN lets weight decay shrink it unevenly and,
        # trained from scratch, unseen identities collapse onto one direction;
        # insightface freezes it at 1 for the same reason.
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad = False

    def _trunk_autocast(self, x: torch.Tensor) -> contextlib.AbstractContextManager:
        if not self.fp16:
            # An ``enabled=False`` autocast would switch off a caller's autocast too.
            return contextlib.nullcontext()
        dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=x.device.type, dtype=dtype)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (N, 3, S, S) -> [stem, layer1 .. layer4] maps, each (N, C, h, w)."""
        maps = [self.prelu(self.bn1(self.conv1(x)))]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            maps.append(stage(maps[-1]))
        return maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, S, S) -> flattened trunk output (N, C4 * side^2), before ``fc``."""
        x = self.bn2(self.feature_maps(x)[-1])
        x = torch.flatten(x, 1)
        return self.dropout(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, S, S) in [-1, 1] (any memory format) -> embeddings (N, embedding_size)."""
        with self._trunk_autocast(x):
            x = self.forward_features(x)
        if self.fp16:
            x = x.float()
        x = self.fc(x)
        return self.features(x)


def _iresnet(cfg: IResNetConfig, embedding_size: int, **overrides) -> IResNet:
    return IResNet(replace(cfg, embedding_size=embedding_size, **overrides))


_R18 = IResNetConfig(layers=(2, 2, 2, 2))
_R34 = IResNetConfig(layers=(3, 4, 6, 3))
_R50 = IResNetConfig(layers=(3, 4, 14, 3))
_R100 = IResNetConfig(layers=(3, 13, 30, 3))
_SE_IR50 = IResNetConfig(layers=(3, 4, 14, 3), se_reduction=16)
# The toy world's models: a stride-2 stem runs the first stage at 56x56 (4x fewer FLOPs
# than insightface's stride-1 stem) and the last map is 4x4, which keeps ``fc`` small.
# On 2 CPU cores (bf16, channels-last, batch 128) a training step of ``tiny`` runs at
# ~290 images/s against ~80 for the stride-1 widths-32-64-96-96 variant it replaced, and
# three epochs on 2,000 toy identities reach toy-LFW 97-98%.
_TINY = IResNetConfig(
    layers=(1, 2, 2, 1), widths=(48, 96, 128, 128), stem_width=32, stem_stride=2
)
# The chain's FR models (trained on the subset and on HSFace in every main job): ``tiny``
# behind a patchify stem. 28x28 from the first stage on makes a training step about 3x
# faster than ``tiny``'s on 2 cores without AMX (docs/experiments/2026-12-06-fast-fr.md).
_TINY_PATCH4 = replace(_TINY, stem_stride=4)
# The judge must be an independent model: another seed, pool and size.
_TINY_JUDGE = IResNetConfig(
    layers=(1, 1, 2, 1), widths=(32, 64, 128, 192), stem_width=24, stem_stride=2
)


@register(BACKBONE_FAMILY, "r18")
def r18(embedding_size: int = 512, **overrides) -> IResNet:
    """insightface iresnet18 (layers 2-2-2-2)."""
    return _iresnet(_R18, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "r34")
def r34(embedding_size: int = 512, **overrides) -> IResNet:
    """insightface iresnet34 (layers 3-4-6-3)."""
    return _iresnet(_R34, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "r50")
def r50(embedding_size: int = 512, **overrides) -> IResNet:
    """insightface iresnet50 (layers 3-4-14-3): 475 state-dict tensors, 43.59M parameters."""
    return _iresnet(_R50, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "r100")
def r100(embedding_size: int = 512, **overrides) -> IResNet:
    """insightface iresnet100 (layers 3-13-30-3): 925 state-dict tensors, 65.16M parameters."""
    return _iresnet(_R100, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "se_ir50")
def se_ir50(embedding_size: int = 512, **overrides) -> IResNet:
    """SE-IR50 (Vec2Face Table 5): r50 plus SE on each stage's first block; 483 tensors, 43.63M."""
    return _iresnet(_SE_IR50, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "tiny")
def tiny(embedding_size: int = 512, **overrides) -> IResNet:
    """Small IResNet for the CPU toy world: stride-2 stem, widths 48-96-128-128, blocks 1-2-2-1."""
    return _iresnet(_TINY, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "tiny_patch4")
def tiny_patch4(embedding_size: int = 512, **overrides) -> IResNet:
    """``tiny`` behind a 4x4 patchify stem (stride 4): the first stage runs at 28x28."""
    return _iresnet(_TINY_PATCH4, embedding_size, **overrides)


@register(BACKBONE_FAMILY, "tiny_judge")
def tiny_judge(embedding_size: int = 512, **overrides) -> IResNet:
    """The toy world's judge: stride-2 stem, widths 32-64-128-192, blocks 1-1-2-1."""
    return _iresnet(_TINY_JUDGE, embedding_size, **overrides)


def build_backbone(name: str, embedding_size: int = 512, **overrides) -> IResNet:
    """Build a registered FR backbone.

    Args:
        name: one of ``list_models("backbone")`` (r18, r34, r50, r100, se_ir50, tiny).
        embedding_size: output dimension.
        **overrides: other :class:`IResNetConfig` fields (``dropout``, ``fp16``, ...).

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    return create(BACKBONE_FAMILY, name, embedding_size=embedding_size, **overrides)
