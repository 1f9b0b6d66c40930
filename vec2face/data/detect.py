"""Format detection (:func:`open_dataset`) and dataset summaries (:func:`inspect_dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vec2face.data.base import FaceDataset, MaskLike, SkipLog, readable_records
from vec2face.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset
from vec2face.data.images import decode_image, image_size
from vec2face.data.lmdb_format import LmdbDataset
from vec2face.data.recordio import RecordIODataset
from vec2face.data.verification_bin import read_bin
from vec2face.errors import DataFormatError

_SHOWN_UNREADABLE = 10  # unreadable files listed in a deep summary (all are counted)

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
            f"{path}: a .bin file is a verification benchmark, not a training dataset "
            "(`vec2face data inspect` summarises it, `vec2face fr evaluate` scores a model "
            "on it, read_bin reads it)"
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


def inspect_dataset(path: str | Path, mask: MaskLike = None, deep: bool = False) -> dict[str, Any]:
    """A JSON-ready summary of a dataset or a verification ``.bin``.

    A dataset gives format, path, images, identities, image_size [H, W] and has_features;
    the image size is read from the first record's header. A ``.bin`` gives format
    ``"verification_bin"``, path, pairs, genuine, impostor, images and image_size.

    Args:
        path: anything :func:`open_dataset` reads, or a verification ``.bin``.
        mask: optional record selection (datasets only).
        deep: decode every image; the summary then also holds ``unreadable`` (how many
            failed to decode) and ``unreadable_files`` (the first ten, with the reason),
            and the image size comes from the first readable image.

    Raises:
        DataFormatError: see :func:`open_dataset` and :func:`read_bin`; a mask given
            with a ``.bin``.
    """
    path = Path(path)
    if path.suffix == ".bin" and path.is_file():
        if mask is not None:
            raise DataFormatError(f"{path}: a mask selects dataset records; a .bin takes none")
        return _inspect_bin(path, deep)
    with open_dataset(path, mask=mask) as ds:
        summary: dict[str, Any] = {
            "format": ds.format,
            "path": str(ds.path),
            "images": len(ds),
            "identities": ds.num_identities,
            "image_size": None,
            "has_features": ds.has_features,
        }
        if deep:
            skips = SkipLog()
            for data, *_ in readable_records(ds, range(len(ds)), skips):
                if summary["image_size"] is None:
                    summary["image_size"] = list(image_size(data))
            summary["unreadable"] = len(skips)
            summary["unreadable_files"] = skips.entries[:_SHOWN_UNREADABLE]
        elif len(ds):
            data, _, _ = ds.read_raw(0)
            summary["image_size"] = list(image_size(data, ds.location(0)))
        return summary


def _inspect_bin(path: Path, deep: bool) -> dict[str, Any]:
    images, issame = read_bin(path)
    genuine = int(sum(issame))
    summary: dict[str, Any] = {
        "format": "verification_bin",
        "path": str(path),
        "pairs": len(issame),
        "genuine": genuine,
        "impostor": len(issame) - genuine,
        "images": len(images),
        "image_size": list(image_size(images[0], f"{path} image 0")) if images else None,
    }
    if deep:
        unreadable = []
        for k, data in enumerate(images):
            try:
                decode_image(data, f"{path} image {k}")
            except DataFormatError as exc:
                unreadable.append({"image": k, "reason": str(exc)})
        summary["unreadable"] = len(unreadable)
        summary["unreadable_files"] = unreadable[:_SHOWN_UNREADABLE]
    return summary
