"""Typed step configurations, shared by the CLI, Dagster and DVC's ``params.yaml``.

Each pipeline step has one pydantic model (``<Step>Config``) defined next to the code
that runs the step. ``params.yaml`` holds one section per step, named like the step;
every entry point loads that section through :func:`load_step_config`, so the field
list exists once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from vec2face.errors import ConfigError


class StepConfig(BaseModel):
    """Base of every step config: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


C = TypeVar("C", bound=StepConfig)


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a ``params.yaml`` file into a dict (empty file -> empty dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of step sections")
    return data


def load_step_config(
    cls: type[C],
    section: str,
    params: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Build a step config from a ``params.yaml`` section plus explicit overrides.

    Args:
        cls: the step's config class.
        section: the section name in ``params.yaml`` (the step's name).
        params: a params file path, an already-read dict, or None (defaults only).
        overrides: values that win over the file (CLI flags, Dagster run config);
            ``None`` values are ignored so unset CLI options keep the file's value.

    Raises:
        ConfigError: naming the section and key of an invalid or unknown value.
    """
    values: dict[str, Any] = {}
    if params is not None:
        data = read_params(params) if not isinstance(params, dict) else params
        sect = data.get(section) or {}
        if not isinstance(sect, dict):
            raise ConfigError(f"params section '{section}' must be a mapping")
        values.update(sect)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        raise ConfigError(f"{section}.{key}: {err['msg']} (got {err.get('input')!r})") from None
