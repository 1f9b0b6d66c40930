"""Dataset-level reports: the metrics of :mod:`vec2face.reports` applied to whole datasets.

:func:`analyze_dataset` reads any dataset :func:`vec2face.data.open_dataset` reads,
extracts features with the judge (an FR model independent of the generator's teacher;
design brief 3.1b) and computes intra-class noise, inter-class noise, the
genuine/impostor distributions with their overlap and EER, identity leakage against a
reference set and, with an attribute estimator, pose/age/quality distributions. An
optional teacher gets the same figures *beside* the judge's, never instead of them.

Features (and attribute estimates) are cached as ``.npy`` under a key made of the
dataset's path, its labels, the analysed sample and the model checkpoint's sha256, so
a rerun of a report does not touch a model.

:func:`write_report` writes, per dataset, ``<out>/<name>/`` (every figure as
``report.json``, Parquet tables, PNG plots, one self-contained ``report.html``) and,
across datasets, ``<out>/comparison/`` (the same plots on shared axes and a comparison
table) and ``<out>/index.html``. Each folder is replaced atomically.

Bad input is an error or a reported exclusion, never a NaN in a report: a dataset with
fewer than two identities, NaN/inf features, or reference centers of another dimension
raise :class:`~vec2face.errors.DataFormatError`; identities with a single image are
excluded from the intra-class and genuine statistics and counted in ``exclusions``;
non-finite attribute estimates are left out of their statistics and counted.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from vec2face.attributes.estimators import AttributeEstimatorConfig, load_attribute_estimator
from vec2face.config import StepConfig
from vec2face.data import open_dataset
from vec2face.errors import ConfigError, DataFormatError
from vec2face.fr.extract import extract_features, load_trained_backbone
from vec2face.reports import html as html_pages
from vec2face.reports.metrics import (
    GenuineImpostor,
    IdentityLeakage,
    InterClassNoise,
    IntraClassNoise,
    genuine_impostor,
    identity_leakage,
    inter_class_noise,
    intra_class_noise,
)
from vec2face.reports.plots import (
    plot_age,
    plot_distributions,
    plot_genuine_impostor,
    plot_inter_class_similarity,
    plot_intra_class_similarity,
    plot_leakage_similarity,
    plot_pose,
)
from vec2face.utils.hashing import bytes_sha256, file_sha256
from vec2face.utils.io import atomic_dir, atomic_path, read_npy, write_bytes_atomic
from vec2face.utils.paths import path_in_folder

__all__ = [
    "CONFIG_SECTION",
    "DatasetReport",
    "ModelFigures",
    "ReportConfig",
    "analyze_dataset",
    "read_headline",
    "write_report",
]

CONFIG_SECTION = "dataset_reports"
_RESERVED_NAMES = {"cache", "comparison"}
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReportConfig(StepConfig):
    """Settings of dataset reports (params section ``dataset_reports``)."""

    judge: str = Field(
        ...,
        description="judge FR weights (state dict or 'fr train' output folder); an FR model "
        "independent of the teacher that never enters a loss",
    )
    judge_backbone: str | None = Field(
        None, description="judge backbone name (default: backbone.json beside the weights)"
    )
    teacher: str | None = Field(
        None, description="optional teacher FR weights; its figures are added beside the judge's"
    )
    teacher_backbone: str | None = Field(
        None, description="teacher backbone name (default: backbone.json beside the weights)"
    )
    embedding_size: int | None = Field(
        None, gt=0, description="embedding size of weights without backbone.json (default 512)"
    )
    reference_centers: str | None = Field(
        None,
        description="(R, D) .npy of a real reference set's identity centers in the judge's "
        "feature space, for identity leakage",
    )
    attribute_estimator: AttributeEstimatorConfig | None = Field(
        None, description="attribute estimator for pose/age/quality distributions (optional)"
    )
    intra_threshold: float = Field(0.3, description="intra-class outlier cut (cosine to center)")
    inter_threshold: float = Field(0.7, description="same-person cut between identity centers")
    leakage_threshold: float = Field(0.7, description="leakage cut to a reference center")
    impostor_pairs: int = Field(1_000_000, gt=0, description="sampled impostor pairs")
    max_genuine_pairs_per_identity: int | None = Field(
        None, gt=0, description="cap on genuine pairs per identity (default: all pairs)"
    )
    inter_hist_pairs: int = Field(
        1_000_000, gt=0, description="most center-pair cosines kept for the inter-class histogram"
    )
    max_images: int = Field(
        0, ge=0, description="analyse a seeded sample of whole identities up to this many "
        "images (0: all images)"
    )
    seed: int = Field(0, description="seeds the identity sample and the impostor pairs")
    batch_size: int = Field(128, gt=0, description="images per forward pass")
    flip: bool = Field(True, description="flip-sum the FR embeddings")
    bf16: bool = Field(False, description="bfloat16 autocast for the models")
    device: str = Field("cpu", description="torch device of the models")


# ------------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class _ModelSpec:
    """An FR model to run: where its weights are and what they are."""

    role: str
    checkpoint: str
    backbone: str | None
    embedding_size: int | None
    config_key: str

    def weights_file(self) -> Path:
        path = Path(self.checkpoint)
        weights = path / "backbone.pt" if path.is_dir() else path
        if not weights.is_file():
            raise ConfigError(f"{weights}: no such weights file (config key {self.config_key})")
        return weights

    def describe(self) -> dict[str, str]:
        """Backbone name, checkpoint and sha256 (of the weights plus any backbone.json)."""
        weights = self.weights_file()
        meta = weights.parent / "backbone.json"
        digest = file_sha256(weights)
        name = self.backbone
        if meta.is_file():
            digest = bytes_sha256((digest + file_sha256(meta)).encode())
            name = name or json.loads(meta.read_text()).get("backbone")
        return {"backbone": name or "?", "checkpoint": str(weights), "sha256": digest}


def _judge_spec(config: ReportConfig) -> _ModelSpec:
    return _ModelSpec(
        "judge", config.judge, config.judge_backbone, config.embedding_size,
        f"{CONFIG_SECTION}.judge",
    )


def _teacher_spec(config: ReportConfig) -> _ModelSpec | None:
    if config.teacher is None:
        return None
    return _ModelSpec(
        "teacher", config.teacher, config.teacher_backbone, config.embedding_size,
        f"{CONFIG_SECTION}.teacher",
    )


def _cached(
    cache_dir: Path | None, kind: str, key: Mapping[str, Any], compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, or its earlier result saved under ``cache_dir`` for the same ``key``."""
    if cache_dir is None:
        return compute()
    digest = bytes_sha256(json.dumps(key, sort_keys=True).encode())[:32]
    path = Path(cache_dir) / f"{kind}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    array = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return array


def _sample_positions(labels: np.ndarray, max_images: int, seed: int) -> np.ndarray | None:
    """Dataset positions of a seeded sample of whole identities, or None for all images.

    Whole identities keep each identity's images together, so intra-class and genuine
    statistics of the sample are unbiased; identities are taken in a seeded random
    order while they fit in ``max_images`` (at least two, so inter-class noise exists).
    """
    if max_images == 0 or labels.size <= max_images:
        return None
    identities, counts = np.unique(labels, return_counts=True)
    order = np.random.default_rng(seed).permutation(identities.size)
    fits = np.cumsum(counts[order]) <= max_images
    keep = order[: max(int(fits.sum()), 2)]
    return np.flatnonzero(np.isin(labels, identities[keep]))


def _check_features(
    features: np.ndarray, spec: _ModelSpec, dataset: str, locations: list[str]
) -> None:
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{dataset}: the {spec.role} ({spec.checkpoint}) gave NaN/inf features for "
            f"{int(bad.sum())} image(s), first {locations[first]}; nothing was cached"
        )


def _finite_stats(values: np.ndarray) -> dict[str, float | int | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "std": None, "median": None, "n": 0, "n_non_finite": int(values.size)}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "median": float(np.median(finite)),
        "n": int(finite.size),
        "n_non_finite": int(values.size - finite.size),
    }


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite value {obj!r} in a report (a bug: every figure is checked)")
    return obj


def _dumps(obj: Any) -> bytes:
    return json.dumps(_json_ready(obj), indent=2, allow_nan=False).encode()


# ------------------------------------------------------------------------------ analysis


@dataclass(frozen=True, eq=False)
class ModelFigures:
    """Every figure of one dataset under one FR model.

    Attributes:
        role: ``"judge"`` or ``"teacher"``.
        model: backbone name, checkpoint path and sha256.
        features: (N, D) float32 unit features of the analysed images.
        intra: intra-class noise; its ``identities``/``centers`` order the identity rows.
        inter: inter-class noise over ``intra.centers``.
        genuine_impostor: genuine/impostor distributions, overlap, EER.
        leakage: identity leakage against the reference centers, or None.
    """

    role: str
    model: dict[str, str]
    features: np.ndarray
    intra: IntraClassNoise
    inter: InterClassNoise
    genuine_impostor: GenuineImpostor
    leakage: IdentityLeakage | None

    def relative_to(self, folder: str | os.PathLike) -> ModelFigures:
        """These figures with the checkpoint named relative to ``folder`` (where they are
        written)."""
        checkpoint = path_in_folder(self.model["checkpoint"], folder)
        return replace(self, model={**self.model, "checkpoint": checkpoint})

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the model and every metric's ``summary()``."""
        return {
            "model": dict(self.model),
            "figures": {
                "intra_class": self.intra.summary(),
                "inter_class": self.inter.summary(),
                "genuine_impostor": self.genuine_impostor.summary(),
                "leakage": self.leakage.summary() if self.leakage is not None else None,
            },
        }

    def headline(self) -> dict[str, Any]:
        """The rates a reader compares first (``leakage_rate`` None without a reference)."""
        return {
            "images": self.intra.n_images,
            "identities": self.intra.n_identities,
            "intra_class_outlier_rate": self.intra.outlier_rate,
            "inter_class_noise_rate": self.inter.rate,
            "eer": self.genuine_impostor.eer,
            "overlap": self.genuine_impostor.overlap,
            "leakage_rate": self.leakage.rate if self.leakage is not None else None,
        }


@dataclass(frozen=True, eq=False)
class DatasetReport:
    """The analysis of one dataset.

    Attributes:
        path: the dataset as given.
        format: its storage format.
        n_images_total: images in the dataset.
        n_identities_total: identities in the dataset.
        positions: (N,) dataset positions of the analysed images (all, or the sample).
        labels: (N,) their labels.
        locations: their locations (file paths or record ids).
        sampled: the analysed images are a sample (``max_images``).
        seed: the sample's seed.
        judge: the judge's figures.
        teacher: the teacher's figures, or None.
        attributes: attribute name -> (N,) float32 estimates (empty without an estimator).
        attribute_estimator: the estimator's files (``checkpoint``, ``sixdrepnet``,
            ``magface`` -> path, those it uses), or None.
    """

    path: str
    format: str
    n_images_total: int
    n_identities_total: int
    positions: np.ndarray
    labels: np.ndarray
    locations: list[str]
    sampled: bool
    seed: int
    judge: ModelFigures
    teacher: ModelFigures | None
    attributes: dict[str, np.ndarray]
    attribute_estimator: dict[str, str] | None

    def relative_to(self, folder: str | os.PathLike) -> DatasetReport:
        """This report with every path named relative to ``folder``, where it is written.

        The dataset, the image locations in it, the checkpoints and the estimator's files:
        named as given, they would make the same report differ from one output root to
        another (and so its DVC hash).
        """
        path = path_in_folder(self.path, folder)
        prefix = str(Path(self.path))  # how the dataset names its locations
        estimator = self.attribute_estimator
        return replace(
            self,
            path=path,
            locations=[
                path + loc[len(prefix):] if loc.startswith(prefix) else loc
                for loc in self.locations
            ],
            judge=self.judge.relative_to(folder),
            teacher=self.teacher.relative_to(folder) if self.teacher is not None else None,
            attribute_estimator=(
                {k: path_in_folder(v, folder) for k, v in estimator.items()}
                if estimator is not None
                else None
            ),
        )

    def headline(self) -> dict[str, Any]:
        """The judge's headline figures plus the dataset's size and the judge's name."""
        head = self.judge.headline()
        head["images_total"] = self.n_images_total
        head["judge"] = f"{self.judge.model['backbone']} ({self.judge.model['checkpoint']})"
        return head

    def exclusions(self) -> dict[str, Any]:
        """What was left out of which statistic, and why, as counts and readable notes."""
        single = self.judge.intra.n_excluded_identities
        notes = []
        if single:
            notes.append(
                f"{single} identit{'y' if single == 1 else 'ies'} with a single image: excluded "
                "from the intra-class outlier rate and the genuine pairs (an image is its own "
                "center); still counted in inter-class noise and leakage"
            )
        non_finite = {
            name: int((~np.isfinite(v)).sum()) for name, v in self.attributes.items()
        }
        for name, count in non_finite.items():
            if count:
                notes.append(f"{count} image(s) without a finite {name} estimate: left out of "
                             f"the {name} statistics and plot")
        return {
            "single_image_identities": single,
            "images_of_single_image_identities": self.judge.intra.n_images
            - self.judge.intra.n_included,
            "non_finite_attributes": non_finite,
            "notes": notes,
        }

    def summary(self) -> dict[str, Any]:
        """Every figure, JSON-ready (the content of ``report.json``)."""
        out = {
            "path": self.path,
            "format": self.format,
            "sample": {
                "sampled": self.sampled,
                "seed": self.seed,
                "images": int(self.positions.size),
                "images_total": self.n_images_total,
                "identities": self.judge.intra.n_identities,
                "identities_total": self.n_identities_total,
            },
            "headline": self.headline(),
            "judge": self.judge.summary(),
            "teacher": self.teacher.summary() if self.teacher is not None else None,
            "exclusions": self.exclusions(),
            "attributes": None,
        }
        if self.teacher is not None:
            out["teacher_headline"] = self.teacher.headline()
        if self.attributes:
            files = self.attribute_estimator or {}
            out["attributes"] = {
                "estimator": ", ".join(f"{k}: {v}" for k, v in files.items()),
                "statistics": {k: _finite_stats(v) for k, v in self.attributes.items()},
            }
        return out

    def image_table(self) -> pd.DataFrame:
        """One row per analysed image: cosine to its identity center, outlier flag, attributes."""
        intra = self.judge.intra
        table = {
            "position": self.positions.astype(np.int64),
            "label": self.labels,
            "location": self.locations,
            "cosine_to_center": intra.cosines,
            "included": intra.included,
            "outlier": intra.included & (intra.cosines < intra.threshold),
        }
        if self.teacher is not None:
            table["teacher_cosine_to_center"] = self.teacher.intra.cosines
        table.update(self.attributes)
        return pd.DataFrame(table)

    def identity_table(self) -> pd.DataFrame:
        """One row per identity: images, outliers, nearest other identity, leakage."""
        intra, inter = self.judge.intra, self.judge.inter
        table = {
            "label": intra.identities,
            "images": intra.images_per_identity.astype(np.int64),
            "outliers": intra.outliers_per_identity,
            "max_inter_cosine": inter.max_cosine,
            "nearest_label": intra.identities[inter.argmax],
            "same_person": inter.max_cosine > inter.threshold,
        }
        if self.judge.leakage is not None:
            table["max_reference_cosine"] = self.judge.leakage.max_cosine
            table["nearest_reference"] = self.judge.leakage.argmax
            table["leaked"] = self.judge.leakage.max_cosine > self.judge.leakage.threshold
        if self.teacher is not None:
            table["teacher_max_inter_cosine"] = self.teacher.inter.max_cosine
        return pd.DataFrame(table)


def _load_reference(config: ReportConfig) -> np.ndarray | None:
    if config.reference_centers is None:
        return None
    path = Path(config.reference_centers)
    key = f"{CONFIG_SECTION}.reference_centers"
    ref = read_npy(path, "reference centers file", config_key=key)
    if ref.ndim != 2 or ref.shape[0] == 0:
        raise DataFormatError(f"{path}: reference centers must be a non-empty (R, D) array, "
                              f"got shape {ref.shape}")
    return ref


def _model_figures(
    spec: _ModelSpec,
    model: dict[str, str],
    features: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray | None,
    config: ReportConfig,
    dataset: str,
) -> ModelFigures:
    intra = intra_class_noise(features, labels, config.intra_threshold)
    inter = inter_class_noise(
        intra.centers, config.inter_threshold, config.inter_hist_pairs, config.seed
    )
    gi = genuine_impostor(
        features, labels, config.impostor_pairs, config.max_genuine_pairs_per_identity, config.seed
    )
    leakage = None
    # The reference centers live in the judge's feature space; the teacher's features
    # are not comparable with them, so leakage is a judge figure only.
    if reference is not None and spec.role == "judge":
        if reference.shape[1] != intra.centers.shape[1]:
            raise DataFormatError(
                f"{dataset}: reference centers {config.reference_centers} have dimension "
                f"{reference.shape[1]} but the judge ({spec.checkpoint}) gives "
                f"{intra.centers.shape[1]}-d features; give the reference set's centers "
                "computed with the same judge"
            )
        leakage = identity_leakage(intra.centers, reference, config.leakage_threshold)
    return ModelFigures(spec.role, model, features, intra, inter, gi, leakage)


def _extract(spec: _ModelSpec, path: str, positions: np.ndarray, config: ReportConfig):
    import torch

    model = load_trained_backbone(
        spec.checkpoint, spec.backbone, spec.embedding_size, config_key=spec.config_key
    ).to(config.device)
    with open_dataset(path, mask=positions) as ds:
        with torch.inference_mode():
            return extract_features(
                model, ds, config.batch_size, config.flip, config.device, config.bf16
            )


def _estimate_attributes(path: str, positions: np.ndarray, config: ReportConfig) -> np.ndarray:
    estimator = load_attribute_estimator(config.attribute_estimator).to(config.device)
    names = list(config.attribute_estimator.attributes)
    columns: list[np.ndarray] = []
    with open_dataset(path, mask=positions) as ds:
        for start in range(0, len(ds), config.batch_size):
            images = []
            for i in range(start, min(len(ds), start + config.batch_size)):
                image = ds[i].image
                if image.shape != (112, 112, 3):
                    raise DataFormatError(
                        f"{ds.location(i)}: the attribute estimator needs 112x112 RGB images, "
                        f"got {image.shape}"
                    )
                images.append(image)
            pred = estimator.predict(np.stack(images), config.batch_size, config.bf16)
            columns.append(np.stack([pred[n] for n in names], axis=1))
    return np.concatenate(columns).astype(np.float32)


def _estimator_key(config: AttributeEstimatorConfig) -> dict[str, Any]:
    key: dict[str, Any] = {"attributes": list(config.attributes), "arch": config.magface_arch}
    for field in ("checkpoint", "sixdrepnet", "magface"):
        value = getattr(config, field)
        if value is not None:
            path = Path(value)
            if not path.is_file():
                raise ConfigError(
                    f"{path}: no such file (config key {CONFIG_SECTION}.attribute_estimator."
                    f"{field})"
                )
            key[field] = file_sha256(path)
    return key


def analyze_dataset(
    path: str | os.PathLike, config: ReportConfig, cache_dir: str | os.PathLike | None = None
) -> DatasetReport:
    """Every report figure of one dataset, under the judge (and the teacher when configured).

    Args:
        path: any dataset :func:`vec2face.data.open_dataset` reads.
        config: report settings.
        cache_dir: folder for cached features/attributes (``.npy``); None: no cache.

    Returns:
        A :class:`DatasetReport`.

    Raises:
        DataFormatError: fewer than two identities, no identity with two images, NaN/inf
            features, or reference centers whose dimension differs from the judge's.
        ConfigError: a missing or unfitting checkpoint or reference file (naming its key).
    """
    path = str(path)
    cache = Path(cache_dir) if cache_dir is not None else None
    reference = _load_reference(config)
    with open_dataset(path) as ds:
        fmt = ds.format
        all_labels = ds.labels.copy()
        picked = _sample_positions(all_labels, config.max_images, config.seed)
        positions = np.arange(len(ds)) if picked is None else picked
        records = ds.record_indices[positions]
        locations = [ds.location(int(i)) for i in positions]
    n_ids_total = int(np.unique(all_labels).size)
    if n_ids_total < 2:
        raise DataFormatError(
            f"{path}: a dataset report needs at least 2 identities, got {n_ids_total} "
            "(inter-class noise and impostor pairs compare identities)"
        )
    labels = all_labels[positions]
    data_key = {
        # named from the cache folder: a cache inside the output is the same under any root
        "dataset": path_in_folder(path, cache) if cache is not None else None,
        "records": bytes_sha256(np.ascontiguousarray(records, dtype=np.int64).tobytes()),
        "labels": bytes_sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()),
    }

    def figures(spec: _ModelSpec) -> ModelFigures:
        model = spec.describe()
        key = {**data_key, "model": model["sha256"], "backbone": spec.backbone,
               "embedding_size": spec.embedding_size, "flip": config.flip, "bf16": config.bf16}

        def compute() -> np.ndarray:
            feats = _extract(spec, path, records, config)
            _check_features(feats, spec, path, locations)
            return feats

        feats = _cached(cache, "features", key, compute)
        _check_features(feats, spec, path, locations)
        return _model_figures(spec, model, feats, labels, reference, config, path)

    judge = figures(_judge_spec(config))
    teacher_spec = _teacher_spec(config)
    teacher = figures(teacher_spec) if teacher_spec is not None else None

    attributes: dict[str, np.ndarray] = {}
    estimator_files = None
    if config.attribute_estimator is not None:
        est = config.attribute_estimator
        key = {**data_key, "estimator": _estimator_key(est), "bf16": config.bf16}
        values = _cached(
            cache, "attributes", key, lambda: _estimate_attributes(path, records, config)
        )
        attributes = {name: values[:, i] for i, name in enumerate(est.attributes)}
        sources = {f: getattr(est, f) for f in ("checkpoint", "sixdrepnet", "magface")}
        estimator_files = {k: str(v) for k, v in sources.items() if v is not None}

    return DatasetReport(
        path=path,
        format=fmt,
        n_images_total=int(all_labels.size),
        n_identities_total=n_ids_total,
        positions=positions,
        labels=labels,
        locations=locations,
        sampled=picked is not None,
        seed=config.seed,
        judge=judge,
        teacher=teacher,
        attributes=attributes,
        attribute_estimator=estimator_files,
    )


# -------------------------------------------------------------------------------- output


def _model_label(figs: ModelFigures) -> str:
    return f"{figs.role} ({figs.model['backbone']})"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _has_finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def _dataset_plots(name: str, report: DatasetReport, folder: Path) -> dict[str, Path]:
    """Write the dataset's PNGs; return caption -> path (judge and teacher on shared axes)."""
    models = [report.judge] + ([report.teacher] if report.teacher is not None else [])
    figs: dict[str, Path] = {}
    intra = {_model_label(m): m.intra for m in models}
    plot_intra_class_similarity(intra, folder / "intra_class.png", report.judge.intra.threshold)
    figs["Intra-class similarity (Figure 4 style): each image's cosine to its identity center"] = (
        folder / "intra_class.png"
    )
    inter = {_model_label(m): m.inter for m in models}
    plot_inter_class_similarity(inter, folder / "inter_class.png", report.judge.inter.threshold)
    figs["Inter-class similarity (Figure 5 style): each identity's nearest other center"] = (
        folder / "inter_class.png"
    )
    pairs = {_model_label(m): m.inter.pair_cosines for m in models}
    plot_distributions(
        pairs, folder / "inter_class_pairs.png",
        title="Inter-class similarity: identity center pairs",
        xlabel="cosine similarity of two identity centers", value_range=(-1.0, 1.0),
        threshold=report.judge.inter.threshold, share_label="same person",
    )
    figs["Cosine of identity-center pairs (all pairs or a seeded sample)"] = (
        folder / "inter_class_pairs.png"
    )
    gi = {_model_label(m): m.genuine_impostor for m in models}
    plot_genuine_impostor(gi, folder / "genuine_impostor.png")
    figs["Genuine (solid) vs impostor (dashed) similarity, EER threshold dotted"] = (
        folder / "genuine_impostor.png"
    )
    if report.judge.leakage is not None:
        plot_leakage_similarity(
            {_model_label(report.judge): report.judge.leakage}, folder / "leakage.png",
            report.judge.leakage.threshold,
        )
        figs["Identity leakage: each identity's nearest reference center"] = folder / "leakage.png"
    attrs = report.attributes
    if "yaw" in attrs and "pitch" in attrs and _has_finite(attrs["yaw"]) and _has_finite(
        attrs["pitch"]
    ):
        plot_pose({name: {"yaw": attrs["yaw"], "pitch": attrs["pitch"]}}, folder / "pose.png")
        figs["Pose (Figure 6 style): yaw and pitch"] = folder / "pose.png"
    if "age" in attrs and _has_finite(attrs["age"]):
        plot_age({name: attrs["age"]}, folder / "age.png")
        figs["Age (Figure 6 style)"] = folder / "age.png"
    if "quality" in attrs and _has_finite(attrs["quality"]):
        plot_distributions(
            {name: attrs["quality"]}, folder / "quality.png", title="Image quality",
            xlabel="estimated quality",
        )
        figs["Estimated image quality"] = folder / "quality.png"
    return figs


#: the JSON of every figure in a dataset's report folder
REPORT_FILE = "report.json"


def read_headline(out_dir: str | os.PathLike, name: str) -> dict[str, Any]:
    """The judge's headline figures of dataset ``name`` in a :func:`write_report` folder.

    Raises:
        ValueError: a missing or unreadable ``<out_dir>/<name>/report.json`` (naming it).
    """
    path = Path(out_dir) / name / REPORT_FILE
    try:
        return json.loads(path.read_text())["headline"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: {exc.__class__.__name__}: {exc}") from exc


def _write_dataset(name: str, report: DatasetReport, out_dir: Path) -> Path:
    shown = report.relative_to(out_dir / name)
    with atomic_dir(out_dir / name) as folder:
        summary = shown.summary()
        write_bytes_atomic(folder / REPORT_FILE, _dumps(summary))
        _write_parquet(shown.image_table(), folder / "images.parquet")
        _write_parquet(shown.identity_table(), folder / "identities.parquet")
        figures = _dataset_plots(name, report, folder)
        files = [REPORT_FILE, "images.parquet", "identities.parquet"]
        files += [p.name for p in figures.values()]
        page = html_pages.dataset_page(name, summary, figures, files)
        write_bytes_atomic(folder / "report.html", page.encode())
    return out_dir / name


def _comparison(reports: Mapping[str, DatasetReport], out_dir: Path) -> dict[str, Path]:
    """Comparison PNGs and table of several datasets; caption -> final PNG path."""
    first = next(iter(reports.values()))
    captions: dict[str, str] = {}
    with atomic_dir(out_dir / "comparison") as folder:
        judges = {n: r.judge for n, r in reports.items()}
        plot_intra_class_similarity(
            {n: j.intra for n, j in judges.items()}, folder / "intra_class.png",
            first.judge.intra.threshold,
        )
        captions["Intra-class similarity, all datasets (judge)"] = "intra_class.png"
        plot_inter_class_similarity(
            {n: j.inter for n, j in judges.items()}, folder / "inter_class.png",
            first.judge.inter.threshold,
        )
        captions["Inter-class similarity, all datasets (judge)"] = "inter_class.png"
        plot_genuine_impostor(
            {n: j.genuine_impostor for n, j in judges.items()}, folder / "genuine_impostor.png"
        )
        captions["Genuine vs impostor similarity, all datasets (judge)"] = "genuine_impostor.png"
        leak = {n: j.leakage for n, j in judges.items() if j.leakage is not None}
        if leak:
            plot_leakage_similarity(leak, folder / "leakage.png", first.judge.leakage.threshold)
            captions["Identity leakage, all datasets (judge)"] = "leakage.png"
        if any(r.teacher is not None for r in reports.values()):
            plot_inter_class_similarity(
                {n: r.teacher.inter for n, r in reports.items() if r.teacher is not None},
                folder / "inter_class_teacher.png", first.judge.inter.threshold,
            )
            captions["Inter-class similarity, all datasets (teacher, beside the judge)"] = (
                "inter_class_teacher.png"
            )
        pose = {
            n: {"yaw": r.attributes["yaw"], "pitch": r.attributes["pitch"]}
            for n, r in reports.items()
            if "yaw" in r.attributes and "pitch" in r.attributes
            and _has_finite(r.attributes["yaw"]) and _has_finite(r.attributes["pitch"])
        }
        if pose:
            plot_pose(pose, folder / "pose.png")
            captions["Pose, all datasets"] = "pose.png"
        age = {
            n: r.attributes["age"]
            for n, r in reports.items()
            if "age" in r.attributes and _has_finite(r.attributes["age"])
        }
        if age:
            plot_age(age, folder / "age.png")
            captions["Age, all datasets"] = "age.png"
        rows = []
        for n, report in reports.items():
            r = report.relative_to(out_dir / "comparison")
            row = {"dataset": n, "path": r.path, **r.judge.headline(),
                   "images_total": r.n_images_total, "judge": r.judge.model["checkpoint"]}
            if r.teacher is not None:
                row.update({f"teacher_{k}": v for k, v in r.teacher.headline().items()})
            rows.append(row)
        _write_parquet(pd.DataFrame(rows), folder / "comparison.parquet")
        write_bytes_atomic(folder / "comparison.json", _dumps(rows))
    return {caption: out_dir / "comparison" / f for caption, f in captions.items()}


def _check_names(datasets: Mapping[str, Any]) -> None:
    if not datasets:
        raise ConfigError("no dataset to report on")
    for name in datasets:
        if not _NAME_PATTERN.match(name) or name in _RESERVED_NAMES:
            raise ConfigError(
                f"dataset name {name!r}: use letters, digits, '.', '_' or '-' (starting with a "
                f"letter or digit), not {sorted(_RESERVED_NAMES)}"
            )


def write_report(
    datasets: Mapping[str, str | os.PathLike],
    config: ReportConfig,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Analyse datasets and write their reports, plus a comparison when there are several.

    Writes ``out_dir/<name>/`` (``report.json``, ``images.parquet``, ``identities.parquet``,
    PNG plots, ``report.html``) per dataset; with two or more datasets
    ``out_dir/comparison/`` (PNG plots on shared axes, ``comparison.parquet`` and
    ``comparison.json``); and ``out_dir/index.html`` with the headline table.

    Args:
        datasets: report name -> dataset path (names become folder names).
        config: report settings.
        out_dir: output folder (created; the folders above are replaced).
        cache_dir: feature cache (default ``out_dir/cache``).

    Returns:
        ``{"out_dir", "index", "judge", "teacher", "datasets": {name: headline}}``.

    Raises:
        ConfigError: an unusable dataset name, or see :func:`analyze_dataset`.
        DataFormatError: see :func:`analyze_dataset`.
    """
    _check_names(datasets)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    reports = {name: analyze_dataset(path, config, cache) for name, path in datasets.items()}
    for name, report in reports.items():
        _write_dataset(name, report, out)
    figures = _comparison(reports, out) if len(reports) > 1 else {}
    first = next(iter(reports.values()))
    teacher = first.teacher.model if first.teacher is not None else None
    teacher_heads = (
        {n: r.teacher.headline() for n, r in reports.items() if r.teacher is not None}
        if teacher is not None else None
    )
    shown = {n: r.relative_to(out) for n, r in reports.items()}  # as index.html names them
    shown_first = next(iter(shown.values()))
    page = html_pages.index_page(
        {n: r.headline() for n, r in shown.items()}, shown_first.judge.model,
        shown_first.teacher.model if shown_first.teacher is not None else None, figures,
        teacher_heads,
    )
    write_bytes_atomic(out / "index.html", page.encode())
    result = {
        "out_dir": str(out),
        "index": str(out / "index.html"),
        "judge": first.judge.model,
        "teacher": teacher,
        "datasets": {n: r.headline() for n, r in reports.items()},
    }
    if teacher_heads:
        result["teacher_datasets"] = teacher_heads
    return _json_ready(result)
