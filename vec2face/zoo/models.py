"""Zoo entries as ready models, and as the checkpoint layouts the pipeline's steps read.

Each manifest names its ``kind`` and ``architecture``; the model is rebuilt from the
project's registries and the verified weights are loaded with ``strict=True``:

* ``fr`` (teacher, judge): an IResNet backbone; NCHW float images in [-1, 1] at 112x112
  -> 512-d embeddings, as insightface's models take and give;
* ``attributes``: the toy pose/age/quality estimator;
* ``trunk`` (perceptual): the toy perceptual trunk (stages and regression head), what the
  generator's ``loss.perceptual_trunk: toy`` compares images through;
* ``generator``: the Vec2Face generator (part ``generator``) and its discriminator (part
  ``discriminator``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from vec2face.zoo.store import ZooError, read_parts, rebuild_command

__all__ = ["export", "load", "load_discriminator"]


def _arch_of(meta: dict[str, Any]) -> str:
    arch = meta["architecture"]
    return arch.get("name") or arch.get("arch", {}).get("name", "?")


def _build(meta: dict[str, Any], part: str) -> nn.Module:
    """An untrained model of the manifest's architecture (part of a generator entry)."""
    kind, arch = meta["kind"], meta["architecture"]
    if kind == "fr":
        from vec2face.models import build_backbone

        return build_backbone(
            arch["name"], embedding_size=arch["embedding_size"], **arch.get("overrides", {})
        )
    if kind == "attributes":
        from vec2face.attributes.estimators import build_attribute_net

        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in arch["config"].items()}
        return build_attribute_net(arch["name"], **cfg)
    if kind == "trunk":
        from vec2face.models.trunk import build_trunk

        return build_trunk(arch["name"], **arch["config"])
    if kind == "generator":
        from vec2face.models import build_discriminator
        from vec2face.models.generator import GeneratorArch, MaskingConfig, Vec2FaceGenerator

        if part == "discriminator":
            return build_discriminator(arch["discriminator"])
        model = Vec2FaceGenerator(GeneratorArch.from_dict(arch["arch"]))
        model.train_masking = MaskingConfig(**arch["masking"]["train"])
        model.gen_masking = MaskingConfig(**arch["masking"]["generation"])
        return model
    raise ZooError(f"zoo model '{meta['name']}': unknown kind '{kind}'")


def _load_part(
    name: str, part: str, root: str | os.PathLike | None, arch: str | None
) -> nn.Module:
    from vec2face.models.state_dict import load_state_dict_strict

    parts, meta = read_parts(name, root)
    if arch is not None and arch != _arch_of(meta):
        raise ZooError(
            f"zoo model '{name}' is a '{_arch_of(meta)}' {meta['kind']} model, but the "
            f"configuration names '{arch}'; set the architecture to '{_arch_of(meta)}' or "
            f"rebuild the zoo model with '{rebuild_command(name)}'"
        )
    if part not in parts:
        raise ZooError(f"zoo model '{name}' holds no '{part}' part (it has {sorted(parts)})")
    model = _build(meta, part)
    load_state_dict_strict(model, parts[part], source=f"zoo model '{name}' ({part})")
    return model.eval()


def load(name: str, root: str | os.PathLike | None = None, arch: str | None = None) -> nn.Module:
    """The zoo model ``name``, verified (size, sha256) and in eval mode on CPU.

    Args:
        name: ``teacher``, ``judge``, ``attributes`` or ``generator``.
        root: the zoo folder (default: ``$VEC2FACE_ZOO``, else the package's zoo).
        arch: the architecture the caller's configuration names; a zoo model of another
            one is refused.

    Raises:
        ZooError: a missing, truncated or altered file, or another architecture than
            ``arch``; each names the file or both architectures and the rebuild command.
    """
    return _load_part(name, "generator" if name == "generator" else "model", root, arch)


def load_discriminator(root: str | os.PathLike | None = None) -> nn.Module:
    """The discriminator stored beside the zoo generator (what a warm start resumes)."""
    return _load_part("generator", "discriminator", root, None)


def export(name: str, out_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Write zoo model ``name`` in the layout the pipeline's steps read, and its manifest.

    ``fr``: ``backbone.pt`` + ``backbone.json`` (what ``vec2face fr train`` writes);
    ``attributes``: ``model.pt`` (what ``vec2face attributes train`` writes); ``generator``:
    ``generator.pt`` (what ``vec2face generator train`` writes) and ``discriminator.pt``;
    every kind also gets ``zoo_manifest.json``. Files go through temporary names.

    Returns:
        The file other steps load (``backbone.pt``, ``model.pt`` or ``generator.pt``).
    """
    from vec2face.utils.io import atomic_path, save_torch_atomic
    from vec2face.zoo.store import manifest

    meta = manifest(name, root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind, arch = meta["kind"], meta["architecture"]
    if kind == "fr":
        model = load(name, root)
        target = out / "backbone.pt"
        save_torch_atomic({k: v.contiguous() for k, v in model.state_dict().items()}, target)
        info = {
            "backbone": arch["name"],
            "embedding_size": arch["embedding_size"],
            "overrides": arch.get("overrides", {}),
        }
        with atomic_path(out / "backbone.json") as tmp:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    elif kind == "attributes":
        from vec2face.attributes.estimators import toy_checkpoint_state

        target = out / "model.pt"
        state = toy_checkpoint_state(
            load(name, root), arch["name"], {"metrics": json.dumps(meta["figures"])}
        )
        save_torch_atomic(state, target)
    elif kind == "generator":
        from vec2face.models import save_generator_checkpoint

        target = out / "generator.pt"
        save_generator_checkpoint(load(name, root), target, extra={"zoo_version": meta["version"]})
        save_torch_atomic(
            {"model_disc": load_discriminator(root).state_dict(), "name": arch["discriminator"]},
            out / "discriminator.pt",
        )
    else:
        raise ZooError(f"zoo model '{name}' ({kind}) has no pipeline checkpoint layout")
    with atomic_path(out / "zoo_manifest.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return target
