"""Encoding and decoding of image files (JPEG/PNG bytes <-> uint8 RGB arrays)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vec2face.errors import DataFormatError

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}


def sniff_image_format(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"`` or None, from the first bytes of an encoded image."""
    if data[:3] == _JPEG_MAGIC:
        return "jpeg"
    if data[:8] == _PNG_MAGIC:
        return "png"
    return None


def encode_image(image: np.ndarray, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """Encode an image array as JPEG or PNG file bytes.

    Args:
        image: uint8 array, (H, W, 3) RGB or (H, W) grey.
        fmt: ``"jpeg"`` (or ``"jpg"``) or ``"png"``.
        quality: JPEG quality (1-100); ignored for PNG.

    Returns:
        The encoded file's bytes.

    Raises:
        ValueError: on an unknown format or an array that is not a uint8 image.
    """
    key = fmt.lower()
    if key not in _FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; known: jpeg, jpg, png")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected a uint8 (H, W, 3) or (H, W) image, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(arr))
    if _FORMATS[key] == "JPEG":
        pil.save(buf, format="JPEG", quality=int(quality))
    else:
        pil.save(buf, format="PNG")
    return buf.getvalue()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def decode_image(data: bytes, where: str = "") -> np.ndarray:
    """Decode JPEG/PNG bytes to a uint8 (H, W, 3) RGB array.

    Args:
        data: the encoded file's bytes.
        where: the file or record the bytes came from, named in errors.

    Raises:
        DataFormatError: the bytes are not a readable image (corrupt, truncated, empty).
    """
    label = where or "<image bytes>"
    if not data:
        raise DataFormatError(f"{label}: empty image data")
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) on some damaged files; we want a hard error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as pil:
                pil.load()
                rgb = pil.convert("RGB") if pil.mode != "RGB" else pil
                arr = np.array(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataFormatError(f"{label}: cannot decode image ({_one_line(exc)})") from None
    return arr


def image_size(data: bytes, where: str = "") -> tuple[int, int]:
    """(H, W) of an encoded image, read from its header without decoding pixels."""
    label = where or "<image bytes>"
    try:
        with Image.open(io.BytesIO(data)) as pil:
            width, height = pil.size
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        raise DataFormatError(f"{label}: cannot read image header ({_one_line(exc)})") from None
    return int(height), int(width)


def decode_files(
    root: str | Path, paths: Iterable[str], shape: tuple[int, int, int] = (112, 112, 3)
) -> np.ndarray:
    """Decode the image files ``root/<path>`` into one uint8 (N, H, W, 3) array.

    Raises:
        DataFormatError: a file that cannot be read or decoded, or is not of ``shape``
            (naming the file).
    """
    root = Path(root)
    paths = list(paths)
    images = np.empty((len(paths), *shape), np.uint8)
    for k, rel in enumerate(paths):
        path = root / rel
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataFormatError(f"{path}: cannot read image ({exc.strerror})") from None
        img = decode_image(data, str(path))
        if img.shape != shape:
            raise DataFormatError(f"{path}: expected a {shape[1]}x{shape[0]} RGB image, got {img.shape}")
        images[k] = img
    return images
