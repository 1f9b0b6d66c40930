from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from vec2face.data import decode_image, open_dataset, write_imagefolder
from vec2face.data.imagefolder import ImageFolderDataset
from vec2face.errors import DataFormatError


def test_toy_layout_with_root_files(tmp_path: Path, synth) -> None:
    synth.write_folder(tmp_path, {"00002": 2, "00000": 3, "00001": 1})
    (tmp_path / "manifest.parquet").write_bytes(b"not read")
    (tmp_path / "grid.png").write_bytes(b"not read")
    (tmp_path / "00000" / "notes.txt").write_text("ignored")
    with open_dataset(tmp_path) as ds:
        assert isinstance(ds, ImageFolderDataset) and ds.format == "imagefolder"
        assert ds.identity_names == ["00000", "00001", "00002"]
        assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
        assert ds.files[3] == "00001/000.jpg" and ds.num_identities == 3
        assert ds.read_raw(3)[0] == (tmp_path / "00001" / "000.jpg").read_bytes()
        assert ds[5].image.shape == (16, 16, 3) and ds[5].feature is None


def test_empty_identity_is_skipped_and_reported(tmp_path: Path, synth, caplog) -> None:
    synth.write_folder(tmp_path, {"a": 2, "c": 1})
    (tmp_path / "b").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(tmp_path)
    assert ds.empty_identities == ["b"] and ds.identity_names == ["a", "c"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert "skipped 1 empty identity folder(s): b" in caplog.text


def test_root_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("no images")
    with pytest.raises(DataFormatError, match="no identity folder with images"):
        ImageFolderDataset(tmp_path)


def test_symlinks_escaping_the_root_are_refused(tmp_path: Path, synth) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    synth.write_folder(root, {"a": 1})
    synth.write_folder(outside, {"z": 1})
    os.symlink(outside / "z", root / "b")
    with pytest.raises(DataFormatError, match=r"root/b: resolves to .*outside the dataset root"):
        open_dataset(root)
    os.unlink(root / "b")
    os.symlink(outside / "z" / "000.jpg", root / "a" / "001.jpg")
    with pytest.raises(DataFormatError, match=r"a/001.jpg: resolves to .*outside"):
        open_dataset(root)
    os.unlink(root / "a" / "001.jpg")
    os.symlink(root / "a" / "000.jpg", root / "a" / "002.jpg")  # inside the root: fine
    assert len(open_dataset(root)) == 2


def test_write_read_round_trip(tmp_path: Path, records: list[tuple], synth) -> None:
    jpeg = [(synth.make_records(1, 1, "jpeg")[0][0], 12)]
    out = tmp_path / "out"
    assert write_imagefolder(records + jpeg, out) == 10
    assert sorted(p.name for p in out.iterdir()) == ["00", "01", "02", "12"]
    assert (out / "12" / "000000.jpg").is_file() and (out / "00" / "000002.png").is_file()
    with open_dataset(out) as ds:
        assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
        for i, (data, _, _) in enumerate(records):
            assert ds.read_raw(i)[0] == data
            np.testing.assert_array_equal(ds[i].image, decode_image(data))
    with pytest.raises(FileExistsError):
        write_imagefolder(records, out)
    write_imagefolder(records[:3], out, identity_names=["alice"], overwrite=True)
    assert [p.name for p in out.iterdir()] == ["alice"]


def test_failed_write_leaves_nothing(tmp_path: Path, records: list[tuple]) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match="record 1 is neither JPEG nor PNG"):
        write_imagefolder([records[0], (b"GIF89a....", 0)], out)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_after_open(tmp_path: Path, synth) -> None:
    synth.write_folder(tmp_path, {"a": 2})
    ds = open_dataset(tmp_path)
    (tmp_path / "a" / "001.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"a/001.jpg: cannot read"):
        ds[1]


def test_truncated_jpeg_names_the_file(tmp_path: Path, synth) -> None:
    synth.write_folder(tmp_path, {"a": 2})
    good = (tmp_path / "a" / "001.jpg").read_bytes()
    (tmp_path / "a" / "001.jpg").write_bytes(good[: len(good) // 2])
    with open_dataset(tmp_path) as ds:
        with pytest.raises(DataFormatError, match=r"a/001.jpg: cannot decode image"):
            ds[1]
        assert ds[0].label == 0
