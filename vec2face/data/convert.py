"""Conversion between dataset formats, copying encoded image bytes unchanged."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vec2face.data.base import MaskLike, SkipLog, readable_records
from vec2face.data.detect import open_dataset
from vec2face.data.imagefolder import IMAGE_EXTENSIONS, write_imagefolder
from vec2face.data.lmdb_format import LAYOUTS, write_lmdb
from vec2face.data.recordio import resolve_recordio, write_recordio
from vec2face.errors import DataFormatError, OutputWriteError, Vec2FaceError
from vec2face.utils.io import atomic_dir, is_temporary_name

FORMATS = ("imagefolder", "lmdb", "recordio")

__all__ = ["FORMATS", "SkipLog", "convert_dataset", "readable_records"]

# What a conversion writes into a directory output: ``overwrite`` replaces a directory
# holding only these (an earlier conversion's output) and refuses one holding anything else.
_DIRECTORY_OUTPUT_FILES = ("train.lmdb", "train.rec", "train.idx")
_WRITTEN_IMAGE = re.compile(r"\d{6}(" + "|".join(re.escape(e) for e in IMAGE_EXTENSIONS) + ")")


def _writes_a_file(dst: Path, to: str) -> bool:
    return (to, dst.suffix) in (("lmdb", ".lmdb"), ("recordio", ".rec"))


def _outputs(dst: Path, to: str) -> list[Path]:
    """The paths a conversion to ``to`` at ``dst`` creates or replaces."""
    if to == "recordio" and dst.suffix == ".rec":
        return [dst, dst.with_suffix(".idx")]
    return [dst]


def _source_paths(src: Path) -> list[Path]:
    """The paths that make up the source dataset (a RecordIO ``.rec`` has its ``.idx``)."""
    if src.suffix in (".rec", ".idx"):
        return [src, *resolve_recordio(src)]
    return [src]


def _check_outside_source(src: Path, dst: Path, to: str) -> None:
    """Refuse an output that is the source, contains it, or lies inside it."""
    for out in _outputs(dst, to):
        o = out.resolve()
        for part in _source_paths(src):
            p = part.resolve()
            if o == p or p.is_relative_to(o):
                raise Vec2FaceError(
                    f"output {out} would replace the source {src}; choose another output"
                )
            if p.is_dir() and o.is_relative_to(p):
                raise Vec2FaceError(
                    f"output {out} lies inside the source dataset {src}, which must stay "
                    "untouched; choose an output outside it"
                )


def _written_by_convert(entry: Path) -> bool:
    """Whether ``entry`` of a directory output looks like something a conversion wrote."""
    if is_temporary_name(entry.name):
        return True  # a killed writer's temporary, removed by the next write
    if entry.is_symlink():
        return False
    if entry.name in _DIRECTORY_OUTPUT_FILES:
        return entry.is_file()
    if entry.is_dir() and not entry.name.startswith("."):
        return all(
            f.is_file() and not f.is_symlink() and _WRITTEN_IMAGE.fullmatch(f.name)
            for f in entry.iterdir()
        )
    return False


def _check_replaceable(dst: Path, to: str, overwrite: bool) -> None:
    """Refuse to replace anything but an earlier conversion's output at ``dst``."""
    existing = [p for p in _outputs(dst, to) if p.exists() or p.is_symlink()]
    if not existing:
        return
    if not overwrite:
        raise Vec2FaceError(f"output already exists: {existing[0]} (pass overwrite to replace it)")
    if _writes_a_file(dst, to):
        for path in existing:
            if path.is_dir():
                raise Vec2FaceError(
                    f"{path} is a directory; converting to {to} here would replace it with a file"
                )
        return
    if not dst.is_dir():
        raise Vec2FaceError(
            f"{dst} is a file; converting to {to} here would replace it with a directory"
        )
    for entry in sorted(dst.iterdir()):
        if not _written_by_convert(entry):
            raise Vec2FaceError(
                f"{dst}: holds {entry.name}, which a conversion does not write; overwrite "
                "replaces only an earlier conversion's output (move it away or choose "
                "another output)"
            )


def _at_least_one(records: Iterable[tuple], src: Path, skips: SkipLog) -> Iterator[tuple]:
    """Pass ``records`` through; fail before the writer commits when there were none.

    The error is raised inside the writer's loop, so its temporary output is removed.
    """
    count = 0
    for record in records:
        count += 1
        yield record
    if count:
        return
    if skips:
        first = skips.entries[0]["reason"]
        raise DataFormatError(
            f"{src}: every record was skipped ({len(skips)} unreadable; first: {first}); "
            "nothing written"
        )
    raise DataFormatError(f"{src}: holds no records; nothing written")


def _write_reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, OutputWriteError) and exc.__cause__ else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause)


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
        overwrite: replace an existing ``dst`` instead of refusing; only an earlier
            conversion's output is replaced (a directory holding anything else is refused).

    Returns:
        A summary: source, destination, format, layout, written, skipped, skipped_files.

    Raises:
        Vec2FaceError: unknown format/layout, training layout without source features,
            ``dst`` is, contains or lies inside ``src``, or ``dst`` exists and
            ``overwrite`` is False or it holds files a conversion does not write.
        DataFormatError: the source is unreadable, or no record could be copied (every
            one skipped, or none at all); nothing is written then.
        OutputWriteError: the output could not be written (a full disk); names ``dst``.
    """
    if to not in FORMATS:
        raise Vec2FaceError(f"unknown target format {to!r}; known: {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise Vec2FaceError(f"unknown LMDB layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src, dst = Path(src), Path(dst)
    if src.exists():  # a missing source is open_dataset's error
        _check_outside_source(src, dst, to)
    _check_replaceable(dst, to, overwrite)
    skips = SkipLog()
    with open_dataset(src, mask=mask) as ds:
        if to == "lmdb" and layout == "training" and not ds.has_features:
            raise Vec2FaceError(
                f"{src}: has no teacher features; the LMDB training layout needs them "
                "(use --layout fr)"
            )
        records = _at_least_one(readable_records(ds, range(len(ds)), skips), src, skips)
        try:
            written = _write(records, dst, to, layout, ds.identity_names)
        except (OutputWriteError, OSError) as exc:
            raise OutputWriteError(
                f"{dst}: cannot write the {to} output ({_write_reason(exc)})"
            ) from exc
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


def _write(
    records: Iterable[tuple], dst: Path, to: str, layout: str, identity_names: list[str] | None
) -> int:
    """Write ``records`` at ``dst`` in format ``to``; an existing ``dst`` is replaced."""
    if to == "imagefolder":
        return write_imagefolder(records, dst, identity_names=identity_names, overwrite=True)
    if _writes_a_file(dst, to):
        if to == "lmdb":
            return write_lmdb(records, dst, layout=layout)
        return write_recordio(records, dst)
    with atomic_dir(dst, overwrite=True) as tmp:
        if to == "lmdb":
            return write_lmdb(records, tmp / "train.lmdb", layout=layout)
        return write_recordio(records, tmp)
