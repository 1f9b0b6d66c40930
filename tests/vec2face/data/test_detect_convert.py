from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vec2face.cli.main import main
from vec2face.data import (
    convert_dataset,
    inspect_dataset,
    open_dataset,
    write_bin,
    write_imagefolder,
    write_lmdb,
    write_recordio,
)
from vec2face.errors import DataFormatError, Vec2FaceError

WRITERS = {
    "imagefolder": lambda recs, d: write_imagefolder(recs, d / "src"),
    "lmdb": lambda recs, d: write_lmdb(recs, d / "src.lmdb", layout="training"),
    "recordio": lambda recs, d: write_recordio(recs, d / "src"),
}
SOURCES = {"imagefolder": "src", "lmdb": "src.lmdb", "recordio": "src"}


def test_detection(tmp_path: Path, records: list[tuple]) -> None:
    write_lmdb(records, tmp_path / "ds" / "train.lmdb")
    (tmp_path / "ds" / "manifest.parquet").write_bytes(b"")
    assert open_dataset(tmp_path / "ds").format == "lmdb"
    write_recordio(records, tmp_path / "rec")
    assert open_dataset(tmp_path / "rec").format == "recordio"
    assert open_dataset(tmp_path / "rec" / "train.rec").format == "recordio"
    write_imagefolder(records, tmp_path / "img")
    assert open_dataset(tmp_path / "img").format == "imagefolder"


def test_detection_errors(tmp_path: Path, records: list[tuple]) -> None:
    with pytest.raises(DataFormatError, match=r"does not exist: .*nowhere"):
        open_dataset(tmp_path / "nowhere")
    write_bin([records[0][0]] * 2, [True], tmp_path / "lfw.bin")
    with pytest.raises(DataFormatError, match=r"lfw.bin: a .bin file is a verification benchmark"):
        open_dataset(tmp_path / "lfw.bin")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("")
    with pytest.raises(DataFormatError, match=r"empty: no dataset found; looked for train.rec"):
        open_dataset(tmp_path / "empty")
    write_lmdb(records, tmp_path / "two" / "a.lmdb")
    write_lmdb(records, tmp_path / "two" / "b.lmdb")
    with pytest.raises(DataFormatError, match="holds 2 \\*.lmdb datasets"):
        open_dataset(tmp_path / "two")


def test_inspect(tmp_path: Path, records: list[tuple]) -> None:
    write_lmdb(records, tmp_path / "t.lmdb", layout="training")
    assert inspect_dataset(tmp_path / "t.lmdb") == {
        "format": "lmdb", "path": str(tmp_path / "t.lmdb"), "images": 9, "identities": 3,
        "image_size": [16, 16], "has_features": True,
    }


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_convert_every_pair(tmp_path: Path, records: list[tuple], source: str) -> None:
    WRITERS[source](records, tmp_path)
    src = tmp_path / SOURCES[source]
    for target in sorted(WRITERS):
        dst = tmp_path / f"to_{target}"
        summary = convert_dataset(src, dst, to=target)
        assert summary["written"] == 9 and summary["skipped"] == 0
        with open_dataset(dst) as ds:
            assert ds.format == target
            np.testing.assert_array_equal(ds.labels, [r[1] for r in records])
            assert [ds.read_raw(i)[0] for i in range(len(ds))] == [r[0] for r in records]
    if source == "lmdb":
        convert_dataset(src, tmp_path / "t.lmdb", to="lmdb", layout="training")
        with open_dataset(tmp_path / "t.lmdb") as ds:
            np.testing.assert_array_equal(ds.read_raw(4)[2], records[4][2])
    else:
        with pytest.raises(Vec2FaceError, match="has no teacher features"):
            convert_dataset(src, tmp_path / "t.lmdb", to="lmdb", layout="training")
        assert not (tmp_path / "t.lmdb").exists()


def test_convert_skips_corrupt_images(tmp_path: Path, records: list[tuple]) -> None:
    bad = list(records)
    bad[1] = (records[1][0][:30], 0, records[1][2])
    bad[5] = (b"garbage", 1, records[5][2])
    write_lmdb(bad, tmp_path / "bad.lmdb")
    summary = convert_dataset(tmp_path / "bad.lmdb", tmp_path / "out", to="recordio")
    assert summary["written"] == 7 and summary["skipped"] == 2
    assert [s["source_index"] for s in summary["skipped_files"]] == [1, 5]
    assert "bad.lmdb record 1: cannot decode image" in summary["skipped_files"][0]["reason"]
    with pytest.raises(Vec2FaceError, match="output already exists"):
        convert_dataset(tmp_path / "bad.lmdb", tmp_path / "out", to="lmdb")
    summary = convert_dataset(tmp_path / "bad.lmdb", tmp_path / "out", to="lmdb", overwrite=True)
    assert (tmp_path / "out" / "train.lmdb").is_file() and summary["written"] == 7
    convert_dataset(tmp_path / "bad.lmdb", tmp_path / "glint.rec", to="recordio")
    assert (tmp_path / "glint.idx").is_file() and len(open_dataset(tmp_path / "glint.rec")) == 7


def test_cli_inspect_and_convert(tmp_path: Path, records: list[tuple], capsys) -> None:
    write_imagefolder(records, tmp_path / "img")
    assert main(["data", "inspect", str(tmp_path / "img")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "imagefolder" and info["images"] == 9 and info["identities"] == 3
    assert main(["data", "convert", str(tmp_path / "img"), str(tmp_path / "out"),
                 "--to", "lmdb"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 9 and summary["skipped"] == 0
    assert open_dataset(tmp_path / "out").format == "lmdb"
    code = main(["data", "convert", str(tmp_path / "img"), str(tmp_path / "x"), "--to", "lmdb",
                 "--layout", "training"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "no teacher features" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
