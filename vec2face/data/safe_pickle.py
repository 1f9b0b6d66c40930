"""A restricted unpickler: only an explicit allow-list of globals may be loaded.

Pickle runs whatever callable a file names; files from the internet (verification
``.bin`` files) are read through this class so a hostile file fails with an error
instead of executing code.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vec2face.errors import DataFormatError

# Python 2 pickles name builtins "__builtin__"; our override sees names before the
# standard fix_imports mapping would apply.
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _numpy_global(name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise DataFormatError(f"numpy does not provide multiarray.{name}")

    return resolve


def _attr(module: str, name: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(module), name)


# The globals that plain data pickled with numpy arrays/scalars needs; nothing here
# can run arbitrary code or touch the file system.
NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_global("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_global("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): _numpy_global("scalar"),
    ("numpy", "ndarray"): _attr("numpy", "ndarray"),
    ("numpy", "dtype"): _attr("numpy", "dtype"),
}

# Python 3 pickles bytes with protocol < 3 as ``_codecs.encode(str, "latin1")``.
BYTES_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("_codecs", "encode"): _attr("_codecs", "encode"),
    ("builtins", "bytes"): lambda: bytes,
    ("builtins", "bytearray"): lambda: bytearray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals.

    Args:
        file: a binary file object.
        allowed: ``(module, name) -> zero-argument resolver`` of the permitted globals.
        where: the file being read, named in errors.
        **kwargs: passed to :class:`pickle.Unpickler` (e.g. ``encoding``).
    """

    def __init__(self, file: Any, allowed: Mapping[tuple[str, str], Callable[[], Any]],
                 where: str, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        key = (_MODULE_ALIASES.get(module, module), name)
        resolver = self._allowed.get(key)
        if resolver is None:
            raise DataFormatError(
                f"{self._where}: pickle refers to global '{module}.{name}', which is not allowed"
            )
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise DataFormatError(f"{self._where}: pickle uses persistent ids, which are not allowed")


def restricted_loads(data: bytes, allowed: Mapping[tuple[str, str], Callable[[], Any]],
                     where: str | Path, encoding: str = "bytes") -> Any:
    """Unpickle ``data`` allowing only the globals in ``allowed``.

    Args:
        data: the pickle bytes.
        allowed: permitted globals (see :data:`NUMPY_ARRAY_GLOBALS`, :data:`BYTES_GLOBALS`).
        where: the source, named in errors.
        encoding: how Python 2 ``str`` objects are decoded; ``"bytes"`` keeps them as
            bytes (Python 2 pickles of image data need this).

    Raises:
        DataFormatError: a disallowed global, or a malformed/truncated pickle.
    """
    unpickler = RestrictedUnpickler(io.BytesIO(data), allowed, str(where), encoding=encoding)
    try:
        return unpickler.load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        msg = " ".join(str(exc).split())
        raise DataFormatError(
            f"{where}: not a readable pickle ({exc.__class__.__name__}: {msg})"
        ) from None
