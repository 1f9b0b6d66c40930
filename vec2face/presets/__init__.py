"""Named presets of the training steps (``tiny``, ``paper``): YAML files beside this module.

A preset holds one section per training step (``fr_train``, ``generator``); ``profile:``
in ``params.yaml`` (or ``--profile``) selects one, and the step's own section overrides
its keys. The files ship with the package, so an installed ``vec2face`` has them too.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

from vec2face.errors import ConfigError

__all__ = ["PRESETS", "preset_section", "preset_sections"]

#: The presets this package ships, by name.
PRESETS: tuple[str, ...] = ("paper", "tiny")


def preset_section(name: str, section: str) -> dict[str, Any]:
    """The ``section`` of preset ``name`` (empty when the preset leaves it at the defaults).

    Raises:
        ConfigError: an unknown preset, or a preset file that is not a mapping of sections.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown profile '{name}'; known: {', '.join(PRESETS)}")
    data = _preset(name)
    if not isinstance(data.get(section, {}), dict):
        raise ConfigError(f"preset {name}: section '{section}' must be a mapping")
    return copy.deepcopy(data.get(section) or {})


def preset_sections(section: str) -> dict[str, dict[str, Any]]:
    """The ``section`` of every preset, by preset name (a step's profiles)."""
    return {name: preset_section(name, section) for name in PRESETS}


@functools.cache
def _preset(name: str) -> dict[str, Any]:
    """The parsed preset file, read once a process (callers get deep copies of sections)."""
    source = resources.files(__name__) / f"{name}.yaml"
    data = yaml.safe_load(source.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a preset must map section names to mappings")
    return data
