"""Reading and writing zoo entries: a safetensors weights file and its JSON manifest.

An entry ``NAME`` is two files in the zoo folder: ``NAME.safetensors`` (every tensor of
the model, or of its parts under ``<part>.`` prefixes) and ``NAME.json`` (the manifest:
architecture, sha256, size, provenance and held-out figures). Reading checks the file's
size and sha256 against the manifest before a byte of it is parsed, so a truncated or
altered file is refused with its path and the command that rebuilds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.utils.hashing import file_sha256
from vec2face.utils.io import atomic_path

__all__ = [
    "PACKAGE_ZOO",
    "ZOO_NAMES",
    "ZooError",
    "manifest",
    "read_parts",
    "rebuild_command",
    "weights_path",
    "write_entry",
    "write_manifest",
    "zoo_root",
]

#: the zoo shipped inside the package (package data)
PACKAGE_ZOO = Path(__file__).resolve().parent / "weights"

#: the toy world's off-the-shelf models, in build order (the generator needs the teacher
#: and the judge)
ZOO_NAMES: tuple[str, ...] = ("teacher", "judge", "attributes", "perceptual", "generator")

#: environment variable naming another zoo folder (a user's own rebuilt zoo)
ZOO_ENV = "VEC2FACE_ZOO"


class ZooError(Vec2FaceError):
    """A zoo entry is missing, damaged or does not fit what was asked for."""


def zoo_root(root: str | os.PathLike | None = None) -> Path:
    """The zoo folder: ``root``, else ``$VEC2FACE_ZOO``, else the package's own."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ZOO_ENV)
    return Path(env) if env else PACKAGE_ZOO


def rebuild_command(name: str) -> str:
    """The command that (re)builds an entry, quoted in every error about it."""
    return f"vec2face zoo build {name} --params params.yaml"


def _check_name(name: str) -> str:
    if name not in ZOO_NAMES:
        raise ConfigError(f"unknown zoo model '{name}'; known: {', '.join(ZOO_NAMES)}")
    return name


def weights_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """``<zoo>/<name>.safetensors``."""
    return zoo_root(root) / f"{_check_name(name)}.safetensors"


def manifest_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """``<zoo>/<name>.json``."""
    return zoo_root(root) / f"{_check_name(name)}.json"


def manifest(name: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of zoo entry ``name`` as a dict.

    Raises:
        ConfigError: an unknown name (listing the known ones).
        ZooError: no manifest, or one that is not a JSON object; names the file and the
            command that rebuilds it.
    """
    path = manifest_path(name, root)
    if not path.is_file():
        raise ZooError(f"zoo model '{name}' not found: {path} is missing; build it with "
                       f"'{rebuild_command(name)}'")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZooError(f"{path}: unreadable zoo manifest ({exc.__class__.__name__}); rebuild "
                       f"it with '{rebuild_command(name)}'") from None
    if not isinstance(data, dict) or data.get("name") != name:
        raise ZooError(f"{path}: not the manifest of zoo model '{name}'; rebuild it with "
                       f"'{rebuild_command(name)}'")
    return data


def read_parts(
    name: str, root: str | os.PathLike | None = None
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """The verified float32 tensors of an entry, grouped by part, and its manifest.

    Returns:
        ``({part: state_dict}, manifest)``; a single-part entry's part is ``"model"``.

    Raises:
        ZooError: the weights file is missing, of another size than recorded (truncated),
            or its sha256 differs from the manifest's; each names the file and the
            rebuild command.
    """
    from safetensors.torch import load_file

    meta = manifest(name, root)
    path = weights_path(name, root)
    fix = f"rebuild it with '{rebuild_command(name)}'"
    if not path.is_file():
        raise ZooError(f"zoo weights not found: {path}; {fix}")
    size = path.stat().st_size
    if size != meta["bytes"]:
        raise ZooError(f"{path}: {size} bytes where the manifest records {meta['bytes']} "
                       f"(truncated or replaced); {fix}")
    digest = file_sha256(path)
    if digest != meta["sha256"]:
        raise ZooError(f"{path}: sha256 {digest[:16]}... differs from the manifest's "
                       f"{meta['sha256'][:16]}...; {fix}")
    flat = load_file(str(path))
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        part, _, sub = key.partition(".")
        # stored in half precision where the figures allowed it; models run in float32
        parts.setdefault(part, {})[sub] = tensor.float() if tensor.is_floating_point() else tensor
    return parts, meta


def write_entry(
    name: str,
    parts: Mapping[str, Mapping[str, torch.Tensor]],
    fields: Mapping[str, Any],
    root: str | os.PathLike,
    half: bool,
) -> dict[str, Any]:
    """Write ``<root>/<name>.safetensors`` and its manifest, each through a temporary name.

    Args:
        name: the entry.
        parts: ``{part: state_dict}`` (one part ``"model"`` for single models).
        fields: the manifest's content besides what is computed here (sha256, bytes,
            dtype, file, tensors).
        root: the zoo folder.
        half: store floating-point tensors as float16 (else float32).

    Returns:
        The manifest written.
    """
    from safetensors.torch import save_file

    _check_name(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    flat: dict[str, torch.Tensor] = {}
    for part, state in parts.items():
        for key, tensor in state.items():
            t = tensor.detach().cpu()
            if t.is_floating_point():
                t = t.half() if half else t.float()
            flat[f"{part}.{key}"] = t.contiguous()
    path = root / f"{name}.safetensors"
    with atomic_path(path) as tmp:
        # no free-form metadata in the file: the manifest holds it, so equal weights
        # give equal bytes
        save_file(flat, str(tmp))
        tmp.chmod(0o644)  # package data: readable by every user of an installed package
    record = {
        **fields,
        "name": name,
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "dtype": "float16" if half else "float32",
        "tensors": len(flat),
    }
    write_manifest(name, record, root)
    return record


def write_manifest(name: str, record: Mapping[str, Any], root: str | os.PathLike) -> Path:
    """Write ``<root>/<name>.json`` through a temporary name (the weights file untouched)."""
    path = Path(root) / f"{_check_name(name)}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dict(record), indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o644)
    return path
