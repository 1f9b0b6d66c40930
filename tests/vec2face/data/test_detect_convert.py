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
from vec2face.errors import DataFormatError, OutputWriteError, Vec2FaceError

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


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _cli_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_overwrite_never_replaces_the_source(tmp_path: Path, records: list[tuple], capsys) -> None:
    src = tmp_path / "par" / "src"
    write_imagefolder(records, src)
    cases = [
        (src, src, "lmdb", "would replace the source"),  # DST is SRC
        (src, tmp_path / "par", "lmdb", "would replace the source"),  # DST contains SRC
        (src, src / "out", "recordio", "lies inside the source dataset"),  # DST inside SRC
    ]
    write_recordio(records, tmp_path / "glint.rec")
    write_lmdb(records, tmp_path / "a.lmdb")
    before = _files(tmp_path)
    cases += [
        (tmp_path / "glint.rec", tmp_path / "glint.idx", "recordio", "would replace the source"),
        (tmp_path / "a.lmdb", tmp_path / "a.lmdb", "lmdb", "would replace the source"),
    ]
    for s, d, to, message in cases:
        with pytest.raises(Vec2FaceError, match=message):
            convert_dataset(s, d, to=to, overwrite=True)
        err = _cli_error(["data", "convert", str(s), str(d), "--to", to, "--overwrite"], capsys)
        assert message in err and str(d) in err
    assert _files(tmp_path) == before  # every source untouched, nothing written


def test_overwrite_replaces_only_an_earlier_conversion(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    write_lmdb(records, tmp_path / "src.lmdb")
    src, out = tmp_path / "src.lmdb", tmp_path / "out"
    convert_dataset(src, out, to="imagefolder")
    convert_dataset(src, out, to="imagefolder", overwrite=True)  # its own earlier output
    convert_dataset(src, out, to="recordio", overwrite=True)  # another format's output
    (out / "notes.txt").write_text("mine")
    err = _cli_error(["data", "convert", str(src), str(out), "--to", "lmdb", "--overwrite"], capsys)
    assert f"{out}: holds notes.txt, which a conversion does not write" in err
    assert (out / "notes.txt").read_text() == "mine" and (out / "train.rec").is_file()
    (out / "notes.txt").unlink()
    (out / "0").mkdir()
    (out / "0" / "holiday.jpg").write_bytes(records[0][0])  # not a name the writer gives
    with pytest.raises(Vec2FaceError, match="holds 0, which a conversion does not write"):
        convert_dataset(src, out, to="imagefolder", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(Vec2FaceError, match="file is a file; converting to lmdb here"):
        convert_dataset(src, tmp_path / "file", to="lmdb", overwrite=True)
    (tmp_path / "dir.lmdb").mkdir()
    with pytest.raises(Vec2FaceError, match=r"dir\.lmdb is a directory"):
        convert_dataset(src, tmp_path / "dir.lmdb", to="lmdb", overwrite=True)
    assert (tmp_path / "file").read_text() == "x" and (out / "0" / "holiday.jpg").is_file()


_KILLED_CONVERT = """
import os, signal, sys
import vec2face.data.convert as convert

real = convert.readable_records

def dying(*args):
    for n, record in enumerate(real(*args)):
        if n == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # no finally runs, as with kill -9 or OOM
        yield record

convert.readable_records = dying
convert.convert_dataset(sys.argv[1], sys.argv[2], to="lmdb")
"""


def test_a_killed_convert_leaves_nothing_after_the_next_run(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    import subprocess
    import sys

    write_lmdb(records, tmp_path / "src.lmdb")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _KILLED_CONVERT, str(tmp_path / "src.lmdb"),
                           str(out)], capture_output=True, timeout=120)
    assert proc.returncode == -9
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(left) == 1 and left[0].endswith(".tmp.d")  # the partial LMDB, hidden
    assert main(["data", "convert", str(tmp_path / "src.lmdb"), str(out), "--to", "lmdb"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src.lmdb"]
    assert len(open_dataset(out)) == len(records)


def test_converting_when_every_record_is_skipped_is_an_error(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    write_lmdb([(b"not an image", r[1]) for r in records], tmp_path / "junk.lmdb")
    for to in ("imagefolder", "lmdb", "recordio"):
        err = _cli_error(["data", "convert", str(tmp_path / "junk.lmdb"), str(tmp_path / "o"),
                          "--to", to], capsys)
        assert "junk.lmdb: every record was skipped (9 unreadable; first:" in err
    write_lmdb(records, tmp_path / "good.lmdb")
    np.save(tmp_path / "none.npy", np.zeros(0, np.int64))
    with pytest.raises(DataFormatError, match=r"good\.lmdb: holds no records; nothing written"):
        convert_dataset(tmp_path / "good.lmdb", tmp_path / "o.lmdb", to="lmdb",
                        mask=tmp_path / "none.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.lmdb", "junk.lmdb", "none.npy"]


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data: bytes) -> int:
        import errno

        self._room -= len(data)
        if self._room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(data)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def test_a_full_disk_names_the_output(
    tmp_path: Path, records: list[tuple], capsys, monkeypatch
) -> None:
    import errno

    import vec2face.data.recordio as recordio

    write_lmdb(records, tmp_path / "src.lmdb")
    real_write_bytes = Path.write_bytes

    def full_after_three(self, data):
        if len(list(self.parent.parent.rglob("*.png"))) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_bytes(self, data)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", full_after_three)
        err = _cli_error(["data", "convert", str(tmp_path / "src.lmdb"), str(tmp_path / "faces"),
                          "--to", "imagefolder"], capsys)
    assert f"error: {tmp_path / 'faces'}: cannot write the imagefolder output" in err
    assert "No space left on device" in err

    def full_open(path, mode="r", *args, **kwargs):
        return _FullDisk(open(path, mode, *args, **kwargs), room=500)

    monkeypatch.setattr(recordio, "open", full_open, raising=False)
    err = _cli_error(["data", "convert", str(tmp_path / "src.lmdb"), str(tmp_path / "rec"),
                      "--to", "recordio"], capsys)
    assert f"error: {tmp_path / 'rec'}: cannot write the recordio output" in err
    assert "No space left on device" in err
    with pytest.raises(OutputWriteError, match=r"glint\.rec: cannot write the RecordIO file"):
        write_recordio(records, tmp_path / "glint.rec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.lmdb"]  # no partial output


def test_inspect_deep_counts_unreadable_images(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    write_imagefolder(records, tmp_path / "img")
    assert main(["data", "inspect", str(tmp_path / "img"), "--deep"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["unreadable"] == 0 and clean["unreadable_files"] == []
    (tmp_path / "img" / "1" / "000001.png").write_bytes(records[4][0][:40])  # cut short
    (tmp_path / "img" / "2" / "000002.png").write_bytes(b"")
    shallow = inspect_dataset(tmp_path / "img")  # reads the first header only
    assert "unreadable" not in shallow and shallow["images"] == 9
    assert main(["data", "inspect", str(tmp_path / "img"), "--deep"]) == 0
    deep = json.loads(capsys.readouterr().out)
    assert deep["unreadable"] == 2 and deep["images"] == 9 and deep["image_size"] == [16, 16]
    assert [Path(e["location"]).name for e in deep["unreadable_files"]] == [
        "000001.png", "000002.png"]
    assert "cannot decode image" in deep["unreadable_files"][0]["reason"]


def test_inspect_summarises_a_verification_bin(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    write_bin([r[0] for r in records[:6]], [True, False, False], tmp_path / "lfw.bin")
    assert main(["data", "inspect", str(tmp_path / "lfw.bin")]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "format": "verification_bin", "path": str(tmp_path / "lfw.bin"), "pairs": 3,
        "genuine": 1, "impostor": 2, "images": 6, "image_size": [16, 16],
    }
    write_bin([r[0] for r in records[:4]] + [b"\xff\xd8\xffjunk"] * 2, [True] * 3,
              tmp_path / "cut.bin")
    deep = inspect_dataset(tmp_path / "cut.bin", deep=True)
    assert deep["genuine"] == 3 and deep["impostor"] == 0 and deep["unreadable"] == 2
    assert [e["image"] for e in deep["unreadable_files"]] == [4, 5]
    write_bin([], [], tmp_path / "empty.bin")
    assert inspect_dataset(tmp_path / "empty.bin")["pairs"] == 0
    err = _cli_error(["data", "inspect", str(tmp_path / "lfw.bin"), "--mask",
                      str(tmp_path / "lfw.bin")], capsys)
    assert "lfw.bin: a mask selects dataset records" in err
