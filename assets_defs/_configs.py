"""Step configs as the assets build them: a ``params.yaml`` section, validated by the
library's config class, with the paths of upstream outputs filled in.

``params.yaml`` names its preset once, in the top-level ``profile`` key (one of
:data:`vec2face.presets.PRESETS`, the YAML files of :mod:`vec2face.presets`); the training sections hold only what
differs from that preset, so a change to a preset flows into every step that uses it.
The paths inside sections (``fr_teacher.checkpoint``, ``generator.teacher_checkpoint``,
...) serve the CLI and ``dvc repro``; Dagster replaces them with the outputs of the
upstream assets under its own output root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vec2face.errors import ConfigError
from vec2face.fr.profiles import FRModelConfig, fr_model_config, fr_train_config, read_backbone_meta
from vec2face.fr.train import FRTrainConfig
from vec2face.presets import PRESETS

PROFILE_KEY = "profile"


def profile(params: dict[str, Any]) -> str:
    """The preset the params name (``profile``); a missing key is an error naming it."""
    name = params.get(PROFILE_KEY)
    if not isinstance(name, str):
        raise ConfigError(f"params.yaml has no '{PROFILE_KEY}' (the preset: one of "
                          f"{', '.join(PRESETS)})")
    return name


def fr_training(params: dict[str, Any], section: str) -> FRTrainConfig:
    """An FR training section (``fr_teacher_train``, ``fr_judge_train``, ``fr_train``) on the
    params' profile: defaults < profile < section."""
    return fr_train_config(profile(params), params, section=section)


def fr_model(params: dict[str, Any], role: str, trained: Path) -> FRModelConfig:
    """The ``fr_<role>`` section pointing at the FR model trained into ``trained``.

    The backbone comes from the ``backbone.json`` training wrote, so the section cannot
    name another one than the weights hold.
    """
    meta = read_backbone_meta(trained) or {}
    return fr_model_config(
        role, params, {"checkpoint": str(trained), "backbone": meta.get("backbone")}
    )


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """A section as a dict (an absent one is empty; a non-mapping one is an error)."""
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"params section '{name}' must be a mapping")
    return dict(value)


__all__ = ["PROFILE_KEY", "fr_model", "fr_training", "profile", "section"]
