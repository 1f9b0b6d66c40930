"""Losses for training the Vec2Face generator, as small modules over explicit tensors.

The composition follows the official training loss (``VQLPIPSWithDiscriminator`` of the
Vec2Face code)::

    rec   = mean(mse + 0.1 * 2 * LPIPS) + 0.1 * (1 - SSIM) + token + identity
    total = rec + gan_weight(epoch) * gan

(the official ``mean(rec_loss + 0.1 * p_loss)`` with ``p_loss = 2 * LPIPS`` broadcast per
image equals ``mse + 0.2 * LPIPS``). Two deliberate differences, both configurable:

* the official generator GAN term is ``-mean(D(fake))`` while its discriminator is trained
  with least squares; we default to the least-squares generator term ``mean((D(fake) - 1)^2)``
  (``gan_generator_loss="negative_mean"`` restores the official one);
* the official adaptive GAN weight is never applied (its flag is inverted, so the weight is
  always 1.0); here ``gan`` (0.8) is used as given, and ``adaptive_gan_weight=True`` scales it
  by the VQGAN gradient-norm ratio.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vec2face.errors import ConfigError
from vec2face.utils.io import load_torch_safely

log = logging.getLogger(__name__)

VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 file name
#: torchvision's ImageNet file of each LPIPS trunk (as torch hub caches it)
LPIPS_TRUNK_FILES = {
    "vgg": VGG16_WEIGHTS_FILE,
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


# --------------------------------------------------------------------------------------------
# Reconstruction terms
# --------------------------------------------------------------------------------------------
def pixel_mse(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels. images, targets: (N, 3, H, W) -> scalar."""
    return F.mse_loss(images.float(), targets.float())


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), Gaussian window, no padding.

    Matches ``pytorch_msssim.ssim`` (which the official code uses): separable Gaussian filter,
    "valid" borders, the SSIM map averaged over channels and positions.

    Args:
        x, y: (N, C, H, W) images with values spanning ``data_range``; H, W >= win_size.

    Returns:
        (N,) SSIM in [-1, 1] (1 for identical images), computed in float32.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"ssim: need two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"ssim: images {tuple(x.shape[-2:])} smaller than the {win_size}px window")
    x, y = x.float(), y.float()
    c = x.shape[1]
    g = _gaussian_window(win_size, sigma, x.device)
    wh = g.view(1, 1, 1, -1).expand(c, 1, 1, win_size)
    wv = g.view(1, 1, -1, 1).expand(c, 1, win_size, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wh, groups=c), wv, groups=c)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).flatten(1).mean(1)


class SSIMLoss(nn.Module):
    """1 - SSIM of images in [-1, 1] (mapped to [0, 1], data range 1), averaged over the batch."""

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """images, targets: (N, 3, H, W) in [-1, 1] -> scalar."""
        with torch.autocast(images.device.type, enabled=False):
            return 1.0 - ssim((images.float() + 1) / 2, (targets.float() + 1) / 2).mean()


class LPIPSLoss(nn.Module):
    """LPIPS between images in [-1, 1], on a VGG16 trunk (as the official code) or AlexNet.

    The learned linear heads ship inside the ``lpips`` wheel. The trunk's ImageNet weights
    are read from ``backbone_weights`` or, failing that, from torch hub's cache
    (``$TORCH_HOME/hub/checkpoints/<torchvision file>``, see :data:`LPIPS_TRUNK_FILES`);
    they are never downloaded. Without them the trunk is random, a warning is issued and
    ``pretrained_backbone`` is False, which the trainer records as a tracked parameter.

    Args:
        backbone_weights: a torchvision state dict of the trunk; it must exist when given.
        net: ``vgg`` (official; ~3.9 GFLOP per 112x112 image) or ``alex``/``squeeze``
            (~0.2 GFLOP: the CPU toy profile, where VGG would dominate the step time).
    """

    def __init__(self, backbone_weights: str | Path | None = None, net: str = "vgg"):
        super().__init__()
        import lpips

        if net not in LPIPS_TRUNK_FILES:
            raise ConfigError(f"LPIPS net '{net}' unknown; known: {', '.join(LPIPS_TRUNK_FILES)}")
        self.net = net
        path = self._resolve_weights(backbone_weights, net)
        with warnings.catch_warnings():
            # lpips still calls torchvision's deprecated ``pretrained=`` argument.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            self.metric = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        self.pretrained_backbone = path is not None
        if path is not None:
            self._load_trunk(path)
        else:
            name = {"vgg": "VGG", "alex": "AlexNet", "squeeze": "SqueezeNet"}[net]
            msg = (
                f"LPIPS: no {name} ImageNet weights ({LPIPS_TRUNK_FILES[net]} in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}); "
                f"using a random {name} trunk (pretrained_backbone=False)"
            )
            warnings.warn(msg, stacklevel=2)
            log.warning(msg)
        self.metric.eval()
        for p in self.metric.parameters():
            p.requires_grad_(False)

    @staticmethod
    def _resolve_weights(backbone_weights: str | Path | None, net: str = "vgg") -> Path | None:
        if backbone_weights is not None:
            path = Path(backbone_weights)
            if not path.is_file():
                raise ConfigError(f"LPIPS backbone weights not found: {path}")
            return path
        cached = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_TRUNK_FILES[net]
        return cached if cached.is_file() else None

    def _load_trunk(self, path: Path) -> None:
        try:
            state = load_torch_safely(path)
        except ValueError as exc:
            raise ConfigError(f"cannot read LPIPS backbone weights {path}: {exc}") from None
        trunk = self.metric.net
        # lpips keeps torchvision's layer indices inside its slices: slice2.5.weight is
        # features.5.weight (and slice3.3.squeeze.weight is features.3.squeeze.weight).
        mapped = {}
        for key in trunk.state_dict():
            _, index, param = key.split(".", 2)
            src = f"features.{index}.{param}"
            if src not in state:
                raise ConfigError(
                    f"LPIPS backbone weights {path}: missing '{src}' "
                    f"(not a torchvision {self.net} file?)"
                )
            mapped[key] = state[src]
        trunk.load_state_dict(mapped, strict=True)

    def train(self, mode: bool = True) -> LPIPSLoss:
        """Stays in eval mode: the metric is frozen (its heads' dropout must stay off)."""
        return super().train(False)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """images, targets: (N, 3, H, W) in [-1, 1] -> (N,) LPIPS distances."""
        return self.metric(images, targets, normalize=False).flatten()


def normalized_map_distance(
    maps: list[torch.Tensor], reference: list[torch.Tensor]
) -> torch.Tensor:
    """LPIPS's distance with uniform weights, per image.

    At every stage the two maps are unit-normalised along channels; the squared difference
    is summed over channels and averaged over positions; the stages are summed.

    Args:
        maps, reference: per stage, (N, C_i, H_i, W_i) maps of the two images.

    Returns:
        (N,) float32 distances (each stage contributes a value in [0, 4]).
    """
    total = maps[0].new_zeros(maps[0].shape[0], dtype=torch.float32)
    for f, r in zip(maps, reference, strict=True):
        f = F.normalize(f.float(), dim=1, eps=1e-6)
        r = F.normalize(r.float(), dim=1, eps=1e-6)
        total = total + ((f - r) ** 2).sum(dim=1).flatten(1).mean(1)
    return total


class ToyTrunkDistance(nn.Module):
    """LPIPS-style distance through the toy perceptual trunk (``loss.perceptual_trunk: toy``).

    The trunk (:class:`vec2face.models.trunk.ToyPerceptualTrunk`, the zoo's ``perceptual``)
    learned the toy renderer's identity and image parameters from a pool of its own, so its
    maps respond to the parts of a toy face where a random ImageNet trunk responds to
    nothing in particular. The per-stage distances are averaged with uniform weights (no
    learned linear heads: there are no human judgements of toy faces to fit them to).

    Args:
        trunk: the trunk; frozen here (no gradients to its weights, eval mode kept), it
            passes gradients to the generated image.
    """

    def __init__(self, trunk: nn.Module):
        super().__init__()
        if not callable(getattr(trunk, "stages", None)):
            raise ConfigError(
                f"toy perceptual distance needs a trunk with stages(x); got {type(trunk).__name__}"
            )
        self.trunk = trunk.eval()
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        #: a trained trunk, never a random one (GeneratorLoss records it like LPIPS's)
        self.pretrained_backbone = True

    def train(self, mode: bool = True) -> ToyTrunkDistance:
        """Stays in eval mode (the trunk's BatchNorm statistics must not change)."""
        return super().train(False)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """images, targets: (N, 3, 112, 112) in [-1, 1] -> (N,) distances."""
        with torch.no_grad():
            reference = self.trunk.stages(targets)
        maps = self.trunk.stages(images)
        return normalized_map_distance(maps, reference) / len(maps)


def token_loss(tokens: torch.Tensor, target_tokens: torch.Tensor) -> torch.Tensor:
    """MSE between decoder tokens and the unmasked feature tokens. (N, 49, D) each -> scalar."""
    return F.mse_loss(tokens.float(), target_tokens.float())


class IdentityLoss(nn.Module):
    """mean(1 - cos(fr_model(image), v)) through a frozen FR model.

    Args:
        fr_model: maps (N, 3, 112, 112) images in [-1, 1] to (N, 512) features; it is frozen
            (no gradients to its parameters, eval mode kept) but passes gradients to the image.
    """

    def __init__(self, fr_model: nn.Module):
        super().__init__()
        self.fr_model = fr_model.eval()
        for p in self.fr_model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> IdentityLoss:
        """Stays in eval mode (BatchNorm statistics of the teacher must not change)."""
        return super().train(False)

    def forward(self, images: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, 112, 112), vectors: (N, 512) -> scalar."""
        feats = self.fr_model(images)
        return (1.0 - F.cosine_similarity(feats.float(), vectors.float(), dim=1)).mean()


class _FrozenTrunkLoss(nn.Module):
    """Base of the losses that read the feature maps of a frozen FR trunk.

    Args:
        fr_model: an FR model with ``feature_maps(x)`` (an
            :class:`~vec2face.models.iresnet.IResNet`); frozen and kept in eval mode.
        name: the loss's config key, named in the error for a model without a trunk.
    """

    def __init__(self, fr_model: nn.Module, name: str):
        super().__init__()
        if not callable(getattr(fr_model, "feature_maps", None)):
            raise ConfigError(
                f"{name} loss needs an IResNet-like FR model; "
                f"{type(fr_model).__name__} lacks ['feature_maps']"
            )
        self.fr_model = fr_model.eval()
        for p in self.fr_model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> _FrozenTrunkLoss:
        """Stays in eval mode (BatchNorm statistics of the FR model must not change)."""
        return super().train(False)


class FRPerceptualLoss(_FrozenTrunkLoss):
    """Perceptual distance on the trunk of a frozen face-recognition model.

    LPIPS-style: at the stem and at every stage of an IResNet, the feature maps of the
    generated and the real image are unit-normalised along channels and their squared
    difference is averaged over channels and positions; the stages are summed. Not part of
    the paper's recipe: it stands in for LPIPS where no ImageNet trunk weights exist (the
    toy world, a closed network), because a random AlexNet is a weak judge of faces while
    the teacher's trunk was trained to tell faces apart by their eyes, brows, mouths and
    head shapes. The teacher is already frozen in the loss (identity term); the judge never
    is, so evaluation stays independent.

    Args:
        fr_model: an FR model with ``feature_maps(x)`` (an
            :class:`~vec2face.models.iresnet.IResNet`); frozen and kept in eval mode.
    """

    def __init__(self, fr_model: nn.Module):
        super().__init__(fr_model, "fr_perceptual")

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """images, targets: (N, 3, H, W) in [-1, 1] -> scalar."""
        with torch.no_grad():
            real = self.fr_model.feature_maps(targets)
        return normalized_map_distance(list(self.fr_model.feature_maps(images)), list(real)).mean()


def local_gram(maps: torch.Tensor, patch: int) -> torch.Tensor:
    """Gram matrices of non-overlapping ``patch`` x ``patch`` windows of feature maps.

    Args:
        maps: (N, C, H, W); H and W are cropped to multiples of ``patch``.
        patch: window side in map pixels.

    Returns:
        (N, P, C, C) float32, ``G[n, p] = F_p F_p^T / patch**2`` for the (C, patch**2) window
        features ``F_p`` (P windows, row-major).
    """
    n, c, h, w = maps.shape
    if patch < 1 or patch > min(h, w):
        raise ConfigError(f"local_gram: patch {patch} must be in [1, min(H, W) = {min(h, w)}]")
    x = maps.float()[:, :, : h - h % patch, : w - w % patch]
    x = F.unfold(x, kernel_size=patch, stride=patch)  # (N, C * patch^2, P)
    x = x.reshape(n, c, patch * patch, -1).permute(0, 3, 1, 2)  # (N, P, C, patch^2)
    return x @ x.transpose(-1, -2) / (patch * patch)


class TextureLoss(_FrozenTrunkLoss):
    """Local texture statistics on the trunk of a frozen FR model (EnhanceNet's texture loss).

    For the stem and the first stage of an IResNet, the Gram matrix of each window covering
    ``patch`` x ``patch`` image pixels is compared between the generated and the real image
    (mean squared difference relative to the real Gram's mean square, so that stages weigh
    alike). Unlike a pixel or a feature-map distance, a Gram matrix ignores where inside its window a detail sits:
    detail the feature vector cannot place exactly (hair strands, skin grain, the exact
    course of an eyelid) is not averaged away into blur but asked for with the right
    strength and orientation (Sajjadi et al., "EnhanceNet", ICCV 2017; Gatys et al. 2015).
    Not part of the paper's recipe, which gets its sharpness from an ImageNet LPIPS and a
    GAN trained for 100+ GPU epochs; on the toy world's CPU budget it stands in for them.

    Args:
        fr_model: an FR model with ``feature_maps(x)``; frozen and kept in eval mode.
        patch: window side in image pixels (each map's window scales with its stride).
        stages: indices into ``feature_maps``' list (0: stem).
    """

    def __init__(self, fr_model: nn.Module, patch: int = 16, stages: tuple[int, ...] = (0, 1)):
        super().__init__(fr_model, "texture")
        self.patch = patch
        self.stages = tuple(stages)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """images, targets: (N, 3, H, W) in [-1, 1] -> scalar."""
        size = images.shape[-1]
        with torch.no_grad():
            real = self.fr_model.feature_maps(targets)
        fake = self.fr_model.feature_maps(images)
        total = images.new_zeros((), dtype=torch.float32)
        for k in self.stages:
            f, r = fake[k], real[k]
            window = max(1, self.patch * f.shape[-1] // size)
            g_real = local_gram(r, window)
            # Relative squared error: stages (and trunks) of any activation scale weigh alike.
            total = total + ((local_gram(f, window) - g_real) ** 2).mean() / (
                (g_real**2).mean() + 1e-8
            )
        return total


# --------------------------------------------------------------------------------------------
# GAN terms
# --------------------------------------------------------------------------------------------
def ls_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator term: mean((D(fake) - 1)^2)."""
    return torch.mean((logits_fake.float() - 1.0) ** 2)


def negative_mean_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The official generator term: -mean(D(fake))."""
    return -torch.mean(logits_fake.float())


def ls_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))."""
    return 0.5 * (
        torch.mean((logits_real.float() - 1.0) ** 2) + torch.mean(logits_fake.float() ** 2)
    )


def discriminator_loss(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """LS loss of ``discriminator`` on real images and detached generated ones. (N, 3, H, W) each."""
    return ls_discriminator_loss(discriminator(real.detach()), discriminator(fake.detach()))


def gan_weight_at(epoch: float, disc_start: float, weight: float = 0.8) -> float:
    """GAN weight schedule: 0 before ``disc_start``, ``weight`` from then on."""
    return 0.0 if epoch < disc_start else float(weight)


def adaptive_gan_weight(
    rec_loss: torch.Tensor,
    gan_loss: torch.Tensor,
    last_layer: torch.Tensor,
    weight: float = 0.8,
    max_ratio: float = 1e4,
) -> torch.Tensor:
    """VQGAN's balance: ||d rec / d W|| / (||d gan / d W|| + 1e-4), clamped to [0, max_ratio],
    times ``weight``; W is the generator's last layer. Detached scalar."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    ratio = torch.linalg.vector_norm(rec_grad) / (torch.linalg.vector_norm(gan_grad) + 1e-4)
    return torch.clamp(ratio, 0.0, max_ratio).detach() * weight


# --------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------
class GeneratorLossConfig(BaseModel):
    """Weights of the generator loss terms; a weight of 0 switches a term off (not computed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mse: float = Field(1.0, ge=0, description="pixel MSE")
    lpips: float = Field(0.2, ge=0, description="LPIPS; the official 0.1 x (2 x LPIPS)")
    lpips_net: Literal["vgg", "alex", "squeeze"] = Field(
        "vgg", description="LPIPS trunk: vgg (official) or the ~20x cheaper alex/squeeze"
    )
    perceptual_trunk: Literal["lpips", "toy"] = Field(
        "lpips",
        description="the network of the lpips term: lpips (the lpips package on an ImageNet "
        "trunk, lpips_net) or toy (the toy perceptual trunk trained on the toy world's ground "
        "truth: the zoo's 'perceptual', or perceptual_trunk_checkpoint)",
    )
    ssim: float = Field(0.1, ge=0, description="1 - SSIM (Gaussian window 11, sigma 1.5)")
    token: float = Field(
        1.0, ge=0, description="MSE between decoder tokens and unmasked feature tokens"
    )
    identity: float = Field(
        1.0, ge=0, description="mean(1 - cos(FR(image), v)) through the frozen teacher"
    )
    fr_perceptual: float = Field(
        0.0,
        ge=0,
        description="LPIPS-style distance on the frozen teacher's trunk maps (not in the paper; "
        "the toy world's stand-in for an ImageNet LPIPS trunk)",
    )
    texture: float = Field(
        0.0,
        ge=0,
        description="local Gram-matrix texture loss on the frozen teacher's stem and first "
        "stage (TextureLoss; not in the paper)",
    )
    texture_patch: int = Field(16, ge=1, le=112, description="texture window side, image pixels")
    gan: float = Field(0.8, ge=0, description="GAN weight from disc_start on (0 before)")
    disc_start: int = Field(80, ge=0, description="epoch at which the GAN terms switch on")
    adaptive_gan_weight: bool = Field(
        False, description="scale the GAN weight by VQGAN's gradient-norm ratio"
    )
    gan_generator_loss: Literal["least_squares", "negative_mean"] = Field(
        "least_squares",
        description="generator GAN term; 'negative_mean' is the official -mean(D(fake))",
    )

    @property
    def teacher_terms(self) -> tuple[str, ...]:
        """The switched-on terms that run through the frozen teacher."""
        return tuple(t for t in ("identity", "fr_perceptual", "texture") if getattr(self, t) > 0)


class GeneratorLoss(nn.Module):
    """Weighted sum of the generator terms, with each term's value returned for logging.

    Args:
        config: term weights and GAN schedule.
        fr_model: frozen teacher for the identity term (required when its weight > 0).
        lpips_backbone_weights: trunk weights file for LPIPS (see ``LPIPSLoss``).
        perceptual_trunk: the toy perceptual trunk of ``perceptual_trunk: toy`` (required
            then, when the lpips weight > 0).
    """

    def __init__(
        self,
        config: GeneratorLossConfig | None = None,
        fr_model: nn.Module | None = None,
        lpips_backbone_weights: str | Path | None = None,
        perceptual_trunk: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config or GeneratorLossConfig()
        self.ssim_loss = SSIMLoss()
        self.lpips: nn.Module | None = None
        if self.config.lpips > 0 and self.config.perceptual_trunk == "toy":
            if perceptual_trunk is None:
                raise ConfigError(
                    "generator loss: perceptual_trunk 'toy' needs the trunk (perceptual_trunk)"
                )
            self.lpips = ToyTrunkDistance(perceptual_trunk)
        elif self.config.lpips > 0:
            self.lpips = LPIPSLoss(lpips_backbone_weights, self.config.lpips_net)
        if self.config.identity > 0 and fr_model is None:
            raise ConfigError("generator loss: identity weight > 0 needs an FR model (fr_model)")
        self.identity = (
            IdentityLoss(fr_model) if self.config.identity > 0 and fr_model is not None else None
        )
        if self.config.fr_perceptual > 0 and fr_model is None:
            raise ConfigError("generator loss: fr_perceptual weight > 0 needs an FR model (fr_model)")
        self.fr_perceptual = (
            FRPerceptualLoss(fr_model) if self.config.fr_perceptual > 0 and fr_model is not None else None
        )
        if self.config.texture > 0 and fr_model is None:
            raise ConfigError("generator loss: texture weight > 0 needs an FR model (fr_model)")
        self.texture = (
            TextureLoss(fr_model, self.config.texture_patch)
            if self.config.texture > 0 and fr_model is not None
            else None
        )
        self._gan_term = (
            ls_generator_loss
            if self.config.gan_generator_loss == "least_squares"
            else negative_mean_generator_loss
        )

    @property
    def pretrained_lpips_backbone(self) -> bool | None:
        """Whether the lpips term's trunk is trained (ImageNet weights, or the toy trunk);
        None when the term is switched off."""
        return None if self.lpips is None else self.lpips.pretrained_backbone

    def gan_weight(self, epoch: float) -> float:
        return gan_weight_at(epoch, self.config.disc_start, self.config.gan)

    def forward(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        tokens: torch.Tensor,
        target_tokens: torch.Tensor,
        vectors: torch.Tensor,
        *,
        epoch: float,
        discriminator: nn.Module | None = None,
        last_layer: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total generator loss and the unweighted value of every computed term.

        Args:
            images: (N, 3, H, W) generated images.
            targets: (N, 3, H, W) real images in [-1, 1].
            tokens, target_tokens: (N, 49, D) decoder tokens and their targets.
            vectors: (N, 512) input feature vectors.
            epoch: fractional or whole epoch, for the GAN schedule.
            discriminator: needed once the GAN weight is non-zero.
            last_layer: generator output weight, needed for ``adaptive_gan_weight``.

        Returns:
            (total, terms): ``terms`` holds floats for ``mse``, ``lpips``, ``ssim``, ``token``,
            ``identity``, ``fr_perceptual``, ``texture``, ``gan`` (each only when computed), ``gan_weight`` and ``total``.
        """
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}
        if cfg.mse > 0:
            terms["mse"] = pixel_mse(images, targets)
        if self.lpips is not None:
            terms["lpips"] = self.lpips(images, targets).mean()
        if cfg.ssim > 0:
            terms["ssim"] = self.ssim_loss(images, targets)
        if cfg.token > 0:
            terms["token"] = token_loss(tokens, target_tokens)
        if self.identity is not None:
            terms["identity"] = self.identity(images, vectors)
        if self.fr_perceptual is not None:
            terms["fr_perceptual"] = self.fr_perceptual(images, targets)
        if self.texture is not None:
            terms["texture"] = self.texture(images, targets)
        weights = {
            "mse": cfg.mse,
            "lpips": cfg.lpips,
            "ssim": cfg.ssim,
            "token": cfg.token,
            "identity": cfg.identity,
            "fr_perceptual": cfg.fr_perceptual,
            "texture": cfg.texture,
        }
        rec = sum(
            (weights[k] * v for k, v in terms.items()),
            start=images.new_zeros((), dtype=torch.float32),
        )
        total = rec

        gan_w: torch.Tensor | float = self.gan_weight(epoch)
        if gan_w > 0:
            if discriminator is None:
                raise ConfigError(
                    f"generator loss: GAN weight is {gan_w} at epoch {epoch} but no discriminator was given"
                )
            terms["gan"] = self._gan_term(discriminator(images))
            if cfg.adaptive_gan_weight and torch.is_grad_enabled() and rec.requires_grad:
                if last_layer is None:
                    raise ConfigError(
                        "generator loss: adaptive_gan_weight needs the generator's last_layer"
                    )
                gan_w = adaptive_gan_weight(rec, terms["gan"], last_layer, weight=cfg.gan)
            total = rec + gan_w * terms["gan"]

        logged = {k: float(v.detach()) for k, v in terms.items()}
        logged["gan_weight"] = float(gan_w)
        logged["total"] = float(total.detach())
        return total, logged
