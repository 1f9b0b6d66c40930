"""Named presets of the training steps (``tiny``, ``paper``, ``toy-long``): YAML files beside
this module.

A preset holds one section per training step (``fr_train``, ``generator``); ``profile:``
in ``params.yaml`` (or ``--profile``) selects one, and the step's own section overrides
its keys. A preset may name another in ``extends:``: it then holds the other's sections
with its own values merged over them key by key (``toy-long`` is tiny made long, so every
step that reads a profile accepts it). The files ship with the package, so an installed
``vec2face`` has them too.
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
PRESETS: tuple[str, ...] = ("paper", "tiny", "toy-long")


def preset_section(name: str, section: str) -> dict[str, Any]:
    """The ``section`` of preset ``name`` (empty when the preset leaves it at the defaults).

    Raises:
        ConfigError: an unknown preset, or a preset file that is not a mapping of sections.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown profile '{name}'; known: {', '.join(PRESETS)}")
    data = _resolved(name)
    if not isinstance(data.get(section, {}), dict):
        raise ConfigError(f"preset {name}: section '{section}' must be a mapping")
    return copy.deepcopy(data.get(section) or {})


def preset_sections(section: str) -> dict[str, dict[str, Any]]:
    """The ``section`` of every preset, by preset name (a step's profiles)."""
    return {name: preset_section(name, section) for name in PRESETS}


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key at every level."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            value = _merged(out[key], value)
        out[key] = value
    return out


@functools.cache
def _resolved(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Preset ``name`` with its ``extends:`` chain merged in (the base first)."""
    data = dict(_preset(name))
    base = data.pop("extends", None)
    if base is None:
        return data
    if base not in PRESETS or base in seen + (name,):
        raise ConfigError(f"preset {name}: extends '{base}', which is not a preset it may "
                          f"extend (known: {', '.join(PRESETS)}; no cycles)")
    return _merged(_resolved(base, seen + (name,)), data)


@functools.cache
def _preset(name: str) -> dict[str, Any]:
    """The parsed preset file, read once a process (callers get deep copies of sections)."""
    source = resources.files(__name__) / f"{name}.yaml"
    data = yaml.safe_load(source.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a preset must map section names to mappings")
    return data
