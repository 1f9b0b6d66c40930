"""Models: FR backbones, the Vec2Face generator, discriminators, attribute estimators,
the toy perceptual trunk.

Every model is registered by name in :mod:`vec2face.models._registry` and built
through one factory per family.
"""

from vec2face.models._registry import create, list_models, register
from vec2face.models.discriminator import build_discriminator  # noqa: F401
from vec2face.models.generator import (  # noqa: F401
    build_generator,
    load_generator_checkpoint,
    save_generator_checkpoint,
)
from vec2face.models.iresnet import IResNet, IResNetConfig, build_backbone  # noqa: F401
from vec2face.models.trunk import build_trunk  # noqa: F401

__all__ = ["create", "list_models", "register"]
