from __future__ import annotations

import os
import pickle
from pathlib import Path

import lmdb
import msgpack
import numpy as np
import pytest

from vec2face.data import decode_image, open_dataset, write_lmdb
from vec2face.data.lmdb_format import LmdbDataset
from vec2face.errors import DataFormatError


def test_training_layout_round_trip(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "train.lmdb"
    assert write_lmdb(records, path, layout="training") == len(records)
    with open_dataset(path) as ds:
        assert ds.format == "lmdb" and ds.has_features
        assert len(ds) == len(records) and ds.num_identities == 3 and ds.class_num == 3
        np.testing.assert_array_equal(ds.labels, [r[1] for r in records])
        for i, (data, label, feature) in enumerate(records):
            raw, raw_label, raw_feature = ds.read_raw(i)
            assert raw == data and raw_label == label
            assert raw_feature.dtype == np.float32
            np.testing.assert_array_equal(raw_feature, feature)
            sample = ds[i]
            np.testing.assert_array_equal(sample.image, decode_image(data))
            assert sample.label == label


def test_fr_layout_on_disk_matches_the_spec(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "fr.lmdb"
    write_lmdb(records, path, layout="fr")
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        assert msgpack.unpackb(txn.get(b"__len__")) == 9
        assert msgpack.unpackb(txn.get(b"__keys__")) == [str(i).encode() for i in range(9)]
        assert msgpack.unpackb(txn.get(b"__classnum__")) == 3
        assert msgpack.unpackb(txn.get(b"4")) == [records[4][0], 1]
    env.close()
    with open_dataset(path) as ds:
        assert not ds.has_features
        assert ds.read_raw(4) == (records[4][0], 1, None)
        assert ds[4].feature is None


def test_training_record_holds_a_whole_npy_file(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "t.lmdb"
    write_lmdb(records, path, layout="training")
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        image, npy, label = msgpack.unpackb(txn.get(b"2"))
    env.close()
    assert npy.startswith(b"\x93NUMPY") and label == 0 and image == records[2][0]


def test_training_layout_needs_features(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "t.lmdb"
    with pytest.raises(DataFormatError, match="record 0 has no feature"):
        write_lmdb([r[:2] for r in records], path, layout="training")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_masks_select_in_mask_order(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "d.lmdb"
    write_lmdb(records, path)
    mask = np.array([7, 0, 4], dtype=np.int64)
    np.save(tmp_path / "mask.npy", mask)
    for m in (tmp_path / "mask.npy", mask):
        with open_dataset(path, mask=m) as ds:
            assert len(ds) == 3
            np.testing.assert_array_equal(ds.labels, [2, 0, 1])
            assert ds.read_raw(0)[0] == records[7][0]
            assert ds.record_index(-1) == 4
            assert ds.num_identities == 3
    np.save(tmp_path / "bad.npy", np.array([1, 9]))
    with pytest.raises(DataFormatError, match=r"bad.npy: index 9 at position 1 is out of range"):
        open_dataset(path, mask=tmp_path / "bad.npy")
    with pytest.raises(DataFormatError, match="1-D integer"):
        open_dataset(path, mask=np.array([0.5]))


def test_directory_env_and_missing_keys(tmp_path: Path, records: list[tuple]) -> None:
    env_dir = tmp_path / "envdir"
    env = lmdb.open(str(env_dir), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"0", msgpack.packb([records[0][0], 0]))
        txn.put(b"__len__", msgpack.packb(1))
    env.close()
    with pytest.raises(DataFormatError, match=r"envdir: LMDB has no '__keys__'"):
        open_dataset(env_dir)
    env = lmdb.open(str(env_dir), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"__keys__", msgpack.packb([b"0"]))
    env.close()
    with open_dataset(env_dir) as ds:
        assert len(ds) == 1 and ds.read_raw(0)[0] == records[0][0]


def test_pickled_dataset_reopens(tmp_path: Path, records: list[tuple]) -> None:
    path = tmp_path / "p.lmdb"
    write_lmdb(records, path, layout="training")
    ds = open_dataset(path, mask=np.array([3, 5]))
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone, LmdbDataset) and clone._env is None
    assert clone.read_raw(1)[0] == records[5][0]
    second = open_dataset(path)  # a second reader of the same file in this process
    assert second.read_raw(3)[0] == records[3][0]
    for d in (ds, clone, second):
        d.close()


def test_corrupt_image_record_names_the_record(tmp_path: Path, records: list[tuple]) -> None:
    bad = list(records)
    bad[2] = (records[2][0][:40], 0, records[2][2])
    path = tmp_path / "c.lmdb"
    write_lmdb(bad, path)
    with open_dataset(path) as ds:
        with pytest.raises(DataFormatError, match=r"c.lmdb record 2: cannot decode"):
            ds[2]
        assert ds[3].label == 1


def test_map_grows_when_full(tmp_path: Path, records: list[tuple], monkeypatch) -> None:
    import vec2face.data.lmdb_format as mod

    monkeypatch.setattr(mod, "_INITIAL_MAP_SIZE", 64 * 1024)
    big = [(records[0][0] + bytes(20000), 0)] * 8
    assert write_lmdb(big, tmp_path / "g.lmdb") == 8
    with open_dataset(tmp_path / "g.lmdb") as ds:
        assert ds.read_raw(7)[0] == big[7][0]



def _send_first_bytes(datasets, conn) -> None:
    conn.send([ds.read_raw(0)[0] for ds in datasets])
    conn.close()


def test_forked_workers_reopen(tmp_path: Path, records: list[tuple]) -> None:
    import multiprocessing as mp

    from vec2face.data import write_recordio

    write_lmdb(records, tmp_path / "w.lmdb")
    write_recordio(records, tmp_path / "rec")
    datasets = [open_dataset(tmp_path / "w.lmdb", mask=np.array([4])), open_dataset(tmp_path / "rec")]
    expected = [records[4][0], records[0][0]]
    for ds in datasets:
        ds.labels  # noqa: B018 - opens the handles in the parent before forking
    ctx = mp.get_context("fork")
    # a forked copy of the live objects (DataLoader workers) and a pickled copy (Pool)
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_send_first_bytes, args=(datasets, child_end))
    proc.start()
    child_end.close()  # so a crashed child shows up as EOF instead of a hang
    assert parent_end.poll(20)
    assert parent_end.recv() == expected
    proc.join(20)
    assert proc.exitcode == 0
    pool = ctx.Pool(1)
    try:
        assert pool.map(_first_bytes, datasets) == expected
    finally:
        # close and join: the worker exits on its sentinel; terminate() would rely on SIGTERM
        pool.close()
        pool.join()
    assert [_first_bytes(ds) for ds in datasets] == expected  # the parent's handles still work


def _first_bytes(ds) -> bytes:
    return ds.read_raw(0)[0]


def _truncated(path: Path, records: list[tuple], keep: float) -> Path:
    """An LMDB cut short as a full disk or an interrupted copy leaves it."""
    write_lmdb(records * 20, path)  # a dozen pages of records
    size = path.stat().st_size
    os.truncate(path, int(size * keep) // 4096 * 4096 or 100)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_truncated_lmdb_is_an_error_naming_the_file(
    tmp_path: Path, records: list[tuple], keep: float
) -> None:
    from vec2face.data import convert_dataset, inspect_dataset
    from vec2face.data.subset import SubsetConfig, make_subset

    path = _truncated(tmp_path / "cut.lmdb", records, keep)
    # reading a page past the end of the mapped file would kill the process (SIGBUS)
    message = r"cut\.lmdb: (truncated LMDB|cannot open LMDB)"
    with pytest.raises(DataFormatError, match=message):
        open_dataset(path)
    with pytest.raises(DataFormatError, match=message):
        inspect_dataset(path)
    with pytest.raises(DataFormatError, match=message):
        convert_dataset(path, tmp_path / "out", to="recordio")
    with pytest.raises(DataFormatError, match=message):
        make_subset(path, tmp_path / "sub", SubsetConfig(identities=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.lmdb"]  # nothing written


def test_truncated_lmdb_directory_environment(tmp_path: Path, records: list[tuple]) -> None:
    env_dir = tmp_path / "envdir"
    env_dir.mkdir()
    _truncated(env_dir / "data.mdb", records, 0.5)
    with pytest.raises(DataFormatError, match=r"envdir/data\.mdb: truncated LMDB \(\d+ bytes"):
        open_dataset(env_dir)


def test_cli_on_a_truncated_lmdb_prints_one_line_and_exits_2(
    tmp_path: Path, records: list[tuple]
) -> None:
    import subprocess
    import sys

    path = _truncated(tmp_path / "cut.lmdb", records, 0.5)
    # a separate process: a regression would end it with SIGBUS (exit -7), not this test run
    for argv in (["data", "inspect", str(path)],
                 ["data", "convert", str(path), str(tmp_path / "o"), "--to", "lmdb"],
                 ["subset", str(path), "--out", str(tmp_path / "s"), "--identities", "1"]):
        proc = subprocess.run([sys.executable, "-m", "vec2face.cli.main", *argv],
                              capture_output=True, text=True, timeout=120)
        err = proc.stderr.strip()
        assert proc.returncode == 2, (argv, proc.returncode, err)
        assert err.count("\n") == 0 and err.startswith(f"error: {path}: truncated LMDB"), err
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_label_beyond_int64_is_an_error_naming_the_record(
    tmp_path: Path, records: list[tuple], capsys
) -> None:
    from vec2face.cli.main import main

    path = tmp_path / "huge.lmdb"
    write_lmdb(records[:2], path)
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"1", msgpack.packb([records[1][0], 2**64 - 1]))
    env.close()
    with pytest.raises(DataFormatError, match=r"huge\.lmdb record 1: label must be an int in"):
        open_dataset(path).labels  # noqa: B018 - reading the labels is the test
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "huge.lmdb record 1: label must be an int in 0.." in err
    assert "18446744073709551615" in err
    with pytest.raises(DataFormatError, match=r"record 0 label must be an int in 0\.\."):
        write_lmdb([(records[0][0], 2**63)], tmp_path / "w.lmdb")
    assert not (tmp_path / "w.lmdb").exists()
