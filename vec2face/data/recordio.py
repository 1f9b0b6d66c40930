"""insightface RecordIO datasets (``train.rec`` + ``train.idx``), read and written without MXNet.

Framing (dmlc-core ``RecordIOWriter``): each record is one or more frames, each
``uint32 magic 0xced7230a``, ``uint32 lrec`` (upper 3 bits: continuation flag, lower
29 bits: length), the payload, zero padding to 4 bytes. A writer splits a payload at
every 4-byte aligned occurrence of the magic word and drops that word; flags are
0 (whole record), 1 (first part), 2 (middle), 3 (last), and the reader puts the magic
back between parts. All integers are little-endian.

Payload: ``IRHeader`` = (uint32 flag, float32 label, uint64 id, uint64 id2); when
``flag > 0`` the label is instead ``flag`` float32 values following the header; then
the image file bytes.

insightface convention (``MXFaceDataset`` in ``arcface_torch/dataset.py`` and the
``face2rec`` tools): record 0 is a header record with ``flag = 2`` and label
``[n_images + 1, n_images + 1 + n_identities]``. Image records are indices
``1 .. label[0] - 1``; records ``label[0] .. label[1] - 1`` are one per identity, each
with label ``[first image index, end image index)``. If record 0 has ``flag == 0``
there is no header and every index in ``.idx`` is an image. The image label is
``header.label`` (or its first value when ``flag > 0``). ``.idx`` is text,
``<index>\\t<byte offset>`` per line.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vec2face.data.base import FaceDataset, MaskLike, split_record
from vec2face.errors import DataFormatError, OutputWriteError
from vec2face.utils.io import atomic_path

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)
# float32 holds integers exactly only up to 2**24; indices beyond would be corrupted
_MAX_INDEX = 1 << 24
# the largest image label a float32 label field holds exactly (16777217 reads back as 2**24)
MAX_LABEL = 1 << 24


def _frames(payload: bytes) -> bytes:
    """Frame ``payload`` the way dmlc-core's ``RecordIOWriter::WriteRecord`` does."""
    n = len(payload)
    if n > _LEN_MASK:
        raise DataFormatError(f"record of {n} bytes exceeds the RecordIO limit of 2**29 bytes")
    out = bytearray()
    start = 0
    pos = payload.find(_MAGIC_BYTES)
    while pos != -1 and pos + 4 <= n:
        if pos % 4 == 0:
            flag = 1 if start == 0 else 2
            out += struct.pack("<II", MAGIC, (flag << 29) | (pos - start))
            out += payload[start:pos]
            start = pos + 4
            pos = payload.find(_MAGIC_BYTES, start)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1)
    flag = 3 if start else 0
    tail = payload[start:]
    out += struct.pack("<II", MAGIC, (flag << 29) | len(tail))
    out += tail
    out += b"\0" * (-len(tail) % 4)
    return bytes(out)


def read_frame(buf: Any, offset: int, path: Path | str) -> bytes:
    """Reassemble the record starting at ``offset`` of ``buf`` (bytes or mmap).

    Raises:
        DataFormatError: naming ``path`` and the offset of a wrong magic word, an
            invalid continuation flag or a truncated frame.
    """
    size = len(buf)
    parts: list[bytes] = []
    pos = offset
    first = True
    while True:
        if pos + 8 > size:
            raise DataFormatError(f"{path}: truncated record at offset {pos} (no frame header)")
        magic, lrec = struct.unpack_from("<II", buf, pos)
        if magic != MAGIC:
            raise DataFormatError(
                f"{path}: bad magic 0x{magic:08x} at offset {pos} (expected 0x{MAGIC:08x})"
            )
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        if (first and cflag not in (0, 1)) or (not first and cflag not in (2, 3)):
            raise DataFormatError(f"{path}: unexpected continuation flag {cflag} at offset {pos}")
        end = pos + 8 + length
        if end > size:
            raise DataFormatError(
                f"{path}: truncated record at offset {pos} (frame needs {length} bytes, "
                f"{size - pos - 8} left)"
            )
        parts.append(bytes(buf[pos + 8:end]))
        if cflag in (0, 3):
            return b"".join(parts)
        parts.append(_MAGIC_BYTES)
        pos = end + (-length % 4)
        first = False


def pack_record(label: float | list[float], data: bytes, id_: int = 0, id2: int = 0) -> bytes:
    """IRHeader + optional label array + ``data`` (mxnet's ``recordio.pack``)."""
    if isinstance(label, (list, tuple, np.ndarray)):
        values = np.asarray(label, dtype="<f4")
        header = struct.pack(_IR_FORMAT, len(values), 0.0, id_, id2)
        return header + values.tobytes() + data
    return struct.pack(_IR_FORMAT, 0, float(label), id_, id2) + data


def unpack_record(payload: bytes, where: str) -> tuple[int, np.ndarray, int, int, bytes]:
    """(flag, label values, id, id2, data) of a payload (mxnet's ``recordio.unpack``)."""
    if len(payload) < _IR_SIZE:
        raise DataFormatError(f"{where}: record of {len(payload)} bytes is shorter than its header")
    flag, label, id_, id2 = struct.unpack_from(_IR_FORMAT, payload, 0)
    if flag > 0:
        end = _IR_SIZE + 4 * flag
        if len(payload) < end:
            raise DataFormatError(f"{where}: label array of {flag} values runs past the record")
        values = np.frombuffer(payload, dtype="<f4", count=flag, offset=_IR_SIZE).astype(np.float32)
        return flag, values, id_, id2, payload[end:]
    return flag, np.asarray([label], dtype=np.float32), id_, id2, payload[_IR_SIZE:]


def _int_label(values: np.ndarray, where: str) -> int:
    value = float(values[0])
    if not value.is_integer() or value < 0:
        raise DataFormatError(f"{where}: label {value} is not a non-negative integer")
    return int(value)


def _read_idx(idx_path: Path) -> dict[int, int]:
    offsets: dict[int, int] = {}
    try:
        text = idx_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{idx_path}: cannot read index ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 2:
                raise ValueError
            index, offset = int(fields[0]), int(fields[1])
        except ValueError:
            raise DataFormatError(
                f"{idx_path}: line {lineno} is not '<index>\\t<offset>': {line[:60]!r}"
            ) from None
        offsets[index] = offset
    return offsets


def resolve_recordio(path: str | Path) -> tuple[Path, Path]:
    """(``.rec``, ``.idx``) paths from a directory (``train.rec``) or a ``.rec``/prefix path."""
    path = Path(path)
    if path.is_dir():
        return path / "train.rec", path / "train.idx"
    prefix = path.with_suffix("") if path.suffix in (".rec", ".idx") else path
    return prefix.with_suffix(".rec"), prefix.with_suffix(".idx")


class RecordIODataset(FaceDataset):
    """An insightface ``train.rec`` / ``train.idx`` pair.

    Attributes:
        identity_ranges: ``(first, end)`` image-record ranges per identity record, when
            the file has a header record (insightface convention), else None.
    """

    format = "recordio"

    def __init__(self, path: str | Path, mask: MaskLike = None) -> None:
        self.rec_path, self.idx_path = resolve_recordio(path)
        for p in (self.rec_path, self.idx_path):
            if not p.is_file():
                raise DataFormatError(f"RecordIO file not found: {p}")
        self._mm: mmap.mmap | None = None
        self._fh: Any = None
        self._pid = -1
        self._offsets = _read_idx(self.idx_path)
        size = self.rec_path.stat().st_size
        for index, offset in self._offsets.items():
            if not 0 <= offset < size:
                raise DataFormatError(
                    f"{self.idx_path}: offset {offset} of record {index} is outside {self.rec_path} "
                    f"({size} bytes)"
                )
        self.identity_ranges: list[tuple[int, int]] | None = None
        self._image_indices = self._find_images()
        self._labels_cache: np.ndarray | None = None
        super().__init__(Path(path), mask)

    def _buffer(self) -> mmap.mmap:
        if self._mm is None or self._pid != os.getpid():
            self._fh = open(self.rec_path, "rb")  # noqa: SIM115 - lives as long as the mmap
            try:
                self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise DataFormatError(f"{self.rec_path}: empty RecordIO file") from None
            self._pid = os.getpid()
        return self._mm

    def close(self) -> None:
        if self._pid == os.getpid():
            if self._mm is not None:
                self._mm.close()
            if self._fh is not None:
                self._fh.close()
        self._mm = None
        self._fh = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_mm=None, _fh=None, _pid=-1)
        return state

    def _payload(self, index: int) -> bytes:
        offset = self._offsets.get(index)
        if offset is None:
            raise DataFormatError(f"{self.idx_path}: no entry for record {index}")
        return read_frame(self._buffer(), offset, self.rec_path)

    def _find_images(self) -> np.ndarray:
        if not self._offsets:
            raise DataFormatError(f"{self.idx_path}: index lists no records")
        if 0 in self._offsets:
            flag, label, *_ = unpack_record(self._payload(0), f"{self.rec_path} record 0")
            if flag > 0:
                if flag < 2:
                    raise DataFormatError(f"{self.rec_path} record 0: header label needs 2 values")
                first_id, end_id = int(label[0]), int(label[1])
                images = np.arange(1, first_id, dtype=np.int64)
                missing = [int(i) for i in images if int(i) not in self._offsets][:1]
                if missing:
                    raise DataFormatError(
                        f"{self.idx_path}: header says images 1..{first_id - 1} but record "
                        f"{missing[0]} is not indexed"
                    )
                self.identity_ranges = []
                for k in range(first_id, end_id):
                    if k in self._offsets:
                        _, rng, *_ = unpack_record(self._payload(k), f"{self.rec_path} record {k}")
                        if rng.size >= 2:
                            self.identity_ranges.append((int(rng[0]), int(rng[1])))
                return images
        return np.asarray(sorted(self._offsets), dtype=np.int64)

    def _num_records(self) -> int:
        return len(self._image_indices)

    def _record_location(self, j: int) -> str:
        index = int(self._image_indices[j])
        return f"{self.rec_path} record {index} (offset {self._offsets.get(index)})"

    def _read_record(self, j: int) -> tuple[bytes, int, np.ndarray | None]:
        index = int(self._image_indices[j])
        where = self._record_location(j)
        _, label, _, _, data = unpack_record(self._payload(index), where)
        return data, _int_label(label, where), None

    def _record_labels(self) -> np.ndarray:
        buf = self._buffer()
        labels = np.empty(len(self._image_indices), dtype=np.int64)
        for j, index in enumerate(self._image_indices):
            where = self._record_location(j)
            offset = self._offsets[int(index)]
            # Read only the header of a whole-record frame; reassemble split records.
            if offset + 8 + _IR_SIZE <= len(buf):
                magic, lrec = struct.unpack_from("<II", buf, offset)
                if magic == MAGIC and lrec >> 29 == 0 and (lrec & _LEN_MASK) >= _IR_SIZE:
                    flag, value, _, _ = struct.unpack_from(_IR_FORMAT, buf, offset + 8)
                    if flag == 0:
                        labels[j] = _int_label(np.asarray([value]), where)
                        continue
            _, value_arr, *_ = unpack_record(read_frame(buf, offset, self.rec_path), where)
            labels[j] = _int_label(value_arr, where)
        return labels

    @property
    def has_features(self) -> bool:
        return False


def write_recordio(records: Iterable[tuple], prefix_or_dir: str | Path) -> int:
    """Write ``(image bytes, label[, feature])`` records as an insightface RecordIO pair.

    The layout follows insightface (see the module docstring): a header record 0, the
    image records ``1..N`` in input order, then one record per identity holding its
    image range. An identity's records must therefore be contiguous. Features are
    not stored. Both files are written through temporary names; the ``.idx`` is
    renamed into place just before the ``.rec``.

    Args:
        records: the records, grouped by label.
        prefix_or_dir: a directory (gets ``train.rec``/``train.idx``) or a path ending
            in ``.rec`` (its ``.idx`` sibling is written too).

    Returns:
        The number of image records written.

    Raises:
        DataFormatError: a record is malformed, a label reappears after another
            label, a label is above 2**24 (float32 would merge it with its neighbours),
            or there are more than 2**24 records.
        OutputWriteError: a file could not be written (a full disk); names it.
    """
    target = Path(prefix_or_dir)
    if target.suffix in (".rec", ".idx"):
        rec_path, idx_path = target.with_suffix(".rec"), target.with_suffix(".idx")
    else:
        rec_path, idx_path = target / "train.rec", target / "train.idx"
    current = rec_path
    try:
        with atomic_path(rec_path) as tmp_rec:
            with open(tmp_rec, "wb") as fh:
                n, offsets = _write_records(records, fh, rec_path)
            current = idx_path
            with atomic_path(idx_path) as tmp_idx:
                tmp_idx.write_text("".join(f"{i}\t{off}\n" for i, off in offsets))
    except OSError as exc:
        # a full disk or a read-only folder: say which output, not only the errno
        raise OutputWriteError(
            f"{current}: cannot write the RecordIO file ({exc.strerror or exc})"
        ) from exc
    return n


def _write_records(records: Iterable[tuple], fh: BinaryIO, rec_path: Path) -> tuple[int, list]:
    """Write the header, image and identity records to ``fh``; (images, ``.idx`` entries)."""
    ranges: list[tuple[int, int, int]] = []  # (label, first index, end index)
    seen: set[int] = set()
    offsets: list[tuple[int, int]] = []
    header_len = fh.write(_frames(pack_record([0.0, 0.0], b"")))
    offsets.append((0, 0))
    n = 0
    for n, record in enumerate(records, start=1):
        data, label, _ = split_record(record, n - 1, rec_path)
        if n >= _MAX_INDEX:
            raise DataFormatError(f"{rec_path}: more than {_MAX_INDEX - 1} records")
        if label > MAX_LABEL:
            raise DataFormatError(
                f"{rec_path}: record {n - 1} has label {label}, above {MAX_LABEL} (2**24), the "
                "largest integer RecordIO's float32 label holds exactly; larger labels would "
                "merge with their neighbours"
            )
        if not ranges or ranges[-1][0] != label:
            if label in seen:
                raise DataFormatError(
                    f"{rec_path}: record {n - 1} has label {label} after other labels; "
                    "RecordIO needs each identity's records contiguous"
                )
            seen.add(label)
            ranges.append((label, n, n))
        ranges[-1] = (label, ranges[-1][1], n + 1)
        offsets.append((n, fh.tell()))
        fh.write(_frames(pack_record(float(label), data, id_=n)))
    first_id = n + 1
    for k, (_, first, end) in enumerate(ranges):
        offsets.append((first_id + k, fh.tell()))
        fh.write(_frames(pack_record([float(first), float(end)], b"", id_=first_id + k)))
    end_id = first_id + len(ranges)
    fh.seek(0)
    header = _frames(pack_record([float(first_id), float(end_id)], b""))
    if len(header) != header_len:
        raise AssertionError("RecordIO header record changed size")
    fh.write(header)
    return n, offsets
