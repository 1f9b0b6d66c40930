"""LMDB datasets: the official Vec2Face training layout and the HSFace FR layout.

An environment (one file, or a directory holding ``data.mdb``) stores header keys
``__len__`` (msgpack int N), ``__keys__`` (msgpack list of record keys ``b"0"`` ...
``b"N-1"``) and ``__classnum__`` (msgpack int, max label + 1). Each record is msgpack:

- training layout: ``[image file bytes, bytes of a whole .npy file (float32 feature), label]``
- FR layout:       ``[image file bytes, label]``

Readers open the environment lazily, once per process, so a dataset can be pickled
into DataLoader / multiprocessing workers (LMDB handles must not cross ``fork``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import numpy as np

from vec2face.data.base import MAX_LABEL, FaceDataset, MaskLike, split_record
from vec2face.errors import DataFormatError, OutputWriteError
from vec2face.utils.io import atomic_path

LAYOUTS = ("fr", "training")
_INITIAL_MAP_SIZE = 1 << 30
_COMMIT_EVERY = 1000


def _unpack(raw: bytes | memoryview, where: str) -> Any:
    try:
        # raw=True: old writers packed image bytes as msgpack "str"; we want bytes either way
        return msgpack.unpackb(bytes(raw), raw=True)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise DataFormatError(f"{where}: not valid msgpack ({exc.__class__.__name__})") from None


def _decode_feature(blob: bytes, where: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(blob), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataFormatError(f"{where}: feature is not a .npy file ({exc})") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.floating):
        raise DataFormatError(f"{where}: feature must be a 1-D float array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _encode_feature(feature: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(feature, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _parse_record(value: Any, where: str) -> tuple[bytes, bytes | None, int]:
    """Image bytes, feature blob (or None) and label of one unpacked record."""
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise DataFormatError(
            f"{where}: expected [image, label] or [image, feature .npy, label], "
            f"got {type(value).__name__} of length {len(value) if hasattr(value, '__len__') else '?'}"
        )
    image, label = value[0], value[-1]
    feature = value[1] if len(value) == 3 else None
    if not isinstance(image, bytes):
        raise DataFormatError(f"{where}: image field is {type(image).__name__}, expected bytes")
    if feature is not None and not isinstance(feature, bytes):
        raise DataFormatError(f"{where}: feature field is {type(feature).__name__}, expected bytes")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= MAX_LABEL:
        raise DataFormatError(f"{where}: label must be an int in 0..{MAX_LABEL}, got {label!r}")
    return image, feature, label


# py-lmdb refuses to open one environment twice in a process, yet several datasets
# (or an unpickled copy) may read the same file: share one handle per (process, file).
_SHARED_ENVS: dict[tuple[int, str], list[Any]] = {}


def _check_complete(env: lmdb.Environment, data_file: Path) -> None:
    """Refuse an environment whose file is shorter than its last used page.

    Reading a page past the end of a memory-mapped file kills the process with SIGBUS,
    so a truncated file (a copy cut short, a full disk) must be caught from the meta
    page alone, before any other page is read.
    """
    page_size = env.stat()["psize"]
    needed = (env.info()["last_pgno"] + 1) * page_size
    size = data_file.stat().st_size
    if size < needed:
        raise DataFormatError(
            f"{data_file}: truncated LMDB ({size} bytes; its last page ends at byte {needed}); "
            "the file is incomplete, copy or write it again"
        )


def open_lmdb_readonly(path: Path, subdir: bool, **kwargs: Any) -> lmdb.Environment:
    """Open an LMDB environment read-only, checked for truncation before any page is read.

    Raises:
        DataFormatError: naming the file, when it cannot be opened or is truncated.
    """
    data_file = path / "data.mdb" if subdir else path
    try:
        env = lmdb.open(str(path), subdir=subdir, readonly=True, lock=False, readahead=False,
                        **kwargs)
    except lmdb.Error as exc:
        reason = str(exc).removeprefix(f"{path}: ")  # py-lmdb puts the path first
        raise DataFormatError(f"{path}: cannot open LMDB ({reason})") from None
    try:
        _check_complete(env, data_file)
    except BaseException:
        env.close()
        raise
    return env


def _acquire_env(path: Path, subdir: bool) -> lmdb.Environment:
    pid = os.getpid()
    for stale in [k for k in _SHARED_ENVS if k[0] != pid]:
        # Inherited through fork: py-lmdb's open-file guard was inherited too, so close
        # this process's copy (the parent's handle is unaffected) before reopening.
        _SHARED_ENVS.pop(stale)[0].close()
    key = (pid, str(path.resolve()))
    entry = _SHARED_ENVS.get(key)
    if entry is None:
        env = open_lmdb_readonly(path, subdir, max_readers=1024)
        entry = _SHARED_ENVS[key] = [env, 0]
    entry[1] += 1
    return entry[0]


def _release_env(path: Path) -> None:
    key = (os.getpid(), str(path.resolve()))
    entry = _SHARED_ENVS.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        entry[0].close()
        del _SHARED_ENVS[key]


class LmdbDataset(FaceDataset):
    """A dataset stored in one LMDB environment (either layout, detected per record)."""

    format = "lmdb"

    def __init__(self, path: str | Path, mask: MaskLike = None) -> None:
        path = Path(path)
        if not path.exists():
            raise DataFormatError(f"LMDB not found: {path}")
        self._subdir = path.is_dir()
        if self._subdir and not (path / "data.mdb").is_file():
            raise DataFormatError(f"{path}: directory has no data.mdb, not an LMDB environment")
        self.path = path
        self._env: lmdb.Environment | None = None
        self._pid = -1
        self._keys = self._read_header()
        self._has_features: bool | None = None
        super().__init__(path, mask)

    # ---- environment handling ----------------------------------------------------
    def _environment(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _acquire_env(self.path, self._subdir)
            self._pid = os.getpid()
        return self._env

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            _release_env(self.path)
        self._env = None

    def __del__(self) -> None:
        # a finaliser must never raise (at interpreter exit lmdb may already be gone)
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_env"] = None
        state["_pid"] = -1
        return state

    def _get(self, key: bytes) -> bytes | None:
        with self._environment().begin(write=False) as txn:
            return txn.get(key)

    def _read_header(self) -> list[bytes]:
        raw_keys = self._get(b"__keys__")
        if raw_keys is None:
            raise DataFormatError(f"{self.path}: LMDB has no '__keys__' entry (record key list)")
        keys = _unpack(raw_keys, f"{self.path} key __keys__")
        if not isinstance(keys, (list, tuple)) or not all(isinstance(k, bytes) for k in keys):
            raise DataFormatError(f"{self.path}: '__keys__' must be a msgpack list of keys")
        raw_len = self._get(b"__len__")
        if raw_len is not None:
            n = _unpack(raw_len, f"{self.path} key __len__")
            if n != len(keys):
                raise DataFormatError(
                    f"{self.path}: '__len__' is {n!r} but '__keys__' lists {len(keys)} keys"
                )
        return list(keys)

    # ---- records -------------------------------------------------------------------
    def _num_records(self) -> int:
        return len(self._keys)

    def _record_location(self, j: int) -> str:
        return f"{self.path} record {self._keys[j].decode(errors='replace')}"

    def _raw_record(self, j: int) -> tuple[bytes, bytes | None, int]:
        where = self._record_location(j)
        raw = self._get(self._keys[j])
        if raw is None:
            raise DataFormatError(f"{where}: key listed in '__keys__' is missing")
        return _parse_record(_unpack(raw, where), where)

    def _read_record(self, j: int) -> tuple[bytes, int, np.ndarray | None]:
        image, blob, label = self._raw_record(j)
        feature = None if blob is None else _decode_feature(blob, self._record_location(j))
        return image, label, feature

    def _record_labels(self) -> np.ndarray:
        labels = np.empty(len(self._keys), dtype=np.int64)
        with self._environment().begin(write=False, buffers=True) as txn:
            for j, key in enumerate(self._keys):
                raw = txn.get(key)
                where = self._record_location(j)
                if raw is None:
                    raise DataFormatError(f"{where}: key listed in '__keys__' is missing")
                labels[j] = _parse_record(_unpack(raw, where), where)[2]
        return labels

    @property
    def has_features(self) -> bool:
        """True when the first record uses the training layout (image, feature, label)."""
        if self._has_features is None:
            n = len(self)
            self._has_features = bool(n) and self._raw_record(self.record_index(0))[1] is not None
        return self._has_features

    @property
    def class_num(self) -> int | None:
        """The ``__classnum__`` header value, when present."""
        raw = self._get(b"__classnum__")
        return None if raw is None else int(_unpack(raw, f"{self.path} key __classnum__"))


def write_lmdb(records: Iterable[tuple], path: str | Path, layout: str = "fr") -> int:
    """Write records to a single-file LMDB environment at ``path`` (written atomically).

    Args:
        records: ``(image bytes, label)`` or ``(image bytes, label, feature)``; the
            training layout needs the feature, the FR layout ignores it.
        path: the output file (conventionally ``*.lmdb``); replaced only when complete.
        layout: ``"fr"`` (``[image, label]``) or ``"training"``
            (``[image, .npy feature bytes, label]``).

    Returns:
        The number of records written.

    Raises:
        ValueError: on an unknown layout.
        DataFormatError: a record is malformed or lacks the feature the layout needs.
        OutputWriteError: LMDB could not write (e.g. the disk is full); nothing is left at
            ``path`` or its temporary name.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown LMDB layout {layout!r}; known: {', '.join(LAYOUTS)}")
    path = Path(path)
    keys: list[bytes] = []
    max_label = -1
    with atomic_path(path) as tmp:
        lock_file = Path(f"{tmp}-lock")
        # meminit=True: LMDB zeroes the pages it allocates, so no leftover heap bytes
        # reach the file and equal records give equal files (DVC hashes, data versions)
        env = lmdb.open(str(tmp), subdir=False, map_size=_INITIAL_MAP_SIZE, lock=False,
                        meminit=True, map_async=False)
        try:
            pending: list[tuple[bytes, bytes]] = []
            for index, record in enumerate(records):
                image, label, feature = split_record(record, index, path)
                if layout == "training":
                    if feature is None:
                        raise DataFormatError(
                            f"{path}: record {index} has no feature; the training layout needs one"
                        )
                    value = msgpack.packb([image, _encode_feature(feature), label], use_bin_type=True)
                else:
                    value = msgpack.packb([image, label], use_bin_type=True)
                key = str(index).encode("ascii")
                keys.append(key)
                max_label = max(max_label, label)
                pending.append((key, value))
                if len(pending) >= _COMMIT_EVERY:
                    _put_all(env, pending)
                    pending = []
            header = [
                (b"__len__", msgpack.packb(len(keys))),
                (b"__keys__", msgpack.packb(keys, use_bin_type=True)),
                (b"__classnum__", msgpack.packb(max_label + 1)),
            ]
            _put_all(env, pending + header)
            env.sync(True)
        except lmdb.Error as exc:
            # a full disk surfaces here as lmdb.DiskError (ENOSPC) from a put, commit or sync
            raise OutputWriteError(f"{path}: cannot write the LMDB: {exc}") from exc
        finally:
            env.close()
            if lock_file.exists():
                lock_file.unlink()
    return len(keys)


def _put_all(env: lmdb.Environment, items: list[tuple[bytes, bytes]]) -> None:
    """Put ``items`` in one transaction, doubling the map size until they fit."""
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)
