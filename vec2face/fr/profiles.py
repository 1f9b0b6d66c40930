"""Profiles of the FR steps (configuration only) and the FR models other steps consume.

A profile is a named set of ``fr_train`` values, the ``fr_train`` section of a preset file
(:mod:`vec2face.presets`): ``paper`` is the Table 5 recipe (the config defaults), ``tiny``
trains the toy teacher and judge on CPU in minutes. Values
stack as: config defaults < profile < ``params.yaml`` section < explicit overrides.

The teacher (feature extractor) and the judge (an independent FR model that never enters a loss) are
described by :class:`FRModelConfig` sections (``fr_teacher``, ``fr_judge``): a backbone
name and a weights file, trained by ``vec2face fr train`` in the tiny profile or
pretrained (``arcface-r100-glint360k.pth``) in the paper profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from vec2face.config import StepConfig, load_step_config, read_params
from vec2face.errors import ConfigError
from vec2face.presets import preset_sections

__all__ = ["FR_PROFILES", "FRModelConfig", "fr_model_config", "fr_train_config", "load_fr_model"]

#: The ``fr_train`` section of each preset (``vec2face/presets/<name>.yaml``).
FR_PROFILES: dict[str, dict[str, Any]] = preset_sections("fr_train")


def fr_train_config(
    profile: str | None = None,
    params: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    section: str = "fr_train",
):
    """Build an :class:`~vec2face.fr.train.FRTrainConfig`: defaults < profile < params < overrides.

    Raises:
        ConfigError: an unknown profile, or an invalid value (naming section and key).
    """
    from vec2face.fr.train import FRTrainConfig

    if profile is not None and profile not in FR_PROFILES:
        raise ConfigError(f"unknown FR profile '{profile}'; known: {', '.join(FR_PROFILES)}")
    data = read_params(params) if isinstance(params, (str, Path)) else dict(params or {})
    merged = {section: {**FR_PROFILES.get(profile or "paper", {}), **(data.get(section) or {})}}
    return load_step_config(FRTrainConfig, section, merged, overrides)


class FRModelConfig(StepConfig):
    """A trained or pretrained FR model (the ``fr_teacher`` / ``fr_judge`` sections).

    ``checkpoint`` may be a state-dict file (``.pt``/``.pth``, insightface layout) or the
    output folder of ``vec2face fr train`` (its ``backbone.pt`` + ``backbone.json``).
    """

    backbone: str = Field("r100", description="registered backbone of the weights")
    checkpoint: str = Field(
        "arcface-r100-glint360k.pth",
        description="weights file (insightface .pth) or fr train output folder",
    )
    embedding_size: int = Field(512, ge=1, description="embedding dimension")


def fr_model_config(
    role: str,
    params: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> FRModelConfig:
    """The ``fr_<role>`` section (``role``: teacher or judge) as :class:`FRModelConfig`."""
    return load_step_config(FRModelConfig, f"fr_{role}", params, overrides)


def load_fr_model(config: FRModelConfig, config_key: str | None = None):
    """Build and load the model a :class:`FRModelConfig` describes (eval mode, CPU).

    Raises:
        ConfigError: a missing or unreadable weights file, naming the file and ``config_key``.
    """
    from vec2face.fr.extract import load_trained_backbone

    return load_trained_backbone(
        config.checkpoint, config.backbone, config.embedding_size, config_key=config_key
    )


def write_model_features(
    config: FRModelConfig,
    data: str | Path,
    out_dir: str | Path,
    *,
    config_key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Features of ``data`` by the FR model ``config`` describes, written into ``out_dir``:
    what ``vec2face fr extract`` and the pipeline's feature steps run.

    Args:
        config: the FR model (its weights file named with ``config_key`` in errors).
        options: :func:`vec2face.fr.extract.write_dataset_features`' keyword arguments
            (batch size, flip, device, autocast, mask, training LMDB); its defaults are the
            CLI's and the pipeline's.
    """
    from vec2face.fr.extract import write_dataset_features

    return write_dataset_features(load_fr_model(config, config_key), data, out_dir, **options)


def read_backbone_meta(path: str | Path) -> dict[str, Any] | None:
    """``backbone.json`` beside (or inside, for a folder) ``path``, if present."""
    path = Path(path)
    meta = (path if path.is_dir() else path.parent) / "backbone.json"
    return json.loads(meta.read_text()) if meta.is_file() else None
