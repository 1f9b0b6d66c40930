"""Merging HSFace shards: one LMDB in identity order, vectors, manifest, prefix masks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lmdb
import msgpack
import numpy as np
import pandas as pd
import pytest
import torch

from vec2face.cli.main import main
from vec2face.data import open_dataset
from vec2face.errors import ConfigError, DataFormatError
from vec2face.hsface.merge import find_shards, merge_shards
from vec2face.hsface.writer import HSFaceConfig, generate_hsface
from vec2face.models import build_generator
from vec2face.models.generator import save_generator_checkpoint

N_IDS, M = 7, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """7 identities x 3 images in shards of 3 identities (3 shards, the last one short)."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("merge_inputs")
    torch.manual_seed(1)
    save_generator_checkpoint(build_generator("tiny"), d / "gen.pth")
    np.save(
        d / "ids.npy", np.random.default_rng(1).standard_normal((N_IDS, 512)).astype(np.float32)
    )
    cfg = HSFaceConfig(
        identities=N_IDS, images_per_identity=M, shard_identities=3, batch_size=16, device="cpu"
    )
    generate_hsface(cfg, d / "gen.pth", d / "ids.npy", d / "ds", progress=False)
    return d / "ds"


def lmdb_records(path: Path) -> list[tuple[bytes, int]]:
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        keys = msgpack.unpackb(txn.get(b"__keys__"))
        assert keys == [str(i).encode() for i in range(len(keys))]
        out = [tuple(msgpack.unpackb(txn.get(k))) for k in keys]
    env.close()
    return out


def test_merge_joins_in_identity_order_with_prefix_masks(dataset, tmp_path, capsys):
    out = tmp_path / "merged"
    rc = main(["data", "merge", str(dataset), str(out), "--prefix-masks", "2,5"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["identities"] == N_IDS and summary["images"] == N_IDS * M

    shard_dirs = sorted((dataset / "shards").iterdir())
    expected = [r for d in shard_dirs for r in lmdb_records(d / "train.lmdb")]
    merged = lmdb_records(out / "train.lmdb")
    assert merged == expected  # bytes copied, labels kept
    assert [label for _, label in merged] == np.repeat(np.arange(N_IDS), M).tolist()

    vec = np.load(out / "vectors.npy")
    np.testing.assert_array_equal(
        vec, np.concatenate([np.load(d / "vectors.npy") for d in shard_dirs])
    )
    man = pd.read_parquet(out / "manifest.parquet")
    assert man["record"].tolist() == list(range(N_IDS * M))
    assert man["identity"].tolist() == [label for _, label in merged]
    assert man["shard"].tolist() == [0] * 9 + [1] * 9 + [2] * 3

    for p in (2, 5):
        mask = np.load(out / f"mask_{p}_ids.npy")
        assert mask.dtype == np.int64 and mask.tolist() == list(range(p * M))
        ds = open_dataset(out / "train.lmdb", mask=mask)
        assert len(ds) == p * M and sorted(set(ds.labels.tolist())) == list(range(p))
    assert open_dataset(out / "train.lmdb").class_num == N_IDS


def test_shards_in_any_order_give_the_same_merge(dataset, tmp_path):
    dirs = find_shards(dataset / "shards")
    a = merge_shards(dirs, tmp_path / "a")
    b = merge_shards(dirs[::-1], tmp_path / "b")
    assert a["images"] == b["images"]
    assert lmdb_records(tmp_path / "a" / "train.lmdb") == lmdb_records(
        tmp_path / "b" / "train.lmdb"
    )
    for f in ("vectors.npy", "manifest.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_merge_json_is_the_same_under_any_output_root(dataset, tmp_path):
    written = []
    for root in (tmp_path / "root1", tmp_path / "other" / "deeper"):
        shutil.copytree(dataset, root / "hsface")
        summary = merge_shards(find_shards(root / "hsface"), root / "merged", prefix_sizes=(2,))
        assert summary["shards"][0] == str(root / "hsface" / "shards" / "shard_00000")
        written.append((root / "merged" / "merge.json").read_bytes())
    assert written[0] == written[1]
    shards = json.loads(written[0])["shards"]
    assert shards == [f"../hsface/shards/shard_{k:05d}" for k in range(3)]


def test_missing_and_incomplete_shards_are_named(dataset, tmp_path):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    shutil.rmtree(broken / "shards" / "shard_00001")
    with pytest.raises(DataFormatError, match="missing shards shard_00001"):
        find_shards(broken)
    with pytest.raises(DataFormatError, match="identities 3..5 are in no shard"):
        merge_shards(
            [broken / "shards" / "shard_00000", broken / "shards" / "shard_00002"], tmp_path / "x"
        )
    (broken / "shards" / ".shard_00001.tmp").mkdir()
    with pytest.raises(DataFormatError, match=r"incomplete shards.*\.shard_00001\.tmp"):
        find_shards(broken)
    shutil.rmtree(broken / "shards" / ".shard_00001.tmp")
    shutil.copytree(dataset / "shards" / "shard_00001", broken / "shards" / "shard_00001")
    (broken / "shards" / "shard_00002" / "vectors.npy").unlink()
    with pytest.raises(DataFormatError, match="incomplete shards.*shard_00002"):
        find_shards(broken)
    # a trailing shard missing is caught through hsface.json's shard list
    shutil.rmtree(broken / "shards" / "shard_00002")
    with pytest.raises(DataFormatError, match="missing shards shard_00002"):
        find_shards(broken)
    with pytest.raises(ConfigError, match=r"prefix sizes \[9\] outside 1..7"):
        merge_shards(find_shards(dataset), tmp_path / "y", prefix_sizes=(9,))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_merge_error_is_one_line(tmp_path, capsys):
    rc = main(["data", "merge", str(tmp_path / "none"), str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: shards folder not found") and "\n" not in err


def test_a_truncated_shard_is_one_error_naming_it(dataset, tmp_path, capsys):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    cut = broken / "shards" / "shard_00001" / "train.lmdb"
    os.truncate(cut, cut.stat().st_size // 2 // 4096 * 4096)
    # reading a page past the end of the mapped file would kill the process (SIGBUS)
    assert main(["data", "merge", str(broken), str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cut}: truncated LMDB" in err
    assert not (tmp_path / "merged").exists()
