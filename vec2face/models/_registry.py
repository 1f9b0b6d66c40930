"""A registry of named model constructors per family, with one factory per family.

Constructors are tiny functions registered by name (``@register("backbone")``); the
factory looks a name up and lists the known names on a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}


def register(family: str, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` as the constructor of model ``name`` in ``family``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        table = _REGISTRY.setdefault(family, {})
        if key in table:
            raise ValueError(f"{family} model '{key}' is registered twice")
        table[key] = fn
        return fn

    return deco


def list_models(family: str) -> list[str]:
    """Sorted names registered in ``family``."""
    return sorted(_REGISTRY.get(family, {}))


def create(family: str, name: str, **kwargs: Any) -> Any:
    """Build model ``name`` of ``family``; unknown names raise with the known ones listed."""
    table = _REGISTRY.get(family, {})
    if name not in table:
        raise KeyError(f"unknown {family} '{name}'; known: {', '.join(sorted(table)) or 'none'}")
    return table[name](**kwargs)
