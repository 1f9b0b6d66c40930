"""The models an HSFace run uses besides the generator, read from the params once for
``vec2face generate`` and the Dagster assets alike: the attribute estimator that fills the
manifest's yaw/pitch/age/quality columns (and measures AttrOP's targets), and the teacher
that steers AttrOP when the ``hsface`` settings run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vec2face.attributes.estimators import CONFIG_SECTION as ESTIMATOR_SECTION
from vec2face.attributes.estimators import AttributeEstimatorConfig, load_attribute_estimator
from vec2face.config import load_step_config, read_params
from vec2face.errors import ConfigError
from vec2face.fr.profiles import fr_model_config, load_fr_model, read_backbone_meta
from vec2face.hsface.writer import HSFaceConfig

TEACHER_SECTION = "fr_teacher"


def generation_settings(
    config: HSFaceConfig,
    params: str | Path | dict[str, Any] | None,
    *,
    estimator: str | Path | None = None,
    teacher: str | Path | None = None,
    teacher_backbone: str | None = None,
) -> dict[str, BaseModel]:
    """Everything besides the input files that the images and manifest of ``config`` depend
    on: ``hsface`` (``config``), the ``attribute_estimator`` section on ``estimator`` (when
    either names a model; else the attribute columns stay NaN) and, only when ``config`` runs
    AttrOP, the ``fr_teacher`` section on ``teacher`` (its backbone read from the folder's
    ``backbone.json`` unless ``teacher_backbone`` names it).

    Raises:
        ConfigError: AttrOP without a teacher (neither ``teacher`` nor an ``fr_teacher``
            section).
    """
    data = read_params(params) if isinstance(params, (str, Path)) else dict(params or {})
    settings: dict[str, BaseModel] = {"hsface": config}
    if estimator is not None or ESTIMATOR_SECTION in data:
        attributes = load_step_config(
            AttributeEstimatorConfig,
            ESTIMATOR_SECTION,
            data,
            {"checkpoint": None if estimator is None else str(estimator),
             "attributes": list(config.target_attributes)},
        )
        if attributes.checkpoint or attributes.sixdrepnet or attributes.magface:
            settings[ESTIMATOR_SECTION] = attributes
    if config.uses_attrop:
        if teacher is None and TEACHER_SECTION not in data:
            raise ConfigError(
                "AttrOP (hsface.refine_steps / hsface.targeted_share) needs the teacher: give "
                f"its weights or a params file with an {TEACHER_SECTION} section"
            )
        if teacher is not None and teacher_backbone is None:
            teacher_backbone = (read_backbone_meta(teacher) or {}).get("backbone")
        settings[TEACHER_SECTION] = fr_model_config(
            "teacher",
            data,
            {"checkpoint": None if teacher is None else str(teacher),
             "backbone": teacher_backbone},
        )
    return settings


def load_generation_models(settings: dict[str, BaseModel]) -> dict[str, Any]:
    """``generate_hsface``'s ``estimator`` and ``fr_model`` for :func:`generation_settings`
    (None where the settings have none); loaded only when a run generates."""
    attributes = settings.get(ESTIMATOR_SECTION)
    teacher = settings.get(TEACHER_SECTION)
    return {
        "estimator": load_attribute_estimator(attributes) if attributes is not None else None,
        "fr_model": (
            load_fr_model(teacher, config_key=f"{TEACHER_SECTION}.checkpoint")
            if teacher is not None
            else None
        ),
    }


__all__ = ["generation_settings", "load_generation_models"]
