"""The ``webface_subset`` step: pick N identities with at least K readable images.

The paper trains Vec2Face on a 50K-identity subset of WebFace4M (1,022,444 images,
shipped as the mask ``50000_ids_1022444_ims.npy``). This step draws such a subset
from any supported source, deterministically from a seed, and writes it as an FR
layout LMDB with a manifest, a report and optionally the mask over the source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from vec2face.config import StepConfig
from vec2face.data.base import FaceDataset
from vec2face.data.convert import SkipLog
from vec2face.data.detect import open_dataset
from vec2face.data.imagefolder import ImageFolderDataset
from vec2face.data.images import decode_image
from vec2face.data.lmdb_format import write_lmdb
from vec2face.data.manifest import read_manifest, write_manifest
from vec2face.errors import DataFormatError, Vec2FaceError
from vec2face.utils.io import atomic_dir
from vec2face.utils.paths import path_in_folder
from vec2face.utils.seeding import rng_for

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
_PATH_COLUMNS = ("path", "relpath", "file", "filename", "image_path", "image")


class SubsetConfig(StepConfig):
    """Parameters of the subset step (``params.yaml`` section ``subset``)."""

    identities: int = Field(gt=0, description="Number of identities to select (the paper: 50,000).")
    min_images: int = Field(
        1, ge=1, description="An identity is eligible only with at least this many readable images."
    )
    max_images: int | None = Field(
        None, ge=1,
        description="Keep at most this many images per identity (a seeded sample); None keeps all.",
    )
    seed: int = Field(0, ge=0, description="Seed of the identity choice and the per-identity sample.")
    write_mask: bool = Field(
        False, description="Also write mask.npy: int64 indices of the chosen images in the source."
    )

    @model_validator(mode="after")
    def _max_not_below_min(self) -> SubsetConfig:
        if self.max_images is not None and self.max_images < self.min_images:
            raise ValueError(
                f"max_images ({self.max_images}) must be >= min_images ({self.min_images})"
            )
        return self


def _check_identity(
    ds: FaceDataset, positions: np.ndarray, config: SubsetConfig, label: int, skips: SkipLog
) -> list[int]:
    """Readable positions of one identity (all, or a seeded sample of ``max_images``)."""
    order = positions
    if config.max_images is not None and len(positions) > config.max_images:
        order = rng_for("subset", "images", config.seed, label).permutation(positions)
    readable: list[int] = []
    for pos in order:
        pos = int(pos)
        where = ds.location(pos)
        try:
            decode_image(ds.read_raw(pos)[0], where)
        except DataFormatError as exc:
            skips.add(ds.record_index(pos), where, str(exc))
            continue
        readable.append(pos)
        if config.max_images is not None and len(readable) == config.max_images:
            break
    return sorted(readable)


def _source_manifest(src: Path, ds: FaceDataset) -> tuple[pd.DataFrame | None, np.ndarray | None, str]:
    """The source's manifest, the manifest row of each source record, and how they matched.

    Rows are matched by relative image path (``<identity>/<file>``) for image folders
    whose manifest has a path column; otherwise by position when the manifest has
    exactly one row per record. Unmatched manifests are not carried over.
    """
    folder = src if src.is_dir() else src.parent
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None, None, "none"
    frame = read_manifest(path)
    n_records = len(ds.record_indices)
    if isinstance(ds, ImageFolderDataset):
        for column in _PATH_COLUMNS:
            if column not in frame.columns or not frame[column].map(lambda v: isinstance(v, str)).all():
                continue
            tails = frame[column].map(lambda v: "/".join(Path(v).parts[-2:]))
            lookup = {tail: row for row, tail in enumerate(tails)}
            rows = np.asarray([lookup.get(f, -1) for f in ds.files], dtype=np.int64)
            if (rows >= 0).all():
                return frame, rows, f"by path column '{column}'"
    if len(frame) == n_records:
        return frame, np.arange(n_records, dtype=np.int64), "by record index"
    log.warning("%s: %d rows for %d records and no path column to match; not carried over",
                path, len(frame), n_records)
    return None, None, f"unmatched ({len(frame)} rows for {n_records} records)"


def _free_name(name: str, taken: set[str]) -> str:
    for candidate in (name, f"source_{name}", f"source_manifest_{name}"):
        if candidate not in taken:
            return candidate
    k = 2
    while f"source_manifest_{name}_{k}" in taken:
        k += 1
    return f"source_manifest_{name}_{k}"


def _manifest_rows(
    ds: FaceDataset, chosen: list[tuple[int, list[int]]], frame: pd.DataFrame | None,
    rows: np.ndarray | None,
) -> pd.DataFrame:
    """One row per written image: label, source_label, source_index, identity, source columns."""
    positions = np.asarray([p for _, ps in chosen for p in ps], dtype=np.int64)
    source_index = ds.record_indices[positions]
    source_label = ds.labels[positions]
    names = ds.identity_names
    out = pd.DataFrame({
        "label": np.repeat(np.arange(len(chosen), dtype=np.int64), [len(ps) for _, ps in chosen]),
        "source_label": source_label,
        "source_index": source_index,
        "identity": [names[int(lbl)] if names is not None else str(int(lbl)) for lbl in source_label],
    })
    if frame is not None and rows is not None:
        picked = frame.iloc[rows[source_index]].reset_index(drop=True)
        for column in picked.columns:
            out[_free_name(str(column), set(out.columns))] = picked[column].to_numpy()
    return out


def _recorded_report(report: dict[str, Any], src: Path, out: Path) -> dict[str, Any]:
    """``report`` as ``out/subset_report.json`` holds it: no path that depends on the root.

    The output is the file's own folder, so it is left out; the source is named relative
    to it, in the skip messages too (they quote the source's path).
    """
    source = path_in_folder(src, out)

    def relative(value: Any) -> Any:
        return value.replace(str(src), source) if isinstance(value, str) else value

    recorded = {k: v for k, v in report.items() if k != "output"}
    recorded["source"] = source
    recorded["skipped_files"] = [
        {k: relative(v) for k, v in entry.items()} for entry in report["skipped_files"]
    ]
    return recorded


def _draw_identities(ds, groups, candidates: np.ndarray, config: SubsetConfig, skips: SkipLog):
    """Visit the candidates in a seeded order until ``config.identities`` have ``min_images``
    readable images: (accepted label -> readable positions, identities checked, rejected)."""
    visit = rng_for("subset", "identities", config.seed).permutation(candidates)
    accepted: dict[int, list[int]] = {}
    rejected = checked = 0
    for label in visit:
        if len(accepted) == config.identities:
            break
        checked += 1
        readable = _check_identity(ds, groups[int(label)], config, int(label), skips)
        if len(readable) >= config.min_images:
            accepted[int(label)] = readable
        else:
            rejected += 1
    return accepted, checked, rejected


def make_subset(src: str | Path, out: str | Path, config: SubsetConfig) -> dict[str, Any]:
    """Draw ``config.identities`` identities from ``src`` and write them to ``out``.

    Identities with at least ``min_images`` records are candidates; they are visited
    in a seeded random order and each is decode-checked (only up to ``max_images``
    readable images of a seeded sample when that is set) until enough identities have
    ``min_images`` readable images, so the choice is a uniform seeded draw among the
    eligible identities without decoding the whole source. Unreadable images are
    skipped and reported.

    Writes ``out/train.lmdb`` (FR layout; labels 0..N-1 by original label order, each
    identity's records contiguous and in source order), ``out/manifest.parquet``,
    ``out/subset_report.json`` and, with ``write_mask``, ``out/mask.npy`` (int64
    source record indices of the written images, in written order). ``out`` is
    written through a temporary directory and replaces any previous output.

    Returns:
        The report. ``subset_report.json`` holds the same without ``output`` and with the
        source (also where skipped files name it) relative to ``out``. ``eligible_identities``
        counts candidates minus those found short of readable images; it is exact
        when ``eligible_identities_exact`` is true (every candidate was checked) and
        an upper bound otherwise.

    Raises:
        Vec2FaceError: more identities requested than eligible (nothing is written),
            or ``out`` would contain ``src``.
    """
    src, out = Path(src), Path(out)
    if src.exists() and (src.resolve() == out.resolve() or src.resolve().is_relative_to(out.resolve())):
        raise Vec2FaceError(f"subset output {out} would replace its source {src}")
    skips = SkipLog()
    with open_dataset(src) as ds:
        labels = ds.labels
        order = np.argsort(labels, kind="stable")
        uniq, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        groups = {int(lbl): order[s:s + c] for lbl, s, c in zip(uniq, starts, counts)}
        candidates = np.asarray([lbl for lbl, c in zip(uniq, counts) if c >= config.min_images],
                                dtype=np.int64)
        if len(candidates) < config.identities:
            raise Vec2FaceError(
                f"subset: {config.identities} identities requested but only {len(candidates)} of "
                f"{len(uniq)} in {src} have at least {config.min_images} images"
            )
        accepted, checked, rejected = _draw_identities(ds, groups, candidates, config, skips)
        eligible = len(candidates) - rejected
        if len(accepted) < config.identities:
            raise Vec2FaceError(
                f"subset: {config.identities} identities requested but only {eligible} in {src} "
                f"have at least {config.min_images} readable images ({len(skips)} unreadable)"
            )
        chosen = sorted(accepted.items())
        frame, rows, matched = _source_manifest(src, ds)
        manifest = _manifest_rows(ds, chosen, frame, rows)
        positions = [p for _, ps in chosen for p in ps]
        report: dict[str, Any] = {
            "source": str(src),
            "source_format": ds.format,
            "output": str(out),
            "seed": config.seed,
            "min_images": config.min_images,
            "max_images": config.max_images,
            "requested": config.identities,
            "selected": len(chosen),
            "source_identities": len(uniq),
            "identities_with_min_records": len(candidates),
            "identities_checked": checked,
            "identities_rejected": rejected,
            "eligible_identities": eligible,
            "eligible_identities_exact": checked == len(candidates),
            "images_written": len(positions),
            "skipped": len(skips),
            "skipped_files": skips.entries,
            "source_manifest": matched,
            "mask": "mask.npy" if config.write_mask else None,
        }

        def records() -> Iterator[tuple[bytes, int]]:
            for new_label, (_, ps) in enumerate(chosen):
                for pos in ps:
                    yield ds.read_raw(pos)[0], new_label

        with atomic_dir(out) as tmp:
            write_lmdb(records(), tmp / "train.lmdb", layout="fr")
            write_manifest(manifest, tmp / MANIFEST_NAME)
            if config.write_mask:
                np.save(tmp / "mask.npy", manifest["source_index"].to_numpy(dtype=np.int64))
            recorded = _recorded_report(report, src, out)
            (tmp / "subset_report.json").write_text(json.dumps(recorded, indent=2) + "\n")
    log.info("subset: %d identities, %d images -> %s (%d skipped)",
             len(chosen), len(positions), out, len(skips))
    return report
