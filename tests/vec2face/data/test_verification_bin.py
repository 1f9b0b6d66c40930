from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from vec2face.data import read_bin, write_bin
from vec2face.errors import DataFormatError


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_plain_python(tmp_path: Path, records: list[tuple]) -> None:
    images = [r[0] for r in records[:4]]
    path = tmp_path / "lfw.bin"
    write_bin(images, [True, np.bool_(False)], path)
    assert read_bin(path) == (images, [True, False])
    # plain bytes and bools only: a loader allowing no globals reads it
    class NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise AssertionError(f"{module}.{name}")

    with open(path, "rb") as fh:
        images_back, issame = NoGlobals(fh).load()
    assert type(images_back[0]) is bytes and issame == [True, False]


def test_numpy_and_python2_style_files_are_read(tmp_path: Path, records: list[tuple]) -> None:
    images = [r[0] for r in records[:4]]
    path = tmp_path / "np.bin"
    path.write_bytes(pickle.dumps((images, np.array([True, False])), protocol=2))
    assert read_bin(path) == (images, [True, False])
    path.write_bytes(pickle.dumps((images, [np.bool_(True), np.bool_(True)]), protocol=4))
    assert read_bin(path)[1] == [True, True]


def test_foreign_global_is_refused_and_not_run(tmp_path: Path, records: list[tuple]) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([records[0][0], _Evil(marker)], [True])))
    with pytest.raises(DataFormatError, match=r"evil.bin: pickle refers to global '(posix|os)\.system'"):
        read_bin(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (([b"a", b"b", b"c"], [True]), "odd number of images"),
        (([b"a", b"b"], [True, False]), "2 issame flags for 1 pairs"),
        (([b"a", 5], [True]), "image 1 is int"),
        ((b"x",), "expected a pickled"),
    ],
)
def test_inconsistent_contents(tmp_path: Path, payload: tuple, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataFormatError, match=message):
        read_bin(path)


def test_garbage_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataFormatError, match="junk.bin: not a readable pickle"):
        read_bin(path)
    with pytest.raises(DataFormatError, match="not found"):
        read_bin(tmp_path / "none.bin")
    with pytest.raises(DataFormatError, match="odd number"):
        write_bin([b"a"], [], tmp_path / "w.bin")
    assert not (tmp_path / "w.bin").exists()


def test_a_pair_sample_spreads_over_the_folds_and_takes_both_kinds(tmp_path: Path) -> None:
    from vec2face.data.verification_bin import read_pair_sample, spread_pairs

    # insightface's layout: each fold a block of genuine pairs, then a block of impostors
    issame = ([True] * 30 + [False] * 30) * 10
    blobs = [f"{i}:{k}".encode() for i in range(len(issame)) for k in "ab"]
    path = tmp_path / "set.bin"
    write_bin(blobs, issame, path)
    images, same = read_pair_sample(path, 25)  # rounded down to the 10 folds: 20 pairs
    index = spread_pairs(600, 20)
    assert index[0] == 0 and index[-1] == 599 and len(set(index.tolist())) == 20
    assert len(images) == 40 and images[2] == f"{index[1]}:a".encode()
    assert images[3] == f"{index[1]}:b".encode()
    assert same.tolist() == [issame[i] for i in index] and 0 < same.sum() < 20
    with pytest.raises(ValueError, match="set.bin: a sample of 9 pairs"):
        read_pair_sample(path, 9)
    with pytest.raises(ValueError, match="cannot take 601 of 600"):
        spread_pairs(600, 601)
