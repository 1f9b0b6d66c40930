"""Sharded HSFace writer: layout, labels, sigma shares, determinism, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lmdb
import msgpack
import numpy as np
import pandas as pd
import pytest
import torch

from vec2face.cli.main import main
from vec2face.data import decode_image, lmdb_format, open_dataset
from vec2face.errors import ConfigError, OutputWriteError, Vec2FaceError
from vec2face.hsface import writer as hsface
from vec2face.hsface.writer import HSFaceConfig, generate_hsface, shard_name
from vec2face.utils.paths import resolve_recorded

N_IDS, M = 6, 5
CFG = dict(identities=N_IDS, images_per_identity=M, shard_identities=4, batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    """One uninterrupted run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("hsface_ref") / "ds"
    generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    return out


def plain_read(path: Path) -> tuple[dict, list[tuple[bytes, int]]]:
    """An LMDB reader using only lmdb + msgpack (as the public SOTA-FR trainer does)."""
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        keys = msgpack.unpackb(txn.get(b"__keys__"))
        header = {
            "len": msgpack.unpackb(txn.get(b"__len__")),
            "keys": keys,
            "classnum": msgpack.unpackb(txn.get(b"__classnum__")),
        }
        records = [tuple(msgpack.unpackb(txn.get(k))) for k in keys]
    env.close()
    return header, records


def shard_bytes(out: Path) -> dict[str, object]:
    """Everything that must be byte-identical between runs: record bytes, vectors, manifests."""
    result: dict[str, object] = {}
    for d in sorted((out / "shards").iterdir()):
        result[f"{d.name}/records"] = plain_read(d / "train.lmdb")[1]
        for f in ("vectors.npy", "manifest.parquet"):
            result[f"{d.name}/{f}"] = (d / f).read_bytes()
    return result


def test_shard_layout_is_readable_both_ways(reference):
    shards = sorted(p.name for p in (reference / "shards").iterdir())
    assert shards == ["shard_00000", "shard_00001"]
    d = reference / "shards" / "shard_00001"  # identities 4 and 5
    header, records = plain_read(d / "train.lmdb")
    assert header["len"] == 10 and header["keys"] == [str(i).encode() for i in range(10)]
    assert header["classnum"] == 6
    assert [label for _, label in records] == [4] * M + [5] * M  # global identity labels
    ds = open_dataset(d / "train.lmdb")
    assert len(ds) == 10 and ds.labels.tolist() == [4] * M + [5] * M and ds.class_num == 6
    image = ds[3].image
    assert image.shape == (112, 112, 3) and image.dtype == np.uint8
    assert records[3][0][:3] == b"\xff\xd8\xff"
    np.testing.assert_array_equal(decode_image(records[3][0]), image)

    vec = np.load(d / "vectors.npy")
    assert vec.dtype == np.float32 and vec.shape == (10, 512)
    man = pd.read_parquet(d / "manifest.parquet")
    assert man["identity"].tolist() == [4] * M + [5] * M
    assert man["sample"].tolist() == list(range(M)) * 2
    assert (man["shard"] == 1).all() and not man["targeted"].any()
    assert man[["yaw", "pitch", "age", "quality"]].isna().all().all()


def test_manifest_sigmas_cosines_and_vectors(reference, inputs):
    identities = np.load(inputs[1])
    for k in (0, 1):
        d = reference / "shards" / shard_name(k)
        man = pd.read_parquet(d / "manifest.parquet")
        vec = np.load(d / "vectors.npy").astype(np.float64)
        for ident, rows in man.groupby("identity"):
            # 5 images at 40/40/20%: 2/2/1
            assert sorted(rows["sigma"].round(2).tolist()) == [0.3, 0.3, 0.5, 0.5, 0.7]
            v = identities[ident].astype(np.float64)
            x = vec[rows["record"].to_numpy()]
            cos = x @ v / (np.linalg.norm(x, axis=1) * np.linalg.norm(v))
            np.testing.assert_allclose(rows["cos_identity"], cos, rtol=1e-5)
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.linalg.norm(v), rtol=1e-5)
            # higher sigma, further from the identity
            by_sigma = rows.groupby(rows["sigma"].round(2))["cos_identity"].mean()
            assert by_sigma[0.3] > by_sigma[0.7]
    summary = json.loads((reference / "hsface.json").read_text())
    assert summary["images"] == N_IDS * M and len(summary["shards"]) == 2


def test_same_seed_same_bytes_other_seed_differs(inputs, reference, tmp_path):
    generate_hsface(HSFaceConfig(**CFG), *inputs, tmp_path / "a", progress=False)
    assert shard_bytes(tmp_path / "a") == shard_bytes(reference)
    # the shard size and batch size do not change what an identity's images are
    generate_hsface(
        HSFaceConfig(**{**CFG, "shard_identities": 3, "batch_size": 3}),
        *inputs,
        tmp_path / "b",
        progress=False,
    )
    first = plain_read(tmp_path / "b" / "shards" / "shard_00000" / "train.lmdb")[1]
    ref = plain_read(reference / "shards" / "shard_00000" / "train.lmdb")[1]
    assert [label for _, label in first] == [label for _, label in ref[:15]]
    for (a, _), (b, _) in zip(first, ref[:15], strict=True):
        # another batch size reorders float sums (1-ulp differences); JPEG can turn a one
        # level change into a few levels inside an 8x8 block, so compare the mean too
        diff = np.abs(decode_image(a).astype(int) - decode_image(b).astype(int))
        assert diff.max() <= 8 and diff.mean() < 0.25
    generate_hsface(HSFaceConfig(**{**CFG, "seed": 1}), *inputs, tmp_path / "c", progress=False)
    assert (
        shard_bytes(tmp_path / "c")["shard_00000/records"]
        != shard_bytes(reference)["shard_00000/records"]
    )


def test_another_process_writes_byte_identical_shards(inputs, tmp_path):
    """Every file of the dataset (each LMDB too, not only its records) is the same when
    a separate process (another heap, another import order) writes it."""
    import os
    import subprocess
    import sys

    gen, ids = inputs
    cfg = dict(CFG, identities=3, shard_identities=2, export_imagefolder=True)
    generate_hsface(HSFaceConfig(**cfg), gen, ids, tmp_path / "a" / "ds", progress=False)
    argv = [sys.executable, "-m", "vec2face.cli.main", "generate", "--generator", str(gen)]
    argv += ["--identities", str(ids), "--out", str(tmp_path / "b" / "ds")]
    argv += ["--num-identities", "3", "--images-per-identity", str(M), "--shard-identities", "2"]
    argv += ["--batch-size", "8", "--device", "cpu", "--export-imagefolder", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    trees = [
        {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
         if p.is_file()}
        for out in (tmp_path / "a" / "ds", tmp_path / "b" / "ds")
    ]
    assert sorted(trees[0]) == sorted(trees[1])
    assert {"hsface.json", "shards/shard_00001/train.lmdb"} <= set(trees[0])
    assert [name for name in trees[0] if trees[0][name] != trees[1][name]] == []


def test_summaries_are_the_same_under_any_output_root(inputs, tmp_path):
    cfg = HSFaceConfig(**{**CFG, "identities": 2, "shard_identities": 2})
    written = []
    for root in (tmp_path / "root1", tmp_path / "other" / "deeper"):
        generator, vectors = root / "models" / "gen.pth", root / "vectors" / "ids.npy"
        for src, dst in zip(inputs, (generator, vectors), strict=True):
            dst.parent.mkdir(parents=True)
            shutil.copyfile(src, dst)
        generate_hsface(cfg, generator, vectors, root / "hsface", progress=False)
        files = ("hsface.json", "shards/shard_00000/shard.json")
        written.append([(root / "hsface" / f).read_bytes() for f in files])
    assert written[0] == written[1]
    summary = json.loads(written[1][0])
    assert summary["generator"]["path"] == "../models/gen.pth"
    assert summary["identity_vectors"]["path"] == "../vectors/ids.npy"
    recorded = resolve_recorded(summary["generator"]["path"], root / "hsface")
    assert recorded.resolve() == generator.resolve()


def test_killed_run_resumes_to_identical_bytes(inputs, reference, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    real = hsface.encode_image
    calls = {"n": 0}

    def dying_encode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4 * M + 3:  # mid-way through the second shard
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(hsface, "encode_image", dying_encode)
    with pytest.raises(KeyboardInterrupt):
        generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    monkeypatch.setattr(hsface, "encode_image", real)
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == [".shard_00001.tmp", "shard_00000"]  # the interrupted shard is not visible
    assert not (out / "hsface.json").exists()

    # a leftover temporary shard (a hard kill leaves one) is redone, not trusted
    junk = out / "shards" / ".shard_00001.tmp"
    (junk / "train.lmdb").write_bytes(b"partial")
    summary = generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    assert summary["skipped_shards"] == [0] and summary["generated_shards"] == [1]
    assert summary["complete"] and not junk.exists()
    assert shard_bytes(out) == shard_bytes(reference)
    again = generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    assert again["generated_shards"] == [] and again["skipped_shards"] == [0, 1]


def test_full_disk_mid_shard_fails_cleanly_and_resumes(
    inputs, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "full"
    real = lmdb_format._put_all
    calls = {"n": 0}

    def full_disk(env, items):
        calls["n"] += 1
        if calls["n"] == 2:  # the second shard's first commit
            raise lmdb.DiskError("mdb_txn_commit: No space left on device")
        return real(env, items)

    monkeypatch.setattr(lmdb_format, "_put_all", full_disk)
    with pytest.raises(OutputWriteError, match=r"shard_00001\.tmp/train\.lmdb: cannot write the"):
        generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == [".shard_00001.tmp", "shard_00000"]  # no half-written shard is visible
    assert not any((out / "shards" / ".shard_00001.tmp").glob("train.lmdb*"))
    assert not (out / "hsface.json").exists()

    # through the CLI the same fault is one line naming the file, exit status 2
    calls["n"] = 1
    shutil.rmtree(out / "shards" / "shard_00000")
    argv = ["generate", "--generator", str(inputs[0]), "--identities", str(inputs[1])]
    argv += ["--out", str(out), "--num-identities", str(N_IDS), "--images-per-identity", str(M)]
    argv += ["--shard-identities", "4", "--batch-size", "8", "--device", "cpu", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.lmdb: cannot write the LMDB" in err[0], err
    assert "No space left on device" in err[0]
    # only temporary names (the first attempt's shard 1 too): redone by the next run
    assert sorted(p.name for p in (out / "shards").iterdir()) == [
        ".shard_00000.tmp",
        ".shard_00001.tmp",
    ]
    monkeypatch.setattr(lmdb_format, "_put_all", real)
    summary = generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    assert summary["complete"] and summary["generated_shards"] == [0, 1]
    assert shard_bytes(out) == shard_bytes(reference)


def test_a_checkpoint_that_does_not_load_is_one_error_naming_it(inputs, tmp_path, capsys):
    _, ids = inputs
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a torch checkpoint")
    out = tmp_path / "o"
    with pytest.raises(Vec2FaceError, match=r"broken\.pth: cannot read generator checkpoint"):
        generate_hsface(HSFaceConfig(**CFG), bad, ids, out, progress=False)
    assert not out.exists()
    argv = ["generate", "--generator", str(bad), "--identities", str(ids), "--out", str(out)]
    argv += ["--num-identities", str(N_IDS), "--images-per-identity", str(M), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.pth: cannot read generator checkpoint" in err[0]
    assert not out.exists()


def test_rerun_with_other_settings_is_refused(inputs, reference, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    with pytest.raises(ConfigError, match="other settings.*seed"):
        generate_hsface(HSFaceConfig(**{**CFG, "seed": 7}), *inputs, out, progress=False)


def test_auto_precision_is_decided_and_recorded_as_what_ran(inputs, reference, tmp_path,
                                                            monkeypatch):
    from vec2face.training import precision

    # a CPU where bf16 does not pay: auto runs fp32, the very bytes of bf16 false, and a
    # complete dataset made so is reused rather than refused for its "auto"
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda _threads: 0.7)
    out = tmp_path / "auto"
    shutil.copytree(reference, out)
    summary = generate_hsface(HSFaceConfig(**CFG, bf16="auto"), *inputs, out, progress=False)
    assert summary["generated_shards"] == [] and summary["skipped_shards"] == [0, 1]
    assert summary["config"]["bf16"] is False
    stamp = json.loads((out / "shards" / shard_name(0) / "shard.json").read_text())["stamp"]
    assert stamp["bf16"] is False
    # where it pays, auto is bf16: other bytes, so the fp32 shards are refused by name
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda _threads: 2.8)
    with pytest.raises(ConfigError, match="other settings.*bf16"):
        generate_hsface(HSFaceConfig(**CFG, bf16="auto"), *inputs, out, progress=False)


def test_cli_single_shard_and_imagefolder(inputs, reference, tmp_path, capsys):
    gen, ids = inputs
    out = tmp_path / "one"
    rc = main(
        [
            "generate",
            "--generator",
            str(gen),
            "--identities",
            str(ids),
            "--out",
            str(out),
            "--num-identities",
            str(N_IDS),
            "--images-per-identity",
            str(M),
            "--shard-identities",
            "4",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--shard",
            "1",
            "--export-imagefolder",
            "--quiet",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated_shards"] == [1] and not summary["complete"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard_00001"]
    assert not (out / "hsface.json").exists()
    d = out / "shards" / "shard_00001"
    assert plain_read(d / "train.lmdb") == plain_read(
        reference / "shards" / "shard_00001" / "train.lmdb"
    )
    folders = sorted(p.name for p in (d / "images").iterdir())
    assert folders == ["0000004", "0000005"]
    assert len(list((d / "images" / "0000005").glob("*.jpg"))) == M
    rc = main(
        [
            "generate",
            "--generator",
            str(gen),
            "--identities",
            str(ids),
            "--out",
            str(out),
            "--num-identities",
            str(N_IDS),
            "--shard",
            "2",
            "--shard-identities",
            "4",
        ]
    )
    assert rc == 2 and "shard 2 out of range" in capsys.readouterr().err


def test_estimator_fills_the_attribute_columns(inputs, tmp_path):
    def estimator(images):
        assert images.dtype == np.uint8 and images.shape[1:] == (112, 112, 3)
        mean = images.reshape(len(images), -1).mean(1)
        return {"yaw": mean, "quality": mean / 10}

    cfg = HSFaceConfig(**{**CFG, "identities": 2})
    generate_hsface(cfg, *inputs, tmp_path / "e", progress=False, estimator=estimator)
    d = tmp_path / "e" / "shards" / "shard_00000"
    man = pd.read_parquet(d / "manifest.parquet")
    ds = open_dataset(d / "train.lmdb")
    assert man["pitch"].isna().all() and man["age"].isna().all()
    # estimated on the generated pixels, before JPEG: close to the stored image's mean
    stored = np.array([ds[i].image.mean() for i in range(len(ds))])
    np.testing.assert_allclose(man["yaw"], stored, atol=2.0)
    np.testing.assert_allclose(man["quality"], man["yaw"] / 10, rtol=1e-6)


def test_bad_inputs_give_clear_errors(inputs, tmp_path):
    gen, ids = inputs
    cfg = HSFaceConfig(**CFG)
    with pytest.raises(ConfigError, match=r"generator checkpoint not found: .*nope\.pth"):
        generate_hsface(cfg, tmp_path / "nope.pth", ids, tmp_path / "o", progress=False)
    np.save(tmp_path / "d256.npy", np.ones((8, 256), np.float32))
    with pytest.raises(ConfigError, match="dimension 256, the generator takes 512"):
        generate_hsface(cfg, gen, tmp_path / "d256.npy", tmp_path / "o", progress=False)
    bad = np.load(ids)
    bad[3, 7] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ConfigError, match=r"NaN/inf \(rows \[3\]"):
        generate_hsface(cfg, gen, tmp_path / "nan.npy", tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="holds 8 identity vectors, the dataset needs 200"):
        generate_hsface(HSFaceConfig(size="tiny"), gen, ids, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


def test_config_sizes_and_validation(tmp_path):
    assert HSFaceConfig(size="hsface100k").num_identities == 100_000
    big = HSFaceConfig(size="hsface300k", shard_identities=1000)
    assert big.num_shards == 300 and big.shard_range(299) == (299_000, 300_000)
    assert HSFaceConfig(size="hsface10k", shard_identities=3000).shard_range(3) == (9000, 10_000)
    from vec2face.config import load_step_config

    with pytest.raises(ConfigError, match="hsface"):
        load_step_config(HSFaceConfig, "hsface", {"hsface": {"proportions": [0.5, 0.6, 0.1]}})
    with pytest.raises(ConfigError, match="hsface.size"):
        load_step_config(HSFaceConfig, "hsface", {"hsface": {"size": "hsface5k"}})
