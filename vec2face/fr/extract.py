"""Feature extraction with an FR model: features, identity centers, training-layout LMDBs.

The Vec2Face generator learns from (image, teacher feature, label) records; this module
produces the features (L2-normalised, optionally flip-summed), the per-identity centers
(mean of the normalised features, re-normalised), and the training-layout LMDB.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vec2face.data import decode_image, open_dataset, write_lmdb
from vec2face.data.base import FaceDataset, MaskLike
from vec2face.errors import ConfigError
from vec2face.evaluation.embed import to_model_input
from vec2face.models import build_backbone
from vec2face.models.state_dict import load_state_dict_strict, read_state_dict
from vec2face.utils.io import atomic_path, source_label

__all__ = [
    "extract_features",
    "identity_centers",
    "load_trained_backbone",
    "save_features",
    "write_dataset_features",
    "write_training_lmdb",
]


def load_trained_backbone(
    path: str | Path,
    backbone: str | None = None,
    embedding_size: int | None = None,
    config_key: str | None = None,
) -> nn.Module:
    """Load FR weights: an insightface-style state dict, or a ``vec2face fr train`` output.

    When ``backbone.json`` sits beside the weights (or inside ``path`` when it is the training
    output folder) its name, embedding size and architecture overrides are used; an explicit
    ``backbone`` that disagrees with it is an error.

    Args:
        path: weights file (``.pt``/``.pth``) or ``fr train`` output folder.
        backbone: registered backbone name (needed without ``backbone.json``).
        embedding_size: output dimension (default: from ``backbone.json``, else 512).
        config_key: configuration key that named ``path``, quoted in errors.

    Returns:
        The model in eval mode on CPU.

    Raises:
        ConfigError: missing/unreadable file (naming it and ``config_key``), unknown or
            conflicting backbone, or weights that do not fit.
    """
    path = Path(path)
    where = source_label(path, config_key)
    if path.is_dir():
        path = path / "backbone.pt"
    meta_file = path.parent / "backbone.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() and path.is_file() else {}
    name = meta.get("backbone", backbone)
    if backbone is not None and meta and backbone != meta["backbone"]:
        raise ConfigError(
            f"{where}: weights are a '{meta['backbone']}' backbone ({meta_file}), not '{backbone}'"
        )
    if name is None:
        raise ConfigError(f"{where}: no backbone.json beside the weights; name the backbone")
    size = int(meta.get("embedding_size", embedding_size or 512))
    state = read_state_dict(path, config_key=config_key)
    try:
        model = build_backbone(name, embedding_size=size, **meta.get("overrides", {}))
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0]}") from None
    load_state_dict_strict(model, state, source=f"{where} as backbone '{name}'")
    return model.eval()


def _image_batches(dataset: FaceDataset, batch_size: int) -> Iterator[np.ndarray]:
    """uint8 (B, H, W, 3) batches of the dataset's images, in order."""
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        images = []
        for i in range(start, stop):
            data, _, _ = dataset.read_raw(i)
            images.append(decode_image(data, dataset.location(i)))
        yield np.stack(images)


@torch.no_grad()
def embed_batch(
    model: nn.Module, images: np.ndarray, flip: bool, device: torch.device, autocast: bool
) -> np.ndarray:
    """images: uint8 (B, H, W, 3) -> L2-normalised float32 (B, D) (flip-summed when ``flip``)."""
    x = to_model_input(images, device)
    if flip:
        x = torch.cat([x, torch.flip(x, dims=[3])])
    amp = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if autocast
        else contextlib.nullcontext()
    )
    with amp:
        out = model(x.contiguous(memory_format=torch.channels_last)).float()
    if flip:
        n = images.shape[0]
        out = out[:n] + out[n:]
    return torch.nn.functional.normalize(out, dim=1).cpu().numpy().astype(np.float32)


def extract_features(
    model: nn.Module,
    dataset: FaceDataset,
    batch_size: int = 128,
    flip: bool = True,
    device: torch.device | str = "cpu",
    autocast: bool = False,
) -> np.ndarray:
    """L2-normalised FR features of every image of ``dataset``, in dataset order.

    Args:
        model: FR backbone taking (N, 3, H, W) in [-1, 1]; run in eval mode.
        dataset: any :class:`~vec2face.data.FaceDataset`.
        batch_size: images per forward pass (twice as many with ``flip``).
        flip: sum the embeddings of each image and its mirror before normalising.
        device: where to run.
        autocast: bfloat16 autocast.

    Returns:
        float32 (N, D), unit rows.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError(f"{dataset.path}: no images to embed")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        chunks = [
            embed_batch(model, b, flip, device, autocast)
            for b in _image_batches(dataset, batch_size)
        ]
    finally:
        model.train(was_training)
    return np.concatenate(chunks)


def identity_centers(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-identity centers: mean of L2-normalised features, re-normalised.

    Args:
        features: (N, D) features (normalised here).
        labels: (N,) identity labels.

    Returns:
        ``centers`` float32 (K, D) unit rows and ``center_labels`` int64 (K,), sorted labels.
    """
    feats = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(
            f"need features (N, D) and labels (N,), got {feats.shape} and {labels.shape}"
        )
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    uniq, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((uniq.size, feats.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, feats)
    centers = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centers.astype(np.float32), uniq.astype(np.int64)


def save_features(features: np.ndarray, labels: np.ndarray, out_dir: str | Path) -> dict[str, str]:
    """Write ``features``, ``labels``, ``centers``, ``center_labels`` ``.npy`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    centers, center_labels = identity_centers(features, labels)
    arrays = {
        "features": np.asarray(features, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
        "centers": centers,
        "center_labels": center_labels,
    }
    written = {}
    for name, arr in arrays.items():
        path = out / f"{name}.npy"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
        written[name] = str(path)
    return written


def write_training_lmdb(dataset: FaceDataset, features: np.ndarray, path: str | Path) -> int:
    """Write the Vec2Face training-layout LMDB: ``[image bytes, feature .npy bytes, label]``.

    The image bytes are copied as stored (no re-encoding).

    Raises:
        ConfigError: ``features`` does not have one row per image.
    """
    if features.shape[0] != len(dataset):
        raise ConfigError(
            f"{features.shape[0]} features for {len(dataset)} images of {dataset.path}"
        )

    def records():
        for i in range(len(dataset)):
            data, label, _ = dataset.read_raw(i)
            yield data, int(label), features[i]

    return write_lmdb(records(), path, layout="training")


def write_dataset_features(
    model: nn.Module,
    data: str | Path,
    out_dir: str | Path,
    *,
    mask: MaskLike = None,
    batch_size: int = 128,
    flip: bool = True,
    device: torch.device | str = "cpu",
    autocast: bool = True,
    training_lmdb: str | Path | None = None,
) -> dict[str, Any]:
    """Extract the features of a dataset and write them (what ``vec2face fr extract`` does).

    Writes ``features.npy``, ``labels.npy``, ``centers.npy`` and ``center_labels.npy`` into
    ``out_dir`` (:func:`save_features`) and, with ``training_lmdb``, the Vec2Face
    training-layout LMDB of the dataset's images with these features
    (:func:`write_training_lmdb`).

    Args:
        model: FR backbone on ``device`` (see :func:`extract_features`).
        data: any dataset :func:`vec2face.data.open_dataset` reads.
        out_dir: folder for the ``.npy`` files (created).
        mask: record mask of ``data`` (``.npy`` path or index array).
        batch_size: images per forward pass.
        flip: sum the embeddings of each image and its mirror.
        device: where to run.
        autocast: bfloat16 autocast (on by default, as ``vec2face fr extract`` runs).
        training_lmdb: also write the training-layout LMDB here.

    Returns:
        ``{"images", "identities", "dim", "files": {name: path}}``, plus
        ``"training_lmdb": {"path", "records"}`` when one was written.
    """
    with open_dataset(data, mask=mask) as ds:
        feats = extract_features(model, ds, batch_size, flip, torch.device(device), autocast)
        result: dict[str, Any] = {
            "images": len(ds),
            "identities": ds.num_identities,
            "dim": int(feats.shape[1]),
            "files": save_features(feats, ds.labels, out_dir),
        }
        if training_lmdb is not None:
            result["training_lmdb"] = {
                "path": str(training_lmdb),
                "records": write_training_lmdb(ds, feats, training_lmdb),
            }
    return result
