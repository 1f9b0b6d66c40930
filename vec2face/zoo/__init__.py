"""The toy zoo: the toy world's off-the-shelf models, shipped with the package.

The paper starts from pretrained weights (an ArcFace teacher, 6DRepNet, MagFace, an
ImageNet LPIPS trunk, the released generator); the embedded default starts from these
instead: models trained once by this project's own code on the toy world with fixed seeds
(``vec2face zoo build NAME``), stored as safetensors with a manifest of their provenance
and held-out figures, and verified (size, sha256) every time they load::

    from vec2face import zoo
    teacher = zoo.load("teacher")          # (N, 3, 112, 112) in [-1, 1] -> (N, 512)
    zoo.manifest("teacher")["figures"]     # accuracy on the five toy benchmarks
"""

from vec2face.zoo.models import export, load, load_discriminator
from vec2face.zoo.store import ZOO_NAMES, ZooError, manifest, weights_path, zoo_root

__all__ = [
    "ZOO_NAMES",
    "ZooError",
    "available",
    "export",
    "load",
    "load_discriminator",
    "manifest",
    "weights_path",
    "zoo_root",
]


def available(root=None) -> list[str]:
    """The zoo's entries that have a manifest, in build order."""
    folder = zoo_root(root)
    return [n for n in ZOO_NAMES if (folder / f"{n}.json").is_file()]
