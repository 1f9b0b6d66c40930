"""The registry's champion policy, shared by the FR models and the generator.

A registered model's ``champion`` alias names the version the project stands behind: the
FR model that serves, the generator that the next data refresh warm-starts from. A new
version takes the alias only when its figure beats the champion's (a tie keeps the
champion), so a bad refresh never replaces a good model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assets_defs.resources import MlflowResource

CHAMPION = "champion"
REGISTERED_FR_MODEL = "fr-model"
REGISTERED_GENERATOR = "vec2face-generator"


def promotion(candidates: Mapping[str, float], champion: tuple[str, float] | None) -> str | None:
    """The version to make champion: the best candidate, only if its figure beats the
    champion's (a tie keeps the champion; equal candidates: the newer version).

    Args:
        candidates: version -> figure (higher is better) of the new versions.
        champion: (version, figure) of the current champion, or None without one.
    """
    if not candidates:
        return None
    best = max(candidates, key=lambda v: (candidates[v], int(v)))
    if champion is None or candidates[best] > champion[1]:
        return best
    return None


def promote(
    mlflow: MlflowResource, name: str, candidates: Mapping[str, float], figure: str
) -> dict[str, Any]:
    """Tag the ``candidates`` versions of registered model ``name`` with ``figure`` and move
    its ``champion`` alias to the best of them when it beats the champion (whose figure is
    its own tag, 0 without one).

    Returns:
        ``candidates``, ``previous_champion``, ``promoted`` (None: the alias stayed) and
        ``champion`` (after the decision; None when the model has none).
    """
    for version, value in candidates.items():
        mlflow.tag_version(name, version, {figure: value})
    current = mlflow.alias_version(name, CHAMPION)
    champion = None
    if current is not None:
        held = str(current.version)
        value = candidates[held] if held in candidates else current.tags.get(figure, 0.0)
        champion = (held, float(value))
    chosen = promotion(candidates, champion)
    if chosen is not None:
        mlflow.set_alias(name, CHAMPION, chosen)
    return {
        "candidates": dict(candidates),
        "previous_champion": champion[0] if champion else None,
        "promoted": chosen,
        "champion": chosen or (champion[0] if champion else None),
    }


def versions_of_output(mlflow: MlflowResource, name: str, dvc_md5: str | None) -> list[str]:
    """The versions of registered model ``name`` made from the step output whose DVC md5 is
    ``dvc_md5`` (their ``dvc_md5`` tag; none when the output is not recorded)."""
    if dvc_md5 is None:
        return []
    return [
        str(v.version) for v in mlflow.model_versions(name) if v.tags.get("dvc_md5") == dvc_md5
    ]
