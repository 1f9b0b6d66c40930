"""Verification benchmark ``.bin`` files (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW).

A ``.bin`` is a pickle of ``(list of encoded image bytes, list of bool)``; images
``2k`` and ``2k + 1`` form pair ``k`` and ``issame[k]`` says whether they show one
person (insightface's ``eval/verification.py`` format). Public files were written by
Python 2 and some hold numpy bools, so the reader accepts those through a restricted
unpickler and nothing else.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from vec2face.data.safe_pickle import BYTES_GLOBALS, NUMPY_ARRAY_GLOBALS, restricted_loads
from vec2face.errors import DataFormatError
from vec2face.utils.io import write_bytes_atomic

_ALLOWED = {**NUMPY_ARRAY_GLOBALS, **BYTES_GLOBALS}


def _as_bytes(item: Any, path: Path | str, k: int) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
        return item.tobytes()
    raise DataFormatError(f"{path}: image {k} is {type(item).__name__}, expected encoded bytes")


def _as_bool(item: Any, path: Path | str, k: int) -> bool:
    if isinstance(item, (bool, np.bool_)):
        return bool(item)
    if isinstance(item, (int, np.integer)) and item in (0, 1):
        return bool(item)
    raise DataFormatError(f"{path}: issame[{k}] is {item!r}, expected a bool")


def _check(images: list[bytes], issame: list[bool], path: Path | str) -> None:
    if len(images) % 2:
        raise DataFormatError(f"{path}: odd number of images ({len(images)}); pairs need an even count")
    if len(issame) != len(images) // 2:
        raise DataFormatError(
            f"{path}: {len(issame)} issame flags for {len(images) // 2} pairs ({len(images)} images)"
        )


def read_bin(path: str | Path) -> tuple[list[bytes], list[bool]]:
    """Read a verification ``.bin`` with a restricted unpickler.

    Returns:
        (images, issame): encoded image bytes (2 per pair) and one bool per pair.

    Raises:
        DataFormatError: the file is missing, is not such a pickle, names a global
            other than numpy array/bool reconstruction, or has inconsistent counts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"verification .bin not found: {path}")
    obj = restricted_loads(path.read_bytes(), _ALLOWED, path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataFormatError(f"{path}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    raw_images, raw_issame = obj
    if not isinstance(raw_images, (list, tuple, np.ndarray)):
        raise DataFormatError(f"{path}: images must be a list, got {type(raw_images).__name__}")
    if not isinstance(raw_issame, (list, tuple, np.ndarray)):
        raise DataFormatError(f"{path}: issame must be a list, got {type(raw_issame).__name__}")
    images = [_as_bytes(item, path, k) for k, item in enumerate(raw_images)]
    flags = raw_issame.tolist() if isinstance(raw_issame, np.ndarray) else raw_issame
    issame = [_as_bool(item, path, k) for k, item in enumerate(flags)]
    _check(images, issame, path)
    return images, issame


def write_bin(images: list[bytes], issame: list[bool], path: str | Path) -> None:
    """Write a verification ``.bin`` of plain Python bytes and bools (pickle protocol 4).

    Raises:
        DataFormatError: an image is not bytes, a flag not a bool, or the counts disagree.
    """
    path = Path(path)
    plain_images = [_as_bytes(item, path, k) for k, item in enumerate(images)]
    plain_issame = [_as_bool(item, path, k) for k, item in enumerate(issame)]
    _check(plain_images, plain_issame, path)
    write_bytes_atomic(path, pickle.dumps((plain_images, plain_issame), protocol=4))


def spread_pairs(num_pairs: int, n: int) -> np.ndarray:
    """``n`` pair indices spread evenly over ``num_pairs`` pairs, the first and last included.

    A verification ``.bin`` lays each fold out as a block of genuine pairs and then a block
    of impostors (300 + 300 in a 6,000-pair set), so its first pairs are all of one kind
    and cannot be scored; pairs spread over the whole file take both kinds from every fold.

    Raises:
        ValueError: ``n`` is not in [1, num_pairs].
    """
    if not 0 < n <= num_pairs:
        raise ValueError(f"cannot take {n} of {num_pairs} pairs")
    return np.linspace(0, num_pairs - 1, n).round().astype(np.int64)


def read_pair_sample(path: str | Path, pairs: int) -> tuple[list[bytes], np.ndarray]:
    """The encoded images and labels of a sample of a ``.bin``'s pairs: ``pairs`` rounded
    down to a multiple of the protocol's 10 folds, spread over the file
    (:func:`spread_pairs`).

    Returns:
        (2P encoded images, interleaved as in a ``.bin``; P booleans, genuine or not).

    Raises:
        ValueError: fewer than 10 pairs would be taken (names the file).
    """
    blobs, issame = read_bin(path)
    n = min(pairs, len(issame)) // 10 * 10
    if n < 10:
        raise ValueError(f"{path}: a sample of {pairs} pairs leaves fewer than 10 of its "
                         f"{len(issame)} pairs")
    index = spread_pairs(len(issame), n)
    images = [blobs[2 * i + k] for i in index for k in (0, 1)]
    return images, np.asarray(issame, dtype=bool)[index]
