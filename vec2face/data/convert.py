"""Conversion between dataset formats, copying encoded image bytes unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vec2face.data.base import FaceDataset, MaskLike
from vec2face.data.detect import open_dataset
from vec2face.data.imagefolder import write_imagefolder
from vec2face.data.images import decode_image
from vec2face.data.lmdb_format import LAYOUTS, write_lmdb
from vec2face.data.recordio import write_recordio
from vec2face.errors import DataFormatError, Vec2FaceError
from vec2face.utils.io import atomic_dir

FORMATS = ("imagefolder", "lmdb", "recordio")


@dataclass
class SkipLog:
    """Records that were not copied, with the reason (one line each)."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, source_index: int, location: str, reason: str) -> None:
        self.entries.append({"source_index": int(source_index), "location": location,
                             "reason": reason})

    def __len__(self) -> int:
        return len(self.entries)


def readable_records(
    ds: FaceDataset, positions: Iterable[int], skips: SkipLog
) -> Iterator[tuple]:
    """Yield ``(bytes, label[, feature])`` of the given positions whose image decodes.

    Records that cannot be read or decoded are added to ``skips`` and not yielded.
    """
    for i in positions:
        i = int(i)
        where = ds.location(i)
        try:
            data, label, feature = ds.read_raw(i)
            decode_image(data, where)
        except DataFormatError as exc:
            skips.add(ds.record_index(i), where, str(exc))
            continue
        yield (data, label) if feature is None else (data, label, feature)


def convert_dataset(
    src: str | Path,
    dst: str | Path,
    to: str,
    layout: str = "fr",
    mask: MaskLike = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Copy the dataset at ``src`` into format ``to`` at ``dst``.

    Encoded bytes are copied without re-encoding; every image is decode-checked and
    unreadable ones are skipped and reported. Labels are kept (image folders name
    identity folders after the source's identity names when it has them).

    Args:
        src: any dataset :func:`open_dataset` reads.
        dst: output. ``imagefolder``: the root directory. ``lmdb``: a ``*.lmdb`` file,
            or a directory that gets ``train.lmdb``. ``recordio``: a directory that gets
            ``train.rec``/``train.idx``, or a ``*.rec`` path.
        to: ``"imagefolder"``, ``"lmdb"`` or ``"recordio"``.
        layout: LMDB record layout, ``"fr"`` or ``"training"`` (needs source features).
        mask: optional record mask applied to the source.
        overwrite: replace an existing ``dst`` instead of refusing.

    Returns:
        A summary: source, destination, format, layout, written, skipped, skipped_files.

    Raises:
        Vec2FaceError: unknown format/layout, training layout without source features,
            or ``dst`` exists and ``overwrite`` is False.
    """
    if to not in FORMATS:
        raise Vec2FaceError(f"unknown target format {to!r}; known: {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise Vec2FaceError(f"unknown LMDB layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise Vec2FaceError(f"output already exists: {dst} (pass overwrite to replace it)")
    skips = SkipLog()
    with open_dataset(src, mask=mask) as ds:
        if to == "lmdb" and layout == "training" and not ds.has_features:
            raise Vec2FaceError(
                f"{src}: has no teacher features; the LMDB training layout needs them "
                "(use --layout fr)"
            )
        records = readable_records(ds, range(len(ds)), skips)
        if to == "imagefolder":
            written = write_imagefolder(records, dst, identity_names=ds.identity_names,
                                        overwrite=overwrite)
        elif to == "lmdb" and dst.suffix == ".lmdb":
            written = write_lmdb(records, dst, layout=layout)
        elif to == "recordio" and dst.suffix == ".rec":
            written = write_recordio(records, dst)
        else:
            with atomic_dir(dst, overwrite=overwrite) as tmp:
                if to == "lmdb":
                    written = write_lmdb(records, tmp / "train.lmdb", layout=layout)
                else:
                    written = write_recordio(records, tmp)
        source_format = ds.format
    return {
        "source": str(src),
        "source_format": source_format,
        "destination": str(dst),
        "format": to,
        "layout": layout if to == "lmdb" else None,
        "written": written,
        "skipped": len(skips),
        "skipped_files": skips.entries,
    }
