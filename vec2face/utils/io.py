"""Atomic file and directory writes (outputs appear complete or not at all), and reads of
the weights and arrays a configuration names, failing with one line that names the file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vec2face.errors import ConfigError, Vec2FaceError

# A temporary's name says which process made it: ``.<name>.<host>-<pid>-<random>.tmp[.d]``.
# A kill (SIGKILL, a lost node) skips every ``finally``, so the next writer of the same
# output removes the temporaries whose process is gone, and only those: a concurrent
# writer of the same name keeps its own.
_TMP_TAIL = r"(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp(?:\.d|-lock)?"
_TMP_RE = re.compile(_TMP_TAIL)
_TMP_NAME_RE = re.compile(r"\..+\." + _TMP_TAIL)


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by killed writers on this host.

    Only names :func:`atomic_path` / :func:`atomic_dir` give ``path``'s temporaries are
    considered, and only those whose process no longer runs on this host.

    Returns:
        The removed paths.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    host = _host_tag()
    for entry in path.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        match = _TMP_RE.fullmatch(entry.name[len(prefix):])
        if match is None or match["host"] != host or _process_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one :func:`atomic_path` / :func:`atomic_dir` give a temporary."""
    return _TMP_NAME_RE.fullmatch(name) is not None


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh name beside ``path`` (same filesystem, so ``os.replace`` is atomic).

    Temporaries of ``path`` left by killed writers are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.{_host_tag()}-{os.getpid()}-", suffix=f".tmp{suffix}", dir=path.parent
    )
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write a file to; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory to fill; it replaces ``path`` only when complete.

    An existing ``path`` is replaced (``overwrite=True``) or refused. The swap removes
    the old directory first, so a crash in that instant leaves no directory rather than
    a half-written one.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output already exists: {path}")
    tmp = _tmp_sibling(path, suffix=".d")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` through a temporary name, byte-stable for equal content.

    ``torch.save`` given a path uses that file's name as the zip archive's internal
    folder, so saving to a random temporary name would make equal weights differ in
    bytes (and in DVC hashes). Given an open file handle it uses the fixed name
    ``archive`` instead, which is what we hand it.
    """
    # Imported here: the toy-world writers (and their worker processes) use this module
    # without needing torch.
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


# The first bytes of what ``torch.load`` reads: a zip archive (``torch.save`` since 1.6),
# or the legacy format: a pickle protocol opcode, then the pickled magic number.
_TORCH_ZIP_HEAD = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _looks_like_torch_file(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(14)
    return head.startswith(_TORCH_ZIP_HEAD) or (
        head[:1] == b"\x80" and head[2:14] == _TORCH_LEGACY_MAGIC
    )


def _load_failure(exc: BaseException) -> str:
    """One line on why a torch file did not load under the weights-only unpickler.

    torch's own message advises re-running with ``weights_only=False``, which would let
    the file run code; only the fault itself is kept.
    """
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"it holds {found[1]}, which is not plain data (only tensors and plain Python "
            "values are loaded, a checkpoint never runs code)"
        )
    found = re.search(r"WeightsUnpickler error: \s*(.+)", text)
    line = found[1] if found else next((ln for ln in text.splitlines() if ln.strip()), "")
    line = line.strip().split(". ")[0].rstrip(".")
    if not line or "weights_only" in line:
        line = exc.__class__.__name__
    return f"damaged or not a checkpoint ({line})"


def load_torch_safely(
    path: str | os.PathLike, map_location: Any = "cpu", safe_globals: tuple = ()
) -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line reason when it fails.

    Args:
        path: an existing file.
        map_location: as for ``torch.load``.
        safe_globals: extra classes the weights-only unpickler may build.

    Returns:
        What the file holds.

    Raises:
        ValueError: the reason, one line: not a PyTorch file at all, damaged, or it holds
            objects other than tensors and plain values. It never suggests turning the
            safe loader off.
    """
    import warnings

    import torch

    path = Path(path)
    if not _looks_like_torch_file(path):
        raise ValueError(
            "not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch file)"
        )
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(safe_globals)):
            # e.g. "Detected pickle protocol 4": noise on stderr, the load either works or raises
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a bad file
        raise ValueError(_load_failure(exc)) from None


def source_label(source: str | os.PathLike, config_key: str | None) -> str:
    """How an error names a file: its path, and the configuration key that named it."""
    return f"{source} (config key {config_key})" if config_key else str(source)


def read_npy(
    path: str | os.PathLike,
    what: str,
    config_key: str | None = None,
    mmap_mode: str | None = None,
    error: type[Vec2FaceError] = ConfigError,
) -> np.ndarray:
    """The array a ``.npy`` file holds (never a pickle).

    Args:
        path: the file.
        what: what the file is, for the error (``"mask file"``).
        config_key: the configuration key that named ``path``, quoted in errors.
        mmap_mode: as for ``np.load`` (``"r"`` maps a large file instead of reading it).
        error: the exception class to raise.

    Raises:
        error: the file is missing or not a readable ``.npy`` array.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {source_label(path, config_key)}")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise error(f"{source_label(path, config_key)}: not a readable .npy file ({exc})") from None
