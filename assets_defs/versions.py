"""What a step reads, and the code version that changes when any of it changes.

A step reads the ``params.yaml`` keys its row in :data:`assets_defs.steps.STEPS` names and
the library code its entry modules import. The same two lists become the step's ``params``
and code ``deps`` in the generated ``dvc.yaml`` and, hashed, the Dagster code version of its
asset: a changed value or a changed line of code marks the step stale in both tools, and
the step's new output (another data version) marks everything downstream.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: the folder holding the ``vec2face`` package (the repository root in a checkout)
PROJECT = Path(__file__).resolve().parents[1]

LIBRARY = "vec2face"

#: the presets a ``profile`` key selects (read as data, not imported)
PRESETS = "vec2face/presets"

#: files inside a code folder that say nothing about the code (bytecode caches)
_IGNORED_PARTS = {"__pycache__"}


def _module_file(module: str) -> Path | None:
    path = PROJECT.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


@functools.cache
def library_imports(module: str) -> frozenset[str]:
    """The library modules ``module`` imports anywhere in its file (lazy imports included)."""
    source = _module_file(module)
    if source is None:
        return frozenset()
    package = module.split(".") if source.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(
        m for m in found if m.split(".")[0] == LIBRARY and _module_file(m) is not None
    )


@functools.cache
def import_closure(entries: tuple[str, ...]) -> frozenset[str]:
    """Every library module that importing ``entries`` runs: their imports, transitively,
    and the packages above each (a package's ``__init__`` runs on import)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        if _module_file(module) is None:
            raise ValueError(f"library module '{module}' not found under {PROJECT / LIBRARY}")
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(library_imports(module))
    return frozenset(seen)


def code_paths(library: Iterable[str], reads_presets: bool = False) -> tuple[str, ...]:
    """The code a step depends on, as repository paths: the subpackage folder of every
    module in the import closure of ``library`` (``vec2face/fr``), the top-level modules
    themselves (``vec2face/config.py``), and the presets when the step reads ``profile``."""
    paths: set[str] = set()
    for module in import_closure(tuple(sorted(library))):
        parts = module.split(".")
        if len(parts) == 1:
            paths.add(f"{LIBRARY}/__init__.py")
        elif (PROJECT / LIBRARY / parts[1]).is_dir():
            paths.add(f"{LIBRARY}/{parts[1]}")
        else:
            paths.add(f"{LIBRARY}/{parts[1]}.py")
    if reads_presets:
        paths.add(PRESETS)
    return tuple(sorted(paths))


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and not _IGNORED_PARTS & set(p.parts) and p.suffix != ".pyc"
    )


@functools.cache
def code_digest(paths: tuple[str, ...]) -> str:
    """sha256 over the names and bytes of every file under ``paths`` (repository paths)."""
    digest = hashlib.sha256()
    for rel in paths:
        for file in _files(PROJECT / rel):
            digest.update(file.relative_to(PROJECT).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


_MISSING = object()


def param_value(params: Mapping[str, Any], key: str) -> Any:
    """The value of a dotted ``params.yaml`` key (``world.pools.pca``); a missing key is a
    KeyError naming it (``dvc.yaml`` refuses a stage whose params key is absent, too)."""
    value: Any = params
    for part in key.split("."):
        value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
        if value is _MISSING:
            raise KeyError(f"params.yaml has no '{key}'")
    return value


def _value_or_none(params: Mapping[str, Any], key: str) -> Any:
    try:
        return param_value(params, key)
    except KeyError:
        return None


def version_of(params: Mapping[str, Any], keys: Iterable[str], paths: tuple[str, ...]) -> str:
    """A short code version of the values of ``keys`` in ``params`` (an absent key counts as
    null: the step's config falls back to its default) and of the code under ``paths``."""
    blob = json.dumps(
        {"params": {k: _value_or_none(params, k) for k in keys}, "code": code_digest(paths)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
