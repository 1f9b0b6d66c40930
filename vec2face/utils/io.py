"""Atomic file and directory writes: outputs appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh name beside ``path`` (same filesystem, so ``os.replace`` is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
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
