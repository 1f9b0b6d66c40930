"""Real attribute estimators: 6DRepNet head pose and MagFace quality.

Both are used only when configured (``AttributeEstimatorConfig``) and load published
weights from a path; nothing is downloaded. The network layouts are written here, so
neither the ``sixdrepnet`` package nor MagFace's code is needed.

- **6DRepNet** (Hempel et al., ICIP 2022): a RepVGG-B1g2 backbone in its *deploy*
  layout (each block one 3x3 convolution with bias, ``rbr_reparam``, then ReLU;
  groups=2 on the even-numbered blocks), global average pooling and ``linear_reg``
  (2048 -> 6). The six numbers are two 3-vectors turned into a rotation matrix by
  Gram-Schmidt; Euler angles come from the matrix as in the package's
  ``compute_euler_angles_from_rotation_matrices`` (x = pitch, y = yaw, z = roll). It
  takes 224x224 RGB crops normalised with ImageNet's mean/std, so 112x112 faces are
  upsampled inside. Its angles follow 300W-LP's sign convention, which need not match
  the toy world's; AttrOP's pose term uses ``|yaw|`` and is unaffected.
- **MagFace** (Meng et al., CVPR 2021): an insightface IResNet (r100 for the released
  model) whose embedding norm is the quality (higher = better; about 20-35 on real
  faces). MagFace feeds BGR images in [0, 1] and uses BatchNorm eps 2e-5; both are
  reproduced here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from vec2face.attributes.base import AttributeEstimator
from vec2face.errors import ConfigError
from vec2face.models.iresnet import IResNet, build_backbone
from vec2face.models.state_dict import load_state_dict_strict, read_state_dict
from vec2face.utils.io import source_label

__all__ = [
    "MagFaceQuality",
    "SixDRepNetPose",
    "euler_from_rotation",
    "load_magface",
    "load_sixdrepnet",
    "magface_backbone_state",
    "rotation_from_6d",
    "rotation_from_euler",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- rotations


def rotation_from_6d(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rotation matrices from 6D vectors (Zhou et al. 2019; 6DRepNet's head).

    Args:
        x: (N, 6): two raw 3-vectors ``a = x[:, :3]``, ``b = x[:, 3:]``.
        eps: floor of the norms, so a zero vector gives no NaN.

    Returns:
        (N, 3, 3) with columns ``(c1, c2, c3)``: ``c1 = a / |a|``,
        ``c3 = (c1 x b) / |c1 x b|``, ``c2 = c3 x c1``.
    """
    a, b = x[:, :3], x[:, 3:6]
    c1 = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    c3 = torch.linalg.cross(c1, b, dim=1)
    c3 = c3 / c3.norm(dim=1, keepdim=True).clamp_min(eps)
    c2 = torch.linalg.cross(c3, c1, dim=1)
    return torch.stack([c1, c2, c3], dim=2)


def euler_from_rotation(r: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Euler angles (radians) of ``R = Rz(z) @ Ry(y) @ Rx(x)``, 6DRepNet's decomposition.

    Args:
        r: (N, 3, 3) rotation matrices.
        eps: below this ``cos(y)`` the decomposition is singular (gimbal lock) and
            ``z`` is set to 0, as the reference implementation does.

    Returns:
        (N, 3): ``x`` (pitch), ``y`` (yaw), ``z`` (roll).
    """
    sy = torch.sqrt(r[:, 0, 0] ** 2 + r[:, 1, 0] ** 2)
    singular = sy < eps
    x = torch.where(
        singular, torch.atan2(-r[:, 1, 2], r[:, 1, 1]), torch.atan2(r[:, 2, 1], r[:, 2, 2])
    )
    y = torch.atan2(-r[:, 2, 0], sy)
    z = torch.where(singular, torch.zeros_like(sy), torch.atan2(r[:, 1, 0], r[:, 0, 0]))
    return torch.stack([x, y, z], dim=1)


def rotation_from_euler(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``Rz(z) @ Ry(y) @ Rx(x)`` for (N,) angles in radians -> (N, 3, 3) (300W-LP's ``get_R``)."""
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1).view(
        -1, 3, 3
    )
    ry = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(
        -1, 3, 3
    )
    rz = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1).view(
        -1, 3, 3
    )
    return rz @ ry @ rx


# --------------------------------------------------------------------------- 6DRepNet


class _RepVGGBlock(nn.Module):
    """A RepVGG block after re-parameterisation: one 3x3 conv with bias, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.rbr_reparam = nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=True)
        self.nonlinearity = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, cin, H, W) -> (N, cout, H / stride, W / stride)."""
        return self.nonlinearity(self.rbr_reparam(x))


# RepVGG-B1g2: blocks per stage, stage widths (64 x multipliers 2, 2, 2, 4), and groups=2
# on blocks 2, 4, ..., 26 counted from the first block of stage 1.
_B1G2_BLOCKS = (4, 6, 16, 1)
_B1G2_WIDTHS = (128, 256, 512, 2048)
_B1G2_GROUPED = frozenset(range(2, 27, 2))


class SixDRepNetPose(AttributeEstimator):
    """6DRepNet (RepVGG-B1g2, deploy layout): yaw, pitch, roll in degrees.

    State-dict keys match the released ``6DRepNet_300W_LP_AFLW2000.pth``:
    ``layer0.rbr_reparam.*``, ``layer{1..4}.<i>.rbr_reparam.*``, ``linear_reg.*``.
    """

    provides = ("yaw", "pitch", "roll")

    def __init__(self, input_size: int = 224):
        super().__init__()
        self.input_size = input_size
        self.layer0 = _RepVGGBlock(3, 64, 2, 1)
        cin, idx = 64, 1
        for stage, (blocks, width) in enumerate(
            zip(_B1G2_BLOCKS, _B1G2_WIDTHS, strict=True), start=1
        ):
            layers = []
            for b in range(blocks):
                layers.append(
                    _RepVGGBlock(cin, width, 2 if b == 0 else 1, 2 if idx in _B1G2_GROUPED else 1)
                )
                cin, idx = width, idx + 1
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear_reg = nn.Linear(cin, 6)
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def rotation(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) RGB in [-1, 1] -> rotation matrices (N, 3, 3)."""
        x = (images + 1.0) * 0.5
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        x = (x - self.mean) / self.std
        for stage in (self.layer0, self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return rotation_from_6d(self.linear_reg(torch.flatten(self.gap(x), 1)).float())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, 112, 112) RGB in [-1, 1] -> {yaw, pitch, roll}: (N,) degrees."""
        euler = torch.rad2deg(euler_from_rotation(self.rotation(images)))
        return {"pitch": euler[:, 0], "yaw": euler[:, 1], "roll": euler[:, 2]}


def load_sixdrepnet(path: str | os.PathLike, config_key: str | None = None) -> SixDRepNetPose:
    """6DRepNet from its released weights (deploy layout).

    Args:
        path: the ``.pth`` file (a raw state dict, or one under ``state_dict``/``model``;
            a DataParallel ``module.`` prefix is stripped).
        config_key: the configuration key that named ``path``, quoted in errors.

    Returns:
        The estimator in eval mode on CPU.

    Raises:
        ConfigError: missing/unreadable file; a training-layout checkpoint (un-fused
            ``rbr_dense``/``rbr_1x1`` branches); keys or shapes that do not fit.
    """
    where = source_label(path, config_key)
    state = read_state_dict(path, config_key=config_key)
    if any(".rbr_dense." in k or ".rbr_1x1." in k for k in state):
        raise ConfigError(
            f"{where}: a training-layout RepVGG checkpoint (rbr_dense/rbr_1x1 branches); "
            "convert it to the "
            "deploy layout first (RepVGG's repvgg_model_convert, as 6DRepNet's convert.py does)"
        )
    model = SixDRepNetPose()
    load_state_dict_strict(model, state, source=f"{where} as 6DRepNet (RepVGG-B1g2 deploy)")
    return model.eval()


# --------------------------------------------------------------------------- MagFace


class MagFaceQuality(AttributeEstimator):
    """MagFace quality: the norm of the IResNet embedding (higher = better).

    Args:
        backbone: an insightface-layout IResNet holding MagFace's weights.
    """

    provides = ("quality",)

    def __init__(self, backbone: IResNet):
        super().__init__()
        self.backbone = backbone
        for m in backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eps = 2e-5  # MagFace's BatchNorm eps (insightface uses 1e-5)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, 112, 112) RGB in [-1, 1] -> {quality: (N,) embedding norm}."""
        # MagFace reads images with OpenCV (BGR) and scales them to [0, 1] without centring.
        x = ((images + 1.0) * 0.5).flip(1)
        return {"quality": self.backbone(x).float().norm(dim=1)}


def magface_backbone_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone tensors of a MagFace checkpoint, under insightface names.

    MagFace's trainer saves ``NetworkBuilder`` (``features`` = the IResNet, ``fc`` = the
    MagLinear class weights) wrapped in DataParallel, giving ``module.features.<name>``
    or ``features.module.<name>``; the class weights are dropped. A plain insightface
    state dict passes through unchanged.
    """
    for prefix in ("module.features.", "features.module.", "features."):
        if f"{prefix}conv1.weight" in state:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def load_magface(
    path: str | os.PathLike, arch: str = "r100", config_key: str | None = None
) -> MagFaceQuality:
    """MagFace quality estimator from a MagFace checkpoint or a bare IResNet state dict.

    Args:
        path: MagFace's ``.pth`` (``{"state_dict": ...}``) or an insightface-layout state dict.
        arch: the IResNet (``r18``, ``r34``, ``r50``, ``r100``); the released model is r100.
        config_key: the configuration key that named ``path``, quoted in errors.

    Raises:
        ConfigError: missing/unreadable file or backbone keys/shapes that do not fit.
    """
    where = source_label(path, config_key)
    state = magface_backbone_state(read_state_dict(path, config_key=config_key))
    backbone = build_backbone(arch)
    load_state_dict_strict(backbone, state, source=f"{where} as MagFace backbone '{arch}'")
    return MagFaceQuality(backbone).eval()
