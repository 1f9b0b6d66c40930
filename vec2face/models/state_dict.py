"""Loading checkpoints into models, with errors that say which file and which keys are wrong.

Any model can use :func:`read_state_dict` + :func:`load_state_dict_strict`;
:func:`load_backbone` is the FR-backbone shortcut. Checkpoints are always read with
``torch.load(..., weights_only=True)``: a weights file never runs code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from vec2face.errors import ConfigError
from vec2face.models.iresnet import build_backbone
from vec2face.utils.io import load_torch_safely, source_label

__all__ = [
    "load_backbone",
    "load_state_dict_strict",
    "read_checkpoint",
    "read_state_dict",
    "strip_prefix",
]

_SHOW = 5  # keys named per category in an error message

# Containers used by common trainers: insightface saves a bare state dict, SOTA-FR and
# timm-style checkpoints wrap it, Vec2Face stores the generator under its own key.
DEFAULT_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "backbone")


def strip_prefix(
    state_dict: Mapping[str, torch.Tensor], prefix: str = "module."
) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` (a DDP/DataParallel ``module.``) when every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def read_checkpoint(
    path: str | os.PathLike, config_key: str | None = None, what: str = "checkpoint"
) -> object:
    """What a ``.pt``/``.pth`` file holds, read weights-only (tensors and plain containers).

    Raises:
        ConfigError: the file is missing or unreadable, naming ``what``, the file and
            ``config_key``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {source_label(path, config_key)}")
    try:
        return load_torch_safely(path)
    except ValueError as exc:
        raise ConfigError(f"cannot read {what} {source_label(path, config_key)}: {exc}") from None


def read_state_dict(
    path: str | os.PathLike,
    container_keys: Sequence[str] = DEFAULT_CONTAINER_KEYS,
    config_key: str | None = None,
) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt`` checkpoint into a flat ``{name: tensor}`` dict.

    Accepts a raw state dict or a dict holding one under the first of ``container_keys``
    present; a ``module.`` prefix from DDP saves is stripped.

    Args:
        path: checkpoint file.
        container_keys: keys that may hold the state dict inside a wrapper dict.
        config_key: the configuration key that named ``path``, quoted in errors.

    Raises:
        ConfigError: the file is missing, unreadable, not a weights-only checkpoint, or
            holds no state dict.
    """
    path = Path(path)
    where = source_label(path, config_key)
    obj = read_checkpoint(path, config_key)
    if isinstance(obj, Mapping):
        for key in container_keys:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and not _non_tensor_keys(inner):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ConfigError(f"{where}: no state dict found (expected a dict of tensors)")
    other = _non_tensor_keys(obj)
    if other:
        raise ConfigError(
            f"{where}: not a flat state dict; non-tensor entries {other[:_SHOW]} "
            f"(wrapper keys tried: {', '.join(container_keys)})"
        )
    return strip_prefix(obj)


def _non_tensor_keys(state: Mapping) -> list[str]:
    # ``*._extra_state`` entries (nn.Module.get_extra_state) may hold any value.
    return sorted(
        str(k)
        for k, v in state.items()
        if not torch.is_tensor(v) and not str(k).endswith("_extra_state")
    )


def _listing(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    more = f", ... (+{len(items) - _SHOW})" if len(items) > _SHOW else ""
    return f"{len(items)} {label} [{shown}{more}]"


def load_state_dict_strict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
) -> nn.Module:
    """Load ``state_dict`` into ``model`` requiring the same keys and shapes.

    BatchNorm ``num_batches_tracked`` counters missing from the file are tolerated (older
    saves lack them and they do not change inference); everything else must match.

    Args:
        model: the module to fill in place.
        state_dict: tensors by name.
        source: where the tensors came from (a file path), named in the error.

    Returns:
        ``model``.

    Raises:
        ConfigError: one line naming ``source`` and the counts plus the first few missing,
            unexpected and mis-shaped keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict
        and torch.is_tensor(own[k])
        and torch.is_tensor(state_dict[k])
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = [
            _listing(label, items)
            for label, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", misshaped),
            )
            if items
        ]
        raise ConfigError(
            f"{source}: state dict does not fit {type(model).__name__} "
            f"({len(own)} tensors): " + "; ".join(parts)
        )
    full = dict(state_dict)
    for k, v in own.items():
        full.setdefault(k, v)
    model.load_state_dict(full, strict=True)
    return model


def load_backbone(
    name: str,
    path: str | os.PathLike,
    embedding_size: int = 512,
    config_key: str | None = None,
    **overrides,
) -> nn.Module:
    """Build backbone ``name`` and fill it from an insightface-style ``.pth`` file.

    Args:
        name: a registered backbone (``r50``, ``r100``, ``se_ir50``, ...).
        path: checkpoint (raw state dict, or wrapped under ``state_dict``/``model``).
        embedding_size: output dimension of the model to build.
        config_key: the configuration key that named ``path``, quoted in errors.
        **overrides: other architecture fields (see ``IResNetConfig``).

    Returns:
        The model in eval mode, on CPU.

    Raises:
        ConfigError: missing/unreadable file, or weights that do not fit the architecture.
    """
    state = read_state_dict(path, config_key=config_key)
    model = build_backbone(name, embedding_size=embedding_size, **overrides)
    load_state_dict_strict(
        model, state, source=f"{source_label(path, config_key)} as backbone '{name}'"
    )
    return model.eval()
