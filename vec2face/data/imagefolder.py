"""Image-folder datasets: ``<root>/<identity>/<image>.(jpg|jpeg|png)``.

Labels are the index of the identity folder among the non-empty identity folders in
sorted name order (the WebFace4M raw layout and torchvision's ``ImageFolder``).
Files in the root itself (``manifest.parquet``, previews) and hidden entries are ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vec2face.data.base import FaceDataset, MaskLike, split_record
from vec2face.data.images import sniff_image_format
from vec2face.errors import DataFormatError, OutputWriteError
from vec2face.utils.io import atomic_dir

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _inside(path: Path, root_real: Path, root: Path) -> None:
    real = path.resolve()
    if real != root_real and not real.is_relative_to(root_real):
        raise DataFormatError(f"{path}: resolves to {real}, outside the dataset root {root}")


def _sorted_entries(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


class ImageFolderDataset(FaceDataset):
    """A directory of identity folders holding encoded images.

    Attributes:
        identity_names: folder name of each label.
        empty_identities: identity folders skipped because they hold no image.
        files: path of each record relative to the root (``<identity>/<file>``).
    """

    format = "imagefolder"

    def __init__(self, root: str | Path, mask: MaskLike = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataFormatError(f"image folder root not found or not a directory: {root}")
        root_real = root.resolve()
        names: list[str] = []
        files: list[str] = []
        labels: list[int] = []
        self.empty_identities: list[str] = []
        for entry in _sorted_entries(root):
            if not entry.is_dir():
                continue
            ident_dir = Path(entry.path)
            _inside(ident_dir, root_real, root)
            images = [
                e for e in _sorted_entries(ident_dir)
                if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file()
            ]
            if not images:
                self.empty_identities.append(entry.name)
                continue
            label = len(names)
            names.append(entry.name)
            for img in images:
                if img.is_symlink():
                    _inside(Path(img.path), root_real, root)
                files.append(f"{entry.name}/{img.name}")
                labels.append(label)
        if not names:
            raise DataFormatError(
                f"{root}: no identity folder with images "
                f"(looked for <root>/<identity>/<image>{'|'.join(IMAGE_EXTENSIONS)})"
            )
        if self.empty_identities:
            shown = ", ".join(self.empty_identities[:5])
            more = "" if len(self.empty_identities) <= 5 else ", ..."
            log.warning("%s: skipped %d empty identity folder(s): %s%s",
                        root, len(self.empty_identities), shown, more)
        self.identity_names = names
        self.files = files
        self._file_labels = np.asarray(labels, dtype=np.int64)
        super().__init__(root, mask)

    def _num_records(self) -> int:
        return len(self.files)

    def _record_labels(self) -> np.ndarray:
        return self._file_labels

    def _record_location(self, j: int) -> str:
        return str(self.path / self.files[j])

    @property
    def has_features(self) -> bool:
        return False

    def _read_record(self, j: int) -> tuple[bytes, int, np.ndarray | None]:
        file = self.path / self.files[j]
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DataFormatError(f"{file}: cannot read ({exc.strerror or exc})") from None
        return data, int(self._file_labels[j]), None


def write_imagefolder(
    records: Iterable[tuple],
    root: str | Path,
    ext: str = "jpg",
    identity_names: list[str] | dict[int, str] | None = None,
    overwrite: bool = False,
) -> int:
    """Write ``(image bytes, label[, feature])`` records as ``<root>/<identity>/<n>.<ext>``.

    Bytes are copied as they are. Identity folders are named by ``identity_names[label]``
    when given, else by the label zero-padded to a common width, so sorted folder order
    is label order. Features cannot be stored in image folders and are dropped.

    Args:
        records: the records; labels need not be contiguous.
        root: the output directory; it appears only when complete.
        ext: extension for JPEG content (``"jpg"`` or ``"jpeg"``); PNG content is
            written as ``.png``.
        identity_names: optional folder name per label.
        overwrite: replace an existing ``root`` instead of refusing.

    Returns:
        The number of images written.

    Raises:
        DataFormatError: a record is malformed or its bytes are neither JPEG nor PNG.
        FileExistsError: ``root`` exists and ``overwrite`` is False.
        OutputWriteError: a file could not be written (a full disk); names ``root``.
    """
    root = Path(root)
    if ext.lower().lstrip(".") not in ("jpg", "jpeg"):
        raise ValueError(f"ext must be 'jpg' or 'jpeg' (the extension of JPEG content), got {ext!r}")
    jpeg_ext = ext.lower().lstrip(".")
    if root.exists() and not overwrite:
        raise FileExistsError(f"output already exists: {root}")
    try:
        return _write_folders(records, root, jpeg_ext, identity_names, overwrite)
    except OSError as exc:
        # a full disk or a read-only folder: say which output, not only the errno
        raise OutputWriteError(
            f"{root}: cannot write the image folder ({exc.strerror or exc})"
        ) from exc


def _write_folders(
    records: Iterable[tuple],
    root: Path,
    jpeg_ext: str,
    identity_names: list[str] | dict[int, str] | None,
    overwrite: bool,
) -> int:
    """The body of :func:`write_imagefolder`: fill a temporary folder, then rename it."""
    counts: dict[int, int] = {}
    written = 0
    with atomic_dir(root, overwrite=overwrite) as tmp:
        for index, record in enumerate(records):
            data, label, _ = split_record(record, index, root)
            kind = sniff_image_format(data)
            if kind is None:
                raise DataFormatError(f"{root}: record {index} is neither JPEG nor PNG data")
            n = counts.get(label, 0)
            counts[label] = n + 1
            folder = tmp / str(label)
            if n == 0:
                folder.mkdir()
            suffix = "png" if kind == "png" else jpeg_ext
            (folder / f"{n:06d}.{suffix}").write_bytes(data)
            written += 1
        if counts:
            width = len(str(max(counts)))
            final = {label: _folder_name(label, width, identity_names) for label in counts}
            if len(set(final.values())) != len(final):
                raise DataFormatError(f"{root}: identity_names gives two labels the same folder")
            for label in final:
                os.replace(tmp / str(label), tmp / f".{label}.renaming")
            for label, name in final.items():
                os.replace(tmp / f".{label}.renaming", tmp / name)
    return written


def _folder_name(label: int, width: int, names: list[str] | dict[int, str] | None) -> str:
    if names is None:
        return f"{label:0{width}d}"
    try:
        name = names[label]
    except (IndexError, KeyError):
        raise DataFormatError(f"identity_names has no name for label {label}") from None
    if not name or "/" in name or name.startswith(".") or name in ("..",):
        raise DataFormatError(f"identity_names[{label}] is not a usable folder name: {name!r}")
    return name
