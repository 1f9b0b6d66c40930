"""Format detection (:func:`open_dataset`) and dataset summaries (:func:`inspect_dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vec2face.data.base import FaceDataset, MaskLike
from vec2face.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset
from vec2face.data.images import image_size
from vec2face.data.lmdb_format import LmdbDataset
from vec2face.data.recordio import RecordIODataset
from vec2face.errors import DataFormatError

_LOOKED_FOR = (
    "train.rec + train.idx (recordio), a *.lmdb file or a directory with data.mdb (lmdb), "
    "a directory holding one *.lmdb, or <root>/<identity>/<image>"
    + "|".join(IMAGE_EXTENSIONS) + " (imagefolder)"
)


def detect_format(path: str | Path) -> tuple[str, Path]:
    """The format of the dataset at ``path`` and the path its reader should open.

    Raises:
        DataFormatError: the path does not exist, is a verification ``.bin``, or holds
            no recognised dataset (the message lists what was looked for).
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"dataset path does not exist: {path}")
    if path.suffix == ".bin":
        raise DataFormatError(
            f"{path}: a .bin file is a verification benchmark (read it with read_bin), "
            "not a training dataset"
        )
    if path.is_file():
        if path.suffix in (".lmdb", ".mdb"):
            return "lmdb", path
        if path.suffix in (".rec", ".idx"):
            return "recordio", path
        raise DataFormatError(f"{path}: not a recognised dataset file; looked for {_LOOKED_FOR}")
    if (path / "train.rec").is_file() and (path / "train.idx").is_file():
        return "recordio", path
    if (path / "data.mdb").is_file():
        return "lmdb", path
    lmdbs = sorted(p for p in path.glob("*.lmdb") if not p.name.startswith("."))
    if len(lmdbs) == 1:
        return "lmdb", lmdbs[0]
    if len(lmdbs) > 1:
        raise DataFormatError(
            f"{path}: holds {len(lmdbs)} *.lmdb datasets ({', '.join(p.name for p in lmdbs)}); "
            "name one"
        )
    if any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return "imagefolder", path
    raise DataFormatError(f"{path}: no dataset found; looked for {_LOOKED_FOR}")


_READERS = {"imagefolder": ImageFolderDataset, "lmdb": LmdbDataset, "recordio": RecordIODataset}


def open_dataset(path: str | Path, mask: MaskLike = None) -> FaceDataset:
    """Open the dataset at ``path``, detecting its format.

    Args:
        path: a RecordIO directory or ``.rec`` file, an LMDB file or directory, a
            dataset folder holding one ``*.lmdb``, or an image-folder root.
        mask: optional record selection: a ``.npy`` path or a 1-D int array of
            record indices, applied in mask order.

    Raises:
        DataFormatError: see :func:`detect_format` and each reader.
    """
    fmt, target = detect_format(path)
    return _READERS[fmt](target, mask=mask)


def inspect_dataset(path: str | Path, mask: MaskLike = None) -> dict[str, Any]:
    """A JSON-ready summary: format, path, images, identities, image_size [H, W], has_features.

    The image size is read from the first record's header.
    """
    with open_dataset(path, mask=mask) as ds:
        size: list[int] | None = None
        if len(ds):
            data, _, _ = ds.read_raw(0)
            size = list(image_size(data, ds.location(0)))
        return {
            "format": ds.format,
            "path": str(ds.path),
            "images": len(ds),
            "identities": ds.num_identities,
            "image_size": size,
            "has_features": ds.has_features,
        }
