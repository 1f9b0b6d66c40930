"""The procedural face world: identity and nuisance parameters and a fast renderer."""

from vec2face.toyfaces.identity import (
    IDENTITY_FIELDS,
    identity_lookalike_features,
    sample_identity_params,
)
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS, sample_nuisance
from vec2face.toyfaces.render import IMAGE_SIZE, render_face, render_faces

__all__ = [
    "IDENTITY_FIELDS",
    "IMAGE_SIZE",
    "NUISANCE_FIELDS",
    "identity_lookalike_features",
    "render_face",
    "render_faces",
    "sample_identity_params",
    "sample_nuisance",
]
