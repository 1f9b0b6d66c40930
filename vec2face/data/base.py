"""The dataset interface every on-disk format implements, and record masks."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from vec2face.data.images import decode_image
from vec2face.errors import DataFormatError
from vec2face.utils.io import read_npy

MaskLike = str | Path | np.ndarray | None
# labels are held as int64 (``FaceDataset.labels``)
MAX_LABEL = int(np.iinfo(np.int64).max)


@dataclass(frozen=True, eq=False)
class Sample:
    """One decoded training record.

    Attributes:
        image: uint8 (H, W, 3) RGB.
        label: identity label.
        feature: float32 (D,) teacher feature when the format stores one, else None.
    """

    image: np.ndarray
    label: int
    feature: np.ndarray | None = None


def load_mask(mask: MaskLike, num_records: int, dataset_path: Path) -> np.ndarray | None:
    """Validate a record mask (a ``.npy`` path or an array) against ``num_records``.

    Returns:
        int64 (M,) record indices in mask order, or None when ``mask`` is None.

    Raises:
        DataFormatError: naming the mask and the fault (unreadable, not 1-D integer,
            index out of range).
    """
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        name = str(mask)
        arr = read_npy(mask, "mask file", error=DataFormatError)
    else:
        name = "mask array"
        arr = np.asarray(mask)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise DataFormatError(
            f"{name}: a mask must be a 1-D integer array of record indices, "
            f"got {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= num_records))
    if bad.size:
        raise DataFormatError(
            f"{name}: index {int(arr[bad[0]])} at position {int(bad[0])} is out of range for "
            f"{dataset_path} ({num_records} records)"
        )
    return arr


class FaceDataset(abc.ABC):
    """A labelled face dataset: ``len(ds)``, ``ds[i] -> Sample``, iteration.

    Subclasses describe the underlying records (``_num_records``, ``_record_labels``,
    ``_read_record``, ``_record_location``); this base applies the optional mask, so
    position ``i`` of the dataset is record ``record_index(i)`` of the file.

    Attributes:
        format: ``"imagefolder"``, ``"lmdb"`` or ``"recordio"``.
        path: the dataset's path on disk.
        identity_names: name of each label (index = label) where the format keeps
            names (image folders), else None.
    """

    format: str = ""
    identity_names: list[str] | None = None

    def __init__(self, path: Path, mask: MaskLike = None) -> None:
        self.path = Path(path)
        self._mask = load_mask(mask, self._num_records(), self.path)
        self._labels: np.ndarray | None = None

    # ---- what each format provides -------------------------------------------------
    @abc.abstractmethod
    def _num_records(self) -> int:
        """Number of image records in the file, ignoring the mask."""

    @abc.abstractmethod
    def _record_labels(self) -> np.ndarray:
        """int64 label of every record (ignoring the mask), without decoding images."""

    @abc.abstractmethod
    def _read_record(self, j: int) -> tuple[bytes, int, np.ndarray | None]:
        """Encoded image bytes, label and feature of record ``j``."""

    @abc.abstractmethod
    def _record_location(self, j: int) -> str:
        """Where record ``j`` lives (a file path or ``<file> record <key>``), for errors."""

    @property
    @abc.abstractmethod
    def has_features(self) -> bool:
        """Whether records carry a teacher feature."""

    # ---- the public interface ------------------------------------------------------
    def __len__(self) -> int:
        return len(self._mask) if self._mask is not None else self._num_records()

    def record_index(self, i: int) -> int:
        """Index of position ``i`` in the file's own record order (after the mask)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.path}: index {i} out of range for {n} samples")
        i = int(i) + n if i < 0 else int(i)
        return int(self._mask[i]) if self._mask is not None else i

    @property
    def record_indices(self) -> np.ndarray:
        """int64 (N,) record index of every position (``record_index`` vectorised)."""
        if self._mask is not None:
            return self._mask.copy()
        return np.arange(self._num_records(), dtype=np.int64)

    def location(self, i: int) -> str:
        """Where sample ``i`` is stored, as named in error messages."""
        return self._record_location(self.record_index(i))

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,) label of every sample, computed once without decoding images."""
        if self._labels is None:
            all_labels = np.asarray(self._record_labels(), dtype=np.int64)
            self._labels = all_labels[self._mask] if self._mask is not None else all_labels
        return self._labels

    @property
    def num_identities(self) -> int:
        """Number of distinct labels among the samples."""
        return int(np.unique(self.labels).size)

    def read_raw(self, i: int) -> tuple[bytes, int, np.ndarray | None]:
        """Encoded image bytes, label and feature of sample ``i``, without decoding."""
        return self._read_record(self.record_index(i))

    def __getitem__(self, i: int) -> Sample:
        j = self.record_index(i)
        data, label, feature = self._read_record(j)
        return Sample(image=decode_image(data, self._record_location(j)), label=label,
                      feature=feature)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        """Release file handles; the dataset reopens them on the next read."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, samples={len(self)})"


def split_record(record: tuple, index: int, dest: Path) -> tuple[bytes, int, np.ndarray | None]:
    """Validate one writer input ``(bytes, label[, feature])``; errors name ``dest`` and ``index``."""
    if not isinstance(record, (tuple, list)) or len(record) not in (2, 3):
        raise DataFormatError(
            f"{dest}: record {index} must be (image bytes, label) or (image bytes, label, feature)"
        )
    data, label = record[0], record[1]
    feature = record[2] if len(record) == 3 else None
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes) or not data:
        raise DataFormatError(f"{dest}: record {index} image must be non-empty encoded bytes")
    if (isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer))
            or not 0 <= label <= MAX_LABEL):
        raise DataFormatError(
            f"{dest}: record {index} label must be an int in 0..{MAX_LABEL}, got {label!r}"
        )
    if feature is not None:
        feature = np.asarray(feature, dtype=np.float32)
        if feature.ndim != 1:
            raise DataFormatError(
                f"{dest}: record {index} feature must be 1-D, got shape {feature.shape}"
            )
    return data, int(label), feature


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
