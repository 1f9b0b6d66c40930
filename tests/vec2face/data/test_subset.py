from __future__ import annotations

import json
import shutil
from pathlib import Path

import lmdb
import numpy as np
import pandas as pd
import pytest

from vec2face.cli.main import main
from vec2face.config import load_step_config
from vec2face.data import (
    SubsetConfig,
    make_subset,
    open_dataset,
    read_manifest,
    write_lmdb,
    write_manifest,
)
from vec2face.errors import ConfigError, Vec2FaceError

COUNTS = {"00000": 3, "00001": 1, "00002": 4, "00003": 3, "00004": 2, "00005": 3}


@pytest.fixture
def toy_root(tmp_path: Path, synth) -> Path:
    """The toy-world layout: zero-padded identity folders plus a ground-truth manifest."""
    root = tmp_path / "webface"
    synth.write_folder(root, COUNTS)
    rows = [{"identity": int(name), "path": f"{name}/{k:03d}.jpg", "yaw": float(10 * k + int(name))}
            for name, n in sorted(COUNTS.items()) for k in range(n)]
    write_manifest(pd.DataFrame(rows), root / "manifest.parquet")
    return root


def _lmdb_records(path: Path) -> list[bytes]:
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        values = [bytes(v) for _, v in txn.cursor()]
    env.close()
    return values


def test_subset_outputs(toy_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "subset"
    config = SubsetConfig(identities=3, min_images=3, seed=0, write_mask=True)
    report = make_subset(toy_root, out, config)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.parquet", "mask.npy", "subset_report.json", "train.lmdb"]
    assert report["requested"] == 3 and report["selected"] == 3
    assert report["identities_with_min_records"] == 4 and report["eligible_identities"] == 4
    recorded = json.loads((out / "subset_report.json").read_text())
    expected = {k: v for k, v in report.items() if k != "output"}
    assert recorded == {**expected, "source": "../webface"}
    assert report["source"] == str(toy_root) and report["output"] == str(out)
    manifest = read_manifest(out / "manifest.parquet")
    src = open_dataset(toy_root)
    with open_dataset(out) as ds:
        assert len(ds) == report["images_written"] == len(manifest)
        assert ds.labels.tolist() == manifest["label"].tolist()
        assert sorted(set(ds.labels.tolist())) == [0, 1, 2]
        assert np.all(np.diff(ds.labels) >= 0)  # contiguous, in original label order
        assert np.all(np.diff(manifest["source_label"]) >= 0)
        for i, j in enumerate(manifest["source_index"]):
            assert ds.read_raw(i)[0] == src.read_raw(int(j))[0]
    assert set(manifest["source_label"]) <= {0, 2, 3, 5}  # identities with >= 3 images
    assert manifest["identity"].tolist() == [src.identity_names[s] for s in manifest["source_label"]]
    # the toy ground truth flows through, matched by path
    assert report["source_manifest"] == "by path column 'path'"
    assert manifest["path"].tolist() == [src.files[j] for j in manifest["source_index"]]
    assert manifest["source_identity"].tolist() == [int(n) for n in manifest["identity"]]
    assert list(manifest["yaw"]) == [10.0 * int(p[-7:-4]) + int(p[:5]) for p in manifest["path"]]
    mask = np.load(out / "mask.npy")
    assert mask.dtype == np.int64 and mask.tolist() == manifest["source_index"].tolist()


def test_subset_is_deterministic_per_seed(toy_root: Path, tmp_path: Path) -> None:
    def run(seed: int, name: str) -> tuple[list[bytes], pd.DataFrame]:
        make_subset(toy_root, tmp_path / name, SubsetConfig(identities=2, min_images=2, seed=seed))
        return (_lmdb_records(tmp_path / name / "train.lmdb"),
                read_manifest(tmp_path / name / "manifest.parquet"))

    a, b = run(7, "a"), run(7, "b")
    assert a[0] == b[0]
    pd.testing.assert_frame_equal(a[1], b[1])
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == \
        (tmp_path / "b" / "manifest.parquet").read_bytes()
    chosen = {tuple(sorted(set(run(s, f"s{s}")[1]["source_label"]))) for s in range(6)}
    assert len(chosen) > 1  # different seeds choose different identities


def test_max_images_samples_per_identity(toy_root: Path, tmp_path: Path) -> None:
    report = make_subset(toy_root, tmp_path / "o",
                         SubsetConfig(identities=5, min_images=2, max_images=2, seed=3))
    manifest = read_manifest(tmp_path / "o" / "manifest.parquet")
    assert report["images_written"] == 10
    assert manifest.groupby("label").size().tolist() == [2] * 5
    assert np.all(np.diff(manifest["source_index"]) > 0)


def test_corrupt_images_are_skipped_and_can_disqualify(toy_root: Path, tmp_path: Path) -> None:
    (toy_root / "00002" / "001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    for k in range(2):
        (toy_root / "00003" / f"{k:03d}.jpg").write_bytes(b"")
    report = make_subset(toy_root, tmp_path / "o", SubsetConfig(identities=3, min_images=3))
    # 00003 is unreadable below 3 images; it is only decode-checked if visited before
    # the three readable identities were found
    checked_all = report["identities_checked"] == 4
    assert report["eligible_identities_exact"] == checked_all
    assert report["identities_rejected"] == int(checked_all)
    assert report["eligible_identities"] == 4 - report["identities_rejected"]
    reasons = {Path(s["location"]).parent.name + "/" + Path(s["location"]).name: s["reason"]
               for s in report["skipped_files"]}
    expected = {"00002/001.jpg"} | ({"00003/000.jpg", "00003/001.jpg"} if checked_all else set())
    assert set(reasons) == expected and report["skipped"] == len(expected)
    assert "cannot decode image" in reasons["00002/001.jpg"]
    manifest = read_manifest(tmp_path / "o" / "manifest.parquet")
    assert sorted(set(manifest["identity"])) == ["00000", "00002", "00005"]
    assert "00002/001.jpg" not in set(manifest["path"])
    with pytest.raises(Vec2FaceError, match=r"4 identities requested but only 3 .* readable"):
        make_subset(toy_root, tmp_path / "p", SubsetConfig(identities=4, min_images=3))
    assert not (tmp_path / "p").exists()


def test_the_report_is_the_same_under_any_output_root(toy_root: Path, tmp_path: Path) -> None:
    (toy_root / "00002" / "001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    other = tmp_path / "other" / "deeper"
    shutil.copytree(toy_root, other / "webface")
    config = SubsetConfig(identities=5, min_images=2, seed=0)  # every identity is checked
    make_subset(toy_root, tmp_path / "subset", config)
    make_subset(other / "webface", other / "subset", config)
    first = (tmp_path / "subset" / "subset_report.json").read_bytes()
    assert first == (other / "subset" / "subset_report.json").read_bytes()
    (skip,) = json.loads(first)["skipped_files"]
    assert skip["location"] == "../webface/00002/001.jpg"
    assert str(tmp_path) not in first.decode()


def test_too_many_identities_writes_nothing(toy_root: Path, tmp_path: Path) -> None:
    with pytest.raises(Vec2FaceError, match=r"7 identities requested but only 6 of 6"):
        make_subset(toy_root, tmp_path / "o", SubsetConfig(identities=7))
    assert not (tmp_path / "o").exists()
    with pytest.raises(Vec2FaceError, match="would replace its source"):
        make_subset(toy_root, toy_root, SubsetConfig(identities=1))


def test_lmdb_source_without_names_or_manifest(tmp_path: Path, records: list[tuple]) -> None:
    write_lmdb(records, tmp_path / "src" / "train.lmdb", layout="training")
    report = make_subset(tmp_path / "src", tmp_path / "o", SubsetConfig(identities=2, seed=1))
    manifest = read_manifest(tmp_path / "o" / "manifest.parquet")
    assert report["source_manifest"] == "none" and report["source_format"] == "lmdb"
    assert manifest["identity"].tolist() == [str(s) for s in manifest["source_label"]]
    # a subset of a subset carries the first manifest (matched by record index)
    make_subset(tmp_path / "o", tmp_path / "o2", SubsetConfig(identities=1, seed=0))
    second = read_manifest(tmp_path / "o2" / "manifest.parquet")
    assert list(second.columns) == [
        "label", "source_label", "source_index", "identity", "source_manifest_label",
        "source_source_label", "source_source_index", "source_identity"]
    first_rows = manifest.set_index("source_index").loc[second["source_source_index"]]
    assert second["source_source_label"].tolist() == first_rows["source_label"].tolist()


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"subset.identities"):
        load_step_config(SubsetConfig, "subset", {"subset": {"min_images": 2}})
    with pytest.raises(ConfigError, match=r"max_images \(1\) must be >= min_images \(2\)"):
        load_step_config(SubsetConfig, "subset", None, {"identities": 1, "min_images": 2,
                                                        "max_images": 1})
    assert all(f.description for f in SubsetConfig.model_fields.values())


def test_cli_with_params_file(toy_root: Path, tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("subset:\n  identities: 2\n  min_images: 3\n  seed: 5\n")
    out = tmp_path / "o"
    code = main(["subset", str(toy_root), "--out", str(out), "--params", str(params),
                 "--identities", "3", "--write-mask"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["selected"] == 3 and summary["seed"] == 5 and summary["min_images"] == 3
    assert (out / "mask.npy").is_file()
    code = main(["subset", str(toy_root), "--out", str(tmp_path / "x"), "--identities", "9"])
    err = capsys.readouterr().err
    assert code == 2 and "9 identities requested but only 6" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
