"""The toy perceptual trunk: the toy world's stand-in for LPIPS's ImageNet network.

LPIPS compares two images through the feature maps of a network trained on natural
images; those maps respond to edges, textures and parts, so a blur that MSE barely
penalises moves them a lot. ImageNet weights do not exist in the toy world (and the
network is closed), and a random trunk measures nothing. This trunk learns the same kind
of maps from the toy renderer's ground truth instead: from one image it regresses the
face's identity parameters (eye, brow, nose, mouth, hair shapes) and the image's nuisance
parameters (pose, age, expression, light, glasses, occluders), and classifies its identity.
To do that its early stages must respond to the edges of eyes, brows, mouth, hair and
glasses, which is what a perceptual distance needs to see.

Four stride-2 stages (112 -> 56 -> 28 -> 14 -> 7); :meth:`ToyPerceptualTrunk.stages`
returns their maps, which :class:`vec2face.generator.losses.ToyTrunkDistance` compares.
The heads (``squeeze``, ``embed``, ``regress``, ``classify``) are used only while the trunk
learns and when its figures are measured; the distance never reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from vec2face.models._registry import create, register

__all__ = ["ToyPerceptualTrunk", "TrunkConfig", "build_trunk"]


@dataclass(frozen=True)
class TrunkConfig:
    """Sizes of the trunk and of its training heads.

    Attributes:
        widths: channels of the four stages.
        spatial: channels of the last map kept, position by position, for the heads.
        hidden: width of the heads' shared layer.
        targets: regressed ground-truth values (standardised) per image.
        classes: identities of the training pool (0: no classification head).
    """

    widths: tuple[int, ...] = (32, 64, 96, 128)
    spatial: int = 16
    hidden: int = 256
    targets: int = 0
    classes: int = 0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _stage(cin: int, cout: int) -> nn.Sequential:
    """Halve the resolution, then one more 3x3 convolution; BN + ReLU after each."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ToyPerceptualTrunk(nn.Module):
    """A four-stage CNN whose maps a perceptual distance compares.

    Args:
        cfg: the :class:`TrunkConfig`.
    """

    def __init__(self, cfg: TrunkConfig):
        super().__init__()
        if len(cfg.widths) < 1 or min(cfg.widths) < 1:
            raise ValueError(f"trunk widths must be positive, got {cfg.widths}")
        self.cfg = cfg
        chans = (3, *cfg.widths)
        self.features = nn.ModuleList(_stage(a, b) for a, b in zip(chans[:-1], chans[1:]))
        # The heads read the last map position by position (a 1x1 squeeze, then flattened),
        # not its average: pose and the place of every part are positions, and a pooled
        # vector would let the stages get away without encoding them.
        side = 112 // 2 ** len(cfg.widths)
        self.squeeze = nn.Sequential(
            nn.Conv2d(cfg.widths[-1], cfg.spatial, 1, bias=False),
            nn.BatchNorm2d(cfg.spatial),
            nn.ReLU(inplace=True),
        )
        self.embed = nn.Sequential(
            nn.Flatten(), nn.Linear(cfg.spatial * side * side, cfg.hidden), nn.ReLU(inplace=True)
        )
        self.regress = nn.Linear(cfg.hidden, cfg.targets) if cfg.targets else None
        self.classify = nn.Linear(cfg.hidden, cfg.classes) if cfg.classes else None
        if cfg.targets:
            # the regression head predicts standardised targets; these turn them back
            self.register_buffer("target_mean", torch.zeros(cfg.targets))
            self.register_buffer("target_std", torch.ones(cfg.targets))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps of every stage. x: (N, 3, 112, 112) in [-1, 1] -> [(N, C_i, H_i, W_i)]."""
        maps = []
        for stage in self.features:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Training heads. x: (N, 3, 112, 112) -> (targets (N, T) or None, logits (N, K) or None)."""
        h = self.embed(self.squeeze(self.stages(x)[-1]))
        return (
            None if self.regress is None else self.regress(h),
            None if self.classify is None else self.classify(h),
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The regressed ground truth in its own units. x: (N, 3, 112, 112) -> (N, targets)."""
        if self.regress is None:
            raise ValueError("this trunk has no regression head (targets=0)")
        z, _ = self(x)
        return z.float() * self.target_std + self.target_mean

    def without_classifier(self) -> ToyPerceptualTrunk:
        """This trunk without its identity classifier, whose classes are the training pool's
        people and mean nothing elsewhere (what the zoo ships: stages and regression head)."""
        self.classify = None
        self.cfg = TrunkConfig(widths=self.cfg.widths, spatial=self.cfg.spatial,
                               hidden=self.cfg.hidden, targets=self.cfg.targets)
        return self


@register("trunk", "toy_trunk")
def toy_trunk(**overrides) -> ToyPerceptualTrunk:
    """The toy perceptual trunk: stages of 32, 64, 96 and 128 channels (0.46M parameters;
    the heads add 0.2M plus 257 per target and class)."""
    if "widths" in overrides:
        overrides["widths"] = tuple(overrides["widths"])
    return ToyPerceptualTrunk(TrunkConfig(**overrides))


def build_trunk(name: str = "toy_trunk", **overrides) -> ToyPerceptualTrunk:
    """A registered perceptual trunk (family ``trunk``)."""
    return create("trunk", name, **overrides)
