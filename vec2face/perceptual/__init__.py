"""The toy perceptual trunk: trained on the toy world's ground truth, compared through
LPIPS's distance (``loss.perceptual_trunk: toy`` of the generator)."""

from vec2face.perceptual.train import (
    TRUNK_FILE,
    PerceptualTrainConfig,
    load_trunk,
    prefers_sharp,
    target_fields,
    train_trunk,
    trunk_figures,
)

__all__ = [
    "TRUNK_FILE",
    "PerceptualTrainConfig",
    "load_trunk",
    "prefers_sharp",
    "target_fields",
    "train_trunk",
    "trunk_figures",
]
