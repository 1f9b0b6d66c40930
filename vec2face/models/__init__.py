"""Models: FR backbones, the Vec2Face generator, discriminators, attribute estimators.

Every model is registered by name in :mod:`vec2face.models._registry` and built
through one factory per family.
"""

from vec2face.models._registry import create, list_models, register

__all__ = ["create", "list_models", "register"]
