from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from vec2face.data import decode_image, open_dataset, write_recordio
from vec2face.data.recordio import MAGIC, _frames, pack_record, read_frame, unpack_record
from vec2face.errors import DataFormatError


def test_round_trip_and_insightface_header(tmp_path: Path, records: list[tuple]) -> None:
    assert write_recordio(records, tmp_path) == 9
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    lines = idx.read_text().splitlines()
    assert len(lines) == 1 + 9 + 3 and lines[0] == "0\t0"
    buf = rec.read_bytes()
    flag, label, *_ = unpack_record(read_frame(buf, 0, rec), "r0")
    assert flag == 2 and label.tolist() == [10.0, 13.0]  # first identity record, end
    with open_dataset(tmp_path) as ds:
        assert ds.format == "recordio" and not ds.has_features
        np.testing.assert_array_equal(ds.labels, [r[1] for r in records])
        assert ds.identity_ranges == [(1, 4), (4, 7), (7, 10)]
        for i, (data, label_i, _) in enumerate(records):
            assert ds.read_raw(i) == (data, label_i, None)
        np.testing.assert_array_equal(ds[5].image, decode_image(records[5][0]))


def test_rec_path_prefix_and_labels_must_be_contiguous(tmp_path: Path, records: list[tuple]) -> None:
    write_recordio(records[:4], tmp_path / "part.rec")
    with open_dataset(tmp_path / "part.rec") as ds:
        assert len(ds) == 4
    shuffled = [records[0], records[4], records[1]]
    with pytest.raises(DataFormatError, match="label 0 after other labels"):
        write_recordio(shuffled, tmp_path / "bad.rec")
    assert not (tmp_path / "bad.rec").exists() and not (tmp_path / "bad.idx").exists()


def test_payload_containing_the_magic_is_split_and_restored(tmp_path: Path) -> None:
    magic = struct.pack("<I", MAGIC)
    # the IRHeader is 24 bytes, so payload offsets 24 + 4k are aligned
    data = b"ABCD" + magic + b"EF" + magic + b"GH" + magic + magic + b"xyz"
    framed = _frames(pack_record(3.0, data))
    assert framed.count(magic) >= 3  # split into several frames
    _, label, _, _, out = unpack_record(read_frame(framed, 0, "mem"), "mem")
    assert out == data and label.tolist() == [3.0]
    write_recordio([(data, 0), (magic * 3, 0)], tmp_path)
    with open_dataset(tmp_path) as ds:
        assert ds.read_raw(0)[0] == data and ds.read_raw(1)[0] == magic * 3
        np.testing.assert_array_equal(ds.labels, [0, 0])


def test_file_without_header_record(tmp_path: Path, records: list[tuple]) -> None:
    blob, lines = bytearray(), []
    for i, (data, label, _) in enumerate(records[:3]):
        lines.append(f"{i}\t{len(blob)}\n")
        blob += _frames(pack_record(float(label + 5), data, id_=i))
    (tmp_path / "train.rec").write_bytes(bytes(blob))
    (tmp_path / "train.idx").write_text("".join(lines))
    with open_dataset(tmp_path) as ds:
        assert len(ds) == 3 and ds.labels.tolist() == [5, 5, 5] and ds.identity_ranges is None
        assert ds.read_raw(0)[0] == records[0][0]


def test_wrong_magic_names_file_and_offset(tmp_path: Path, records: list[tuple]) -> None:
    write_recordio(records, tmp_path)
    rec = tmp_path / "train.rec"
    offset = int((tmp_path / "train.idx").read_text().splitlines()[3].split("\t")[1])
    buf = bytearray(rec.read_bytes())
    buf[offset:offset + 4] = b"\x00\x11\x22\x33"
    rec.write_bytes(bytes(buf))
    with pytest.raises(DataFormatError, match=rf"train.rec: bad magic 0x33221100 at offset {offset}"):
        open_dataset(tmp_path).read_raw(2)


def test_truncated_record_names_file_and_offset(tmp_path: Path, records: list[tuple]) -> None:
    write_recordio(records[:3], tmp_path / "t.rec")
    rec = tmp_path / "t.rec"
    last = int((tmp_path / "t.idx").read_text().splitlines()[3].split("\t")[1])
    buf = rec.read_bytes()
    # drop the identity record and cut the last image in half
    rec.write_bytes(buf[: last + 40])
    lines = (tmp_path / "t.idx").read_text().splitlines()[:4]
    (tmp_path / "t.idx").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"t.rec: truncated record at offset {last}"):
        ds = open_dataset(rec)
        ds.labels  # noqa: B018 - label scan reads every record
        ds.read_raw(2)


def test_bad_index_line(tmp_path: Path, records: list[tuple]) -> None:
    write_recordio(records[:2], tmp_path)
    (tmp_path / "train.idx").write_text("0\t0\nnot a line\n")
    with pytest.raises(DataFormatError, match=r"train.idx: line 2"):
        open_dataset(tmp_path)


def test_labels_float32_cannot_hold_are_refused(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    from vec2face.cli.main import main
    from vec2face.data import convert_dataset, write_lmdb

    # insightface stores the label as float32: 16777217 would read back as 16777216
    exact = [(records[0][0], 2**24 - 1), (records[1][0], 2**24)]
    write_recordio(exact, tmp_path / "ok")
    assert open_dataset(tmp_path / "ok").labels.tolist() == [2**24 - 1, 2**24]
    write_lmdb([(records[0][0], 2**24), (records[1][0], 2**24 + 1)], tmp_path / "big.lmdb")
    message = r"record 1 has label 16777217, above 16777216 \(2\*\*24\)"
    with pytest.raises(DataFormatError, match=message):
        convert_dataset(tmp_path / "big.lmdb", tmp_path / "out", to="recordio")
    assert main(["data", "convert", str(tmp_path / "big.lmdb"), str(tmp_path / "out"),
                 "--to", "recordio"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has label 16777217, above 16777216 (2**24)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.lmdb", "ok"]
