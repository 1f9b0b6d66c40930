"""Tiny synthetic face datasets for the data-format tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vec2face.data import encode_image


def make_image(label: int, k: int, size: int = 16) -> np.ndarray:
    """A gradient whose pattern depends on the label and the image index."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack(
        [(x * 13 + label * 41) % 256, (y * 11 + k * 29) % 256, (x + y + label * 67) % 256], axis=-1
    ).astype(np.uint8)


def make_records(n_ids: int = 3, per_id: int = 3, fmt: str = "png") -> list[tuple]:
    """``(bytes, label, feature)`` records, contiguous per label; PNG keeps pixels exact."""
    records = []
    for label in range(n_ids):
        for k in range(per_id):
            feature = np.linspace(label, label + 1, 8, dtype=np.float32) + k
            records.append((encode_image(make_image(label, k), fmt), label, feature))
    return records


def write_folder(root: Path, counts: dict[str, int], fmt: str = "jpg") -> None:
    """``root/<name>/<k>.<fmt>`` with ``counts[name]`` images each."""
    for label, (name, count) in enumerate(sorted(counts.items())):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            kind = "png" if fmt == "png" else "jpeg"
            (root / name / f"{k:03d}.{fmt}").write_bytes(encode_image(make_image(label, k), kind))


@pytest.fixture
def records() -> list[tuple]:
    return make_records()


@pytest.fixture
def synth() -> SimpleNamespace:
    """The helpers above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(make_image=make_image, make_records=make_records,
                           write_folder=write_folder)
