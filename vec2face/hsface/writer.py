"""Sharded HSFace writer: identity vectors -> images -> JPEG -> LMDB shards.

Output layout::

    <out>/shards/shard_00000/train.lmdb         FR layout [JPEG bytes, global identity label]
    <out>/shards/shard_00000/vectors.npy        float32 (n_images, 512), record order
    <out>/shards/shard_00000/manifest.parquet   one row per image
    <out>/shards/shard_00000/shard.json         range, counts, settings, AttrOP reports
    <out>/shards/shard_00000/identities.npy     float32 (k, 512) refined identity vectors
                                                (only with ``refine_steps`` > 0)
    <out>/shards/shard_00000/images/            ImageFolder export (on request)
    <out>/hsface.json                           summary, once every shard is present

A shard is a contiguous identity range and the unit of work: it is written in
``<out>/shards/.shard_XXXXX.tmp`` and renamed only when complete, so a shard is never
half-visible. A rerun skips complete shards and redoes the rest from scratch.

Every image depends only on the settings, its identity vector and its global identity
index: the variation vectors are seeded per identity (:func:`intra_class_batch`) and so
are the generator's token masks (:func:`identity_masks`), so neither the shard size nor
the batch size changes what an identity's images are drawn from. That is also why
HSFace100K/200K are exact prefixes of HSFace300K.

AttrOP (:mod:`vec2face.hsface.attrop`) enters in two optional places, both seeded
per identity too: ``refine_steps`` refines each identity vector through the teacher
before its variation is drawn (the paper's identity refinement), and ``targeted_share`` picks that share of
each identity's images (by a per-identity draw) and optimises their vectors toward
``target_yaw`` / ``target_quality`` while keeping the identity (AttrOP), with the
same token masks the images are then rendered with.

JPEG encoding and LMDB writing run in a background thread while the generator computes
the next batch; attribute estimation runs between batches, in the generating thread.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgpack
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pydantic import Field, model_validator
from tqdm import tqdm

from vec2face.attributes.estimators import AttributeEstimator
from vec2face.config import StepConfig
from vec2face.data.imagefolder import write_imagefolder
from vec2face.data.images import encode_image
from vec2face.data.lmdb_format import open_lmdb_readonly, write_lmdb
from vec2face.errors import ConfigError, DataFormatError
from vec2face.generator.data import tensor_to_image
from vec2face.hsface.attrop import AttrOPResult, AttrOPSettings, attrop, refine_identities
from vec2face.hsface.variation import (
    DEFAULT_PROPORTIONS,
    DEFAULT_SIGMAS,
    _check_sigmas,
    intra_class_batch,
    sigma_counts,
)
from vec2face.models.generator import Vec2FaceGenerator, load_generator_checkpoint
from vec2face.tracking import NullTracker, Tracker
from vec2face.training.precision import Bf16Setting, resolve_bf16
from vec2face.utils.hashing import bytes_sha256, file_sha256, state_sha256
from vec2face.utils.io import read_npy, write_bytes_atomic
from vec2face.utils.paths import path_in_folder
from vec2face.utils.seeding import derive_seed, rng_for

SIZES: dict[str, int] = {
    "tiny": 200,
    "hsface10k": 10_000,
    "hsface20k": 20_000,
    "hsface100k": 100_000,
    "hsface200k": 200_000,
    "hsface300k": 300_000,
}
SizeName = Literal["tiny", "hsface10k", "hsface20k", "hsface100k", "hsface200k", "hsface300k"]

SHARD_FILES = ("train.lmdb", "vectors.npy", "manifest.parquet", "shard.json")
ATTRIBUTE_COLUMNS = ("yaw", "pitch", "age", "quality")
SUMMARY_FILE = "hsface.json"

# uint8 (N, H, W, 3) RGB -> {attribute: (N,) array}; e.g. AttributeEstimator.predict
Estimator = Callable[[np.ndarray], Mapping[str, np.ndarray]]

log = logging.getLogger(__name__)


class HSFaceConfig(StepConfig):
    """Settings of one HSFace dataset (the ``hsface`` section of ``params.yaml``)."""

    size: SizeName = Field(
        "tiny", description="named size: tiny (200 ids) or hsface10k ... hsface300k"
    )
    identities: int | None = Field(
        None, gt=0, description="identity count overriding the size's (the first N vectors)"
    )
    images_per_identity: int = Field(50, gt=0, description="images per identity (50 in the paper)")
    shard_identities: int = Field(1000, gt=0, description="identities per shard")
    sigmas: tuple[float, ...] = Field(DEFAULT_SIGMAS, description="intra-class noise levels")
    proportions: tuple[float, ...] = Field(
        DEFAULT_PROPORTIONS, description="share of each identity's images at each sigma"
    )
    seed: int = Field(0, description="seed of the variation vectors and the generator's masks")
    batch_size: int = Field(64, gt=0, description="vectors per generator forward pass")
    bf16: Bf16Setting = Field(
        False, description="generate and estimate attributes in bfloat16; auto: on CUDA, and "
        "on a CPU where bf16 runs faster than fp32 (AMX)")
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality of the stored images")
    export_imagefolder: bool = Field(
        False, description="also write each shard as <identity>/<index>.jpg folders"
    )
    device: str = Field(
        "auto", description="torch device of the generator: auto, cpu, cuda, cuda:1 ..."
    )
    refine_steps: int = Field(
        0,
        ge=0,
        description="AttrOP step budget refining each identity vector through the teacher "
        "before its variation is drawn (0: no refinement)",
    )
    targeted_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of each identity's images optimised by AttrOP toward target_yaw / "
        "target_quality (rounded per identity)",
    )
    target_yaw: float | None = Field(
        None,
        ge=0.0,
        le=90.0,
        description="|yaw| in degrees of the targeted images (None: no pose term)",
    )
    target_quality: float | None = Field(
        27.0,
        description="quality hinge target of the targeted images, MagFace scale (None: no term)",
    )
    target_steps: int = Field(50, gt=0, description="AttrOP step budget of a targeted image")
    attrop_lr: float = Field(0.1, gt=0.0, description="AttrOP Adam learning rate")

    @model_validator(mode="after")
    def _check_variation(self) -> HSFaceConfig:
        try:
            _check_sigmas(self.sigmas, self.proportions)
            sigma_counts(self.images_per_identity, self.proportions)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _check_targets(self) -> HSFaceConfig:
        if self.targeted_share > 0 and self.target_yaw is None and self.target_quality is None:
            raise ValueError("targeted_share > 0 needs target_yaw or target_quality")
        if self.targeted_share == 0:
            given = [k for k in ("target_yaw", "target_quality") if k in self.model_fields_set]
            given = [k for k in given if getattr(self, k) is not None]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} set but targeted_share is 0: no image would be "
                    "targeted (set targeted_share, e.g. 0.2)"
                )
        return self

    @property
    def uses_attrop(self) -> bool:
        """Whether generation runs AttrOP (and so needs the teacher)."""
        return self.refine_steps > 0 or self.targeted_per_identity > 0

    @property
    def target_attributes(self) -> tuple[str, ...]:
        """Attributes the estimator must give for the targets (empty when nothing is targeted)."""
        if self.targeted_per_identity == 0:
            return ()
        targets = (("yaw", self.target_yaw), ("quality", self.target_quality))
        return tuple(name for name, value in targets if value is not None)

    @property
    def targeted_per_identity(self) -> int:
        """Targeted images of each identity: ``targeted_share * images_per_identity``, rounded
        half up."""
        return int(math.floor(self.targeted_share * self.images_per_identity + 0.5))

    @property
    def num_identities(self) -> int:
        """Identities generated: ``identities`` if set, else the size's count."""
        return self.identities if self.identities is not None else SIZES[self.size]

    @property
    def num_shards(self) -> int:
        return -(-self.num_identities // self.shard_identities)

    def shard_range(self, shard_index: int) -> tuple[int, int]:
        """Global identity range ``[start, stop)`` of a shard."""
        if not 0 <= shard_index < self.num_shards:
            raise ConfigError(
                f"shard {shard_index} out of range: this dataset has shards "
                f"0..{self.num_shards - 1}"
            )
        start = shard_index * self.shard_identities
        return start, min(start + self.shard_identities, self.num_identities)


def shard_name(shard_index: int) -> str:
    return f"shard_{shard_index:05d}"


def shard_tmp_name(shard_index: int) -> str:
    return f".{shard_name(shard_index)}.tmp"


def identity_masks(
    model: Vec2FaceGenerator, seed: int, identity: int, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's token masks for one identity's ``n`` images, seeded by its global index.

    Returns:
        keep_idx: (n, K) long and mask: (n, 49) bool on the CPU (see ``draw_masks``).
    """
    g = torch.Generator(device="cpu").manual_seed(derive_seed("hsface-masks", seed, identity))
    return model.draw_masks(n, model.gen_masking, g, "cpu")


def shard_stamp(
    config: HSFaceConfig, identity_rows: np.ndarray, extra: Mapping[str, Any] | None
) -> dict:
    """What a shard's content depends on; a complete shard is reused only if it matches."""
    return {
        "identity_vectors_sha256": bytes_sha256(
            np.ascontiguousarray(identity_rows, np.float32).tobytes()
        ),
        "images_per_identity": config.images_per_identity,
        "sigmas": list(config.sigmas),
        "proportions": list(config.proportions),
        "seed": config.seed,
        "batch_size": config.batch_size,
        "bf16": config.bf16,
        "jpeg_quality": config.jpeg_quality,
        "refine_steps": config.refine_steps,
        "targeted_share": config.targeted_share,
        "target_yaw": config.target_yaw,
        "target_quality": config.target_quality,
        "target_steps": config.target_steps,
        "attrop_lr": config.attrop_lr,
        **dict(extra or {}),
    }


def targeted_samples(config: HSFaceConfig, identity: int) -> np.ndarray:
    """Sorted sample indices of one identity's targeted images, drawn from
    ``(seed, global identity index)``: int64 (config.targeted_per_identity,)."""
    k = config.targeted_per_identity
    if k == 0:
        return np.zeros(0, np.int64)
    rng = rng_for("hsface-targeted", config.seed, identity)
    return np.sort(rng.choice(config.images_per_identity, size=k, replace=False)).astype(np.int64)


def iter_fr_records(path: str | os.PathLike) -> Iterator[tuple[bytes, int]]:
    """``(image bytes, label)`` of an FR-layout LMDB file in ``__keys__`` order (one read txn)."""
    path = Path(path)
    env = open_lmdb_readonly(path, subdir=False)  # a truncated shard: an error, not SIGBUS
    try:
        with env.begin(buffers=False) as txn:
            raw = txn.get(b"__keys__")
            if raw is None:
                raise DataFormatError(f"{path}: LMDB has no '__keys__' entry")
            for key in msgpack.unpackb(raw, raw=True):
                value = txn.get(key)
                if value is None:
                    raise DataFormatError(f"{path}: record {key!r} listed in '__keys__' is missing")
                yield _fr_fields(value, path, key)
    finally:
        env.close()


def _fr_fields(value: bytes, path: Path, key: bytes) -> tuple[bytes, int]:
    rec = msgpack.unpackb(value, raw=True)
    if not isinstance(rec, list) or len(rec) != 2:
        raise DataFormatError(f"{path}: record {key.decode()} is not an FR-layout [image, label]")
    return rec[0], int(rec[1])


# ---------------------------------------------------------------------------------------
# The background writer
# ---------------------------------------------------------------------------------------
class _Abort(Exception):
    """Raised inside the writer's record stream when the generating side failed."""


_END = object()
_ABORT = object()


class _ShardWriter:
    """Estimates attributes of uint8 batches, then encodes them to JPEG and writes the LMDB
    in a thread.

    The estimator runs in the caller's thread, between generator batches: in the writing
    thread its torch ops took intra-op threads beside the generator's, and the cores'
    oversubscription slowed generation by about 30% (130 -> 92 images/s, tiny bf16, 2
    cores), several times the estimator's own cost.

    Args:
        lmdb_path: the shard's ``train.lmdb``.
        labels: (n,) global identity label of every record.
        quality: JPEG quality.
        estimator: optional attribute estimator.
    """

    def __init__(
        self, lmdb_path: Path, labels: np.ndarray, quality: int, estimator: Estimator | None
    ) -> None:
        self.labels = labels
        self.quality = quality
        self.estimator = estimator
        self.attributes = {c: np.full(len(labels), np.nan, np.float32) for c in ATTRIBUTE_COLUMNS}
        self.error: BaseException | None = None
        self.written = 0
        # bounded: a slow disk must slow generation down, not fill the memory
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._thread = threading.Thread(
            target=self._run, args=(lmdb_path,), daemon=True, name="hsface-writer"
        )
        self._thread.start()

    def _records(self) -> Iterator[tuple[bytes, int]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Abort
            start, images = item
            for j, image in enumerate(images):
                yield encode_image(image, "jpeg", self.quality), int(self.labels[start + j])

    def _run(self, lmdb_path: Path) -> None:
        try:
            self.written = write_lmdb(self._records(), lmdb_path, layout="fr")
        except _Abort:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the generating thread
            self.error = exc

    def put(self, start: int, images: np.ndarray) -> None:
        """Estimate the attributes of uint8 (B, H, W, 3) images whose first record index
        is ``start``, then queue them for writing."""
        self._raise_if_failed()
        if self.estimator is not None:
            estimates = self.estimator(images)
            for name in ATTRIBUTE_COLUMNS:
                if name in estimates:
                    self.attributes[name][start : start + len(images)] = np.asarray(
                        estimates[name], dtype=np.float32
                    ).reshape(-1)
        self._put((start, images))

    def _put(self, item: object) -> None:
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                return
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> int:
        """Finish writing; re-raise the writer's error. Returns the records written."""
        self._put(_END)
        self._thread.join()
        self._raise_if_failed()
        return self.written

    def abort(self) -> None:
        """Stop the writer without finishing the LMDB (its temporary file is removed)."""
        if self._thread.is_alive():
            self._put(_ABORT)
            self._thread.join()


# ---------------------------------------------------------------------------------------
# One shard
# ---------------------------------------------------------------------------------------
def shard_vectors(
    identity_vectors: np.ndarray,
    start: int,
    stop: int,
    config: HSFaceConfig,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The variation vectors of identities ``[start, stop)``.

    Args:
        identity_vectors: identity vectors; row ``i - offset`` is global identity ``i``.
        start, stop: the global identity range.
        config: the dataset's settings.
        offset: global index of the first row (0 for the whole file, ``start`` for a
            shard's own rows).

    Returns:
        Image vectors float32 (n, d), sigmas float64 (n,) and cosine to the identity (n,).
    """
    m = config.images_per_identity
    dim = identity_vectors.shape[1]
    n = (stop - start) * m
    vectors = np.empty((n, dim), np.float32)
    sigmas = np.empty(n)
    cos = np.empty(n)
    block = 64  # identities per variation call: bounds the float64 noise buffer
    for s in range(start, stop, block):
        e = min(s + block, stop)
        ids = np.asarray(identity_vectors[s - offset : e - offset], dtype=np.float32)
        vec, sig = intra_class_batch(
            ids,
            m,
            config.sigmas,
            config.proportions,
            seed=config.seed,
            identity_indices=np.arange(s, e),
        )
        rows = slice((s - start) * m, (e - start) * m)
        vectors[rows] = vec.reshape(-1, dim)
        sigmas[rows] = sig.reshape(-1)
        cos[rows] = _cosine(vec.reshape(-1, dim), np.repeat(ids, m, axis=0))
    return vectors, sigmas, cos


def _cosine(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (n, d) and (n, d), in float64: (n,)."""
    x = x.astype(np.float64)
    v = v.astype(np.float64)
    return (x * v).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(v, axis=-1))


def _manifest_table(
    shard_index: int,
    start: int,
    stop: int,
    m: int,
    sigmas: np.ndarray,
    cos: np.ndarray,
    attributes: Mapping[str, np.ndarray],
    targeting: _Targeting,
) -> pa.Table:
    n = (stop - start) * m
    columns = {
        "record": pa.array(np.arange(n, dtype=np.int64)),
        "identity": pa.array(np.repeat(np.arange(start, stop, dtype=np.int64), m)),
        "sample": pa.array(np.tile(np.arange(m, dtype=np.int32), stop - start)),
        "sigma": pa.array(sigmas),
        "targeted": pa.array(targeting.targeted),
        "target_yaw": pa.array(targeting.column(targeting.yaw)),
        "target_quality": pa.array(targeting.column(targeting.quality)),
        "attrop_steps": pa.array(targeting.steps),
        # null for images that were not targeted
        "attrop_converged": pa.array(targeting.converged, mask=~targeting.targeted),
        "cos_identity": pa.array(cos.astype(np.float32)),
        "shard": pa.array(np.full(n, shard_index, dtype=np.int32)),
    }
    for name in ATTRIBUTE_COLUMNS:
        columns[name] = pa.array(attributes[name])
    return pa.table(columns)


class _Targeting:
    """Which of a shard's images AttrOP targeted, with what, and how it went (per record)."""

    def __init__(self, n: int, yaw: float | None = None, quality: float | None = None) -> None:
        self.targeted = np.zeros(n, dtype=bool)
        self.steps = np.zeros(n, dtype=np.int32)
        self.converged = np.zeros(n, dtype=bool)
        self.yaw = yaw
        self.quality = quality

    def column(self, target: float | None) -> np.ndarray:
        """float32 (n,): the target on targeted records, NaN elsewhere (or without a target)."""
        value = np.nan if target is None else float(target)
        return np.where(self.targeted, value, np.nan).astype(np.float32)


def shard_masks(
    model: Vec2FaceGenerator, config: HSFaceConfig, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token masks of every image of identities ``[start, stop)``, in record order (see
    :func:`identity_masks`): keep_idx (n, K) long and mask (n, 49) bool on the CPU."""
    masks = [
        identity_masks(model, config.seed, i, config.images_per_identity)
        for i in range(start, stop)
    ]
    return torch.cat([k for k, _ in masks]), torch.cat([mk for _, mk in masks])


def _generate_into(
    writer: _ShardWriter,
    model: Vec2FaceGenerator,
    vectors: np.ndarray,
    masks: tuple[torch.Tensor, torch.Tensor],
    config: HSFaceConfig,
    bar: tqdm | None,
) -> None:
    """Run the generator over the shard's vectors in batches, feeding ``writer``.

    Uses the generator's own inference path (:meth:`Vec2FaceGenerator.iter_generate`: on
    CPU a cached bf16 weight copy and channels-last decoding), with the per-identity masks
    drawn by :func:`shard_masks`.
    """
    keep_all, mask_all = masks
    batches = model.iter_generate(
        torch.from_numpy(vectors), keep_all, mask_all, config.batch_size, config.bf16
    )
    for start, images in batches:
        writer.put(start, tensor_to_image(images))
        if bar is not None:
            bar.update(len(images))


def _export_imagefolder(shard_dir: Path) -> int:
    return write_imagefolder(
        iter_fr_records(shard_dir / "train.lmdb"),
        shard_dir / "images",
        identity_names=_IdentityNames(),
        overwrite=True,
    )


class _IdentityNames(dict):
    """Folder name of every global label: zero-padded to 7 digits, sorted = label order."""

    def __missing__(self, label: int) -> str:
        return f"{label:07d}"


def _check_attrop_models(
    config: HSFaceConfig,
    fr_model: torch.nn.Module | None,
    estimator: AttributeEstimator | Estimator | None,
) -> None:
    """The models AttrOP needs for these settings are there (ConfigError otherwise)."""
    if not config.uses_attrop:
        return
    if fr_model is None:
        what = "hsface.refine_steps > 0" if config.refine_steps else "hsface.targeted_share > 0"
        raise ConfigError(
            f"{what} runs AttrOP, which needs the teacher FR model "
            "(vec2face generate --teacher, or the fr_teacher section of --params)"
        )
    needs = config.target_attributes
    if not needs:
        return
    if not isinstance(estimator, AttributeEstimator):
        raise ConfigError(
            f"hsface targets {', '.join(needs)} need a differentiable attribute estimator "
            "(vec2face generate --attributes MODEL, or the attribute_estimator section of "
            "--params)"
        )
    missing = [a for a in needs if a not in estimator.provides]
    if missing:
        raise ConfigError(
            f"hsface targets {', '.join(missing)}, which the attribute estimator does not give "
            f"(it gives {', '.join(estimator.provides)})"
        )


def _target_settings(config: HSFaceConfig) -> AttrOPSettings:
    return AttrOPSettings(
        max_steps=config.target_steps,
        lr=config.attrop_lr,
        quality_target=config.target_quality,
        yaw_target=config.target_yaw,
        bf16=config.bf16,
    )


def _refine(
    generator: Vec2FaceGenerator,
    identities: np.ndarray,
    start: int,
    config: HSFaceConfig,
    fr_model: torch.nn.Module | None,
) -> tuple[np.ndarray, AttrOPResult | None]:
    """The shard's identity vectors after refinement (unchanged with ``refine_steps`` 0)."""
    if config.refine_steps == 0:
        return identities, None
    result = refine_identities(
        generator,
        identities,
        fr_model,
        max_steps=config.refine_steps,
        lr=config.attrop_lr,
        seed=config.seed,
        identity_indices=np.arange(start, start + len(identities)),
        batch_size=config.batch_size,
        bf16=config.bf16,
    )
    return result.vectors, result


def _target(
    generator: Vec2FaceGenerator,
    vectors: np.ndarray,
    cos: np.ndarray,
    centers: np.ndarray,
    masks: tuple[torch.Tensor, torch.Tensor],
    start: int,
    config: HSFaceConfig,
    fr_model: torch.nn.Module | None,
    estimator: AttributeEstimator | Estimator | None,
) -> tuple[_Targeting, AttrOPResult | None]:
    """Optimise the targeted images' vectors in place (``vectors`` and ``cos`` rows)."""
    m = config.images_per_identity
    targeting = _Targeting(len(vectors), config.target_yaw, config.target_quality)
    if config.targeted_per_identity == 0:
        return targeting, None
    for i in range(len(centers)):
        targeting.targeted[i * m + targeted_samples(config, start + i)] = True
    rows = np.flatnonzero(targeting.targeted)
    identity = np.repeat(centers, m, axis=0)[rows]
    idx = torch.from_numpy(rows)
    result = attrop(
        generator,
        vectors[rows],
        fr_model,
        identity=identity,
        estimator=estimator if isinstance(estimator, AttributeEstimator) else None,
        settings=_target_settings(config),
        masks=(masks[0][idx], masks[1][idx]),
        batch_size=config.batch_size,
    )
    vectors[rows] = result.vectors
    cos[rows] = _cosine(result.vectors, identity)
    targeting.steps[rows] = result.steps
    targeting.converged[rows] = result.converged
    return targeting, result


def generate_shard(
    generator: Vec2FaceGenerator,
    identity_vectors: np.ndarray,
    shard_index: int,
    config: HSFaceConfig,
    out_dir: str | os.PathLike,
    *,
    estimator: AttributeEstimator | Estimator | None = None,
    fr_model: torch.nn.Module | None = None,
    stamp_extra: Mapping[str, Any] | None = None,
    progress: tqdm | None = None,
) -> dict:
    """Generate and write one shard, replacing whatever is at its name.

    Args:
        generator: the loaded generator (its device is used).
        identity_vectors: (N, dim) all identity vectors (only the shard's rows are read).
        shard_index: which shard (see :meth:`HSFaceConfig.shard_range`).
        config: the dataset's settings.
        out_dir: the dataset folder; the shard goes to ``out_dir/shards/shard_XXXXX``.
        estimator: optional attribute estimator filling the manifest's yaw/pitch/age/quality
            columns (NaN without one): an :class:`AttributeEstimator` (also what AttrOP's
            targets are measured with) or any ``uint8 (N, H, W, 3) -> {attribute: (N,)}``.
        fr_model: the teacher, needed when ``config`` refines identities or targets images.
        stamp_extra: provenance added to the shard's settings stamp (e.g. the generator hash).
        progress: a tqdm bar to advance by images.

    Returns:
        The shard's ``shard.json`` content, with the AttrOP reports of refinement and
        targeting (None when off).

    Raises:
        ConfigError: AttrOP settings without the models they need.
    """
    _check_attrop_models(config, fr_model, estimator)
    config = _precision_decided(config, generator.latent_prior_proj_f.weight.device)
    start, stop = config.shard_range(shard_index)
    shards = Path(out_dir) / "shards"
    final = shards / shard_name(shard_index)
    tmp = shards / shard_tmp_name(shard_index)
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run: redone from scratch
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    m = config.images_per_identity
    identities = np.asarray(identity_vectors[start:stop], dtype=np.float32)
    centers, refined = _refine(generator, identities, start, config, fr_model)
    vectors, sigmas, cos = shard_vectors(centers, start, stop, config, offset=start)
    masks = shard_masks(generator, config, start, stop)
    targeting, targeted = _target(
        generator, vectors, cos, centers, masks, start, config, fr_model, estimator
    )
    labels = np.repeat(np.arange(start, stop, dtype=np.int64), m)
    predict = (
        functools.partial(estimator.predict, amp=config.bf16)
        if isinstance(estimator, AttributeEstimator)
        else estimator
    )
    writer = _ShardWriter(tmp / "train.lmdb", labels, config.jpeg_quality, predict)
    try:
        _generate_into(writer, generator, vectors, masks, config, progress)
    except BaseException:
        writer.abort()
        raise
    written = writer.close()
    with open(tmp / "vectors.npy", "wb") as fh:
        np.save(fh, vectors)
    if refined is not None:
        with open(tmp / "identities.npy", "wb") as fh:
            np.save(fh, centers)
    pq.write_table(
        _manifest_table(shard_index, start, stop, m, sigmas, cos, writer.attributes, targeting),
        tmp / "manifest.parquet",
    )
    if config.export_imagefolder:
        _export_imagefolder(tmp)
    info = {
        "shard": shard_index,
        "identity_start": start,
        "identity_stop": stop,
        "images": written,
        "estimated_attributes": estimator is not None,
        "refinement": refined.report() if refined is not None else None,
        "targeting": targeted.report() if targeted is not None else None,
        "stamp": shard_stamp(config, identities, stamp_extra),
    }
    (tmp / "shard.json").write_text(json.dumps(info, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    info["seconds"] = time.perf_counter() - t0
    return info


def read_shard_info(shard_dir: str | os.PathLike) -> dict | None:
    """A complete shard's ``shard.json``, or None if the shard is missing or incomplete."""
    shard_dir = Path(shard_dir)
    if not all((shard_dir / f).exists() for f in SHARD_FILES):
        return None
    try:
        return json.loads((shard_dir / "shard.json").read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# The whole dataset
# ---------------------------------------------------------------------------------------
def load_identity_vectors(path: str | os.PathLike, n: int, dim: int) -> np.ndarray:
    """The first ``n`` rows of an identity-vector ``.npy``, checked.

    Raises:
        ConfigError: missing file, not a 2-D float array, wrong dimension, too few rows,
            NaN/inf or zero rows (named).
    """
    path = Path(path)
    arr = read_npy(path, "identity vectors", mmap_mode="r")
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(
            f"{path}: identity vectors must be a 2-D float array, got {arr.dtype} {arr.shape}"
        )
    if arr.shape[1] != dim:
        raise ConfigError(
            f"{path}: identity vectors have dimension {arr.shape[1]}, the generator takes {dim}"
        )
    if arr.shape[0] < n:
        raise ConfigError(f"{path}: holds {arr.shape[0]} identity vectors, the dataset needs {n}")
    out = np.asarray(arr[:n], dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        raise ConfigError(
            f"{path}: identity vectors contain NaN/inf (rows {bad[:5].tolist()}"
            f"{'...' if bad.size > 5 else ''})"
        )
    zero = np.flatnonzero(~out.any(axis=1))
    if zero.size:
        raise ConfigError(f"{path}: zero identity vectors (rows {zero[:5].tolist()})")
    return out


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"hsface.device: {exc}") from None


def _precision_decided(config: HSFaceConfig, device: torch.device) -> HSFaceConfig:
    """``config`` with ``bf16: auto`` decided for ``device`` (:func:`resolve_bf16`)."""
    if isinstance(config.bf16, bool):
        return config
    return config.model_copy(update={"bf16": resolve_bf16(config.bf16, device)})


def _stamp_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _attrop_totals(reports: list[dict]) -> dict | None:
    """Items, converged and budget-hitting items summed over shards' AttrOP reports."""
    if not reports:
        return None
    totals = {k: sum(r[k] for r in reports) for k in ("items", "converged", "hit_budget")}
    if totals["hit_budget"]:
        log.warning(
            "AttrOP: %d of %d items hit the step budget (see shard.json for the shortfall)",
            totals["hit_budget"],
            totals["items"],
        )
    return totals


def _stamp_extra(
    config: HSFaceConfig,
    checkpoint: Path,
    arch_name: str,
    estimator: AttributeEstimator | Estimator | None,
    fr_model: torch.nn.Module | None,
) -> dict[str, Any]:
    """What a shard's images depend on beyond the settings and its identity vectors."""
    return {
        "generator_sha256": file_sha256(checkpoint),
        "generator_arch": arch_name,
        "estimated_attributes": estimator is not None,
        # the teacher AttrOP steers with, the estimator that measures targets and fills the
        # manifest (a plain callable: unknown)
        "fr_model_sha256": state_sha256(fr_model) if config.uses_attrop else None,
        "attribute_estimator_sha256": (
            state_sha256(estimator) if isinstance(estimator, torch.nn.Module) else None
        ),
    }


def _shards_to_generate(
    config: HSFaceConfig,
    out_dir: Path,
    wanted: list[int],
    vectors: np.ndarray,
    stamp_extra: Mapping[str, Any],
) -> tuple[list[int], list[int]]:
    """(to generate, complete and reused) among ``wanted``; a complete shard made with other
    settings is a ConfigError, not silently mixed in."""
    todo, skipped = [], []
    for k in wanted:
        folder = out_dir / "shards" / shard_name(k)
        info = read_shard_info(folder)
        if info is None:
            todo.append(k)
            continue
        start, stop = config.shard_range(k)
        expected = shard_stamp(config, vectors[start:stop], stamp_extra)
        diff = _stamp_diff(info.get("stamp", {}), expected)
        if diff or (info.get("identity_start"), info.get("identity_stop")) != (start, stop):
            raise ConfigError(
                f"{folder} was made with other settings "
                f"({', '.join(diff) or 'identity range'}); "
                "remove it or choose another output folder"
            )
        skipped.append(k)
        if config.export_imagefolder and not (folder / "images").is_dir():
            _export_imagefolder(folder)
    return todo, skipped


def _run_summary(
    config: HSFaceConfig,
    generated: list[dict],
    skipped: list[int],
    seconds: float,
    gen_seconds: float,
    complete: bool,
    device: torch.device,
) -> dict[str, Any]:
    """What :func:`generate_hsface` returns, but the dataset file it may also write."""
    images = sum(i["images"] for i in generated)
    return {
        "config": config.model_dump(mode="json"),
        "identities": config.num_identities,
        "images_per_identity": config.images_per_identity,
        "num_shards": config.num_shards,
        "generated_shards": [i["shard"] for i in generated],
        "skipped_shards": skipped,
        "images_generated": images,
        "seconds": seconds,
        "images_per_s": images / gen_seconds if images else 0.0,
        "complete": complete,
        "device": str(device),
        "attrop": {
            part: _attrop_totals([i[part] for i in generated if i.get(part)])
            for part in ("refinement", "targeting")
        },
    }


def _write_dataset_file(
    config: HSFaceConfig,
    out_dir: Path,
    checkpoint: Path,
    stamp_extra: Mapping[str, Any],
    identity_vectors_path: str | os.PathLike,
    vectors: np.ndarray,
    shard_infos: list[dict],
) -> int:
    """Write ``hsface.json`` of a complete dataset (atomically); return its image count."""
    dataset = {
        "config": config.model_dump(mode="json"),
        # inputs named relative to ``out_dir``: the same dataset, the same bytes
        "generator": {
            "path": path_in_folder(checkpoint, out_dir),
            "sha256": stamp_extra["generator_sha256"],
            "arch": stamp_extra["generator_arch"],
        },
        "identity_vectors": {
            "path": path_in_folder(identity_vectors_path, out_dir),
            "rows_sha256": bytes_sha256(vectors.tobytes()),
        },
        "identities": config.num_identities,
        "images": sum(i["images"] for i in shard_infos),
        "shards": [
            {
                "shard": i["shard"],
                "path": f"shards/{shard_name(i['shard'])}",
                "identity_start": i["identity_start"],
                "identity_stop": i["identity_stop"],
                "images": i["images"],
            }
            for i in shard_infos
        ],
    }
    write_bytes_atomic(out_dir / SUMMARY_FILE, json.dumps(dataset, indent=2).encode())
    return dataset["images"]


def generate_hsface(
    config: HSFaceConfig,
    generator_checkpoint: str | os.PathLike,
    identity_vectors_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard: int | None = None,
    progress: bool = True,
    tracker: Tracker | None = None,
    estimator: AttributeEstimator | Estimator | None = None,
    fr_model: torch.nn.Module | None = None,
) -> dict:
    """Generate the HSFace dataset (or one shard of it), resuming where a run stopped.

    Args:
        config: the dataset's settings.
        generator_checkpoint: the generator ``.pth`` (ours or the official release).
        identity_vectors_path: ``.npy`` of identity vectors; the first ``num_identities``
            rows are used (so 100K/200K are prefixes of the 300K file).
        out_dir: the dataset folder.
        shard: generate only this shard (for one worker of many).
        progress: show a progress bar.
        tracker: where to log settings and throughput.
        estimator: optional attribute estimator for the manifest and for AttrOP's targets
            (see :func:`generate_shard`); moved to the generator's device.
        fr_model: the teacher FR model, needed when ``config`` refines identities or targets
            images; moved to the generator's device.

    Returns:
        A JSON-ready summary: settings, shards generated and skipped, images, seconds,
        images/s, whether the dataset is complete, the summary file when written, and the
        AttrOP totals of the generated shards (items that hit the budget included).

    Raises:
        ConfigError: bad vectors or shard index, a missing generator checkpoint, AttrOP
            settings without the models they need, or complete shards in ``out_dir`` made
            with other settings.
        vec2face.errors.Vec2FaceError: the checkpoint does not load.
    """
    tracker = tracker or NullTracker()
    t0 = time.perf_counter()
    checkpoint = Path(generator_checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"generator checkpoint not found: {checkpoint}")
    if shard is not None:
        config.shard_range(shard)
    _check_attrop_models(config, fr_model, estimator)
    model, report = load_generator_checkpoint(checkpoint, map_location=_device(config.device))
    vectors = load_identity_vectors(
        identity_vectors_path, config.num_identities, model.arch.rep_dim
    )
    device = model.latent_prior_proj_f.weight.device
    config = _precision_decided(config, device)  # shards record, and are reused for, what ran
    stamp_extra = _stamp_extra(config, checkpoint, report.arch_name, estimator, fr_model)
    if fr_model is not None:
        fr_model.to(device)
    if isinstance(estimator, torch.nn.Module):
        estimator.to(device)
    out_dir = Path(out_dir)
    (out_dir / "shards").mkdir(parents=True, exist_ok=True)
    tracker.log_params({
        "hsface": config.model_dump(mode="json"),
        "generator": str(checkpoint),
        "identity_vectors": str(identity_vectors_path),
    })
    wanted = [shard] if shard is not None else list(range(config.num_shards))
    todo, skipped = _shards_to_generate(config, out_dir, wanted, vectors, stamp_extra)

    m = config.images_per_identity
    total = sum((stop - start) * m for start, stop in map(config.shard_range, todo))
    t_gen = time.perf_counter()
    with tqdm(total=total, unit="img", desc="hsface", disable=not progress) as bar:
        generated = []
        for k in todo:
            info = generate_shard(
                model, vectors, k, config, out_dir, estimator=estimator, fr_model=fr_model,
                stamp_extra=stamp_extra, progress=bar,
            )
            generated.append(info)
            tracker.log_metrics({"shard_images_per_s": info["images"] / info["seconds"]}, step=k)
    gen_seconds = time.perf_counter() - t_gen

    all_infos = [
        read_shard_info(out_dir / "shards" / shard_name(k)) for k in range(config.num_shards)
    ]
    complete = all(i is not None for i in all_infos)
    seconds = time.perf_counter() - t0
    summary = _run_summary(config, generated, skipped, seconds, gen_seconds, complete, device)
    if complete:
        written = _write_dataset_file(
            config, out_dir, checkpoint, stamp_extra, identity_vectors_path, vectors, all_infos
        )
        summary["summary_file"] = str(out_dir / SUMMARY_FILE)
        summary["images"] = written
    tracker.log_metrics(
        {k: summary[k] for k in ("images_generated", "images_per_s")}
    )
    return summary


__all__ = [
    "ATTRIBUTE_COLUMNS",
    "SIZES",
    "HSFaceConfig",
    "Estimator",
    "generate_hsface",
    "generate_shard",
    "identity_masks",
    "iter_fr_records",
    "load_identity_vectors",
    "read_shard_info",
    "shard_masks",
    "shard_name",
    "shard_vectors",
    "targeted_samples",
]
