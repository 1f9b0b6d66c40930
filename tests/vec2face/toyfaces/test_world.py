"""The toy world writer: layout, ground truth, determinism, resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vec2face.config import load_step_config
from vec2face.data import open_dataset
from vec2face.errors import ConfigError
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS
from vec2face.toyfaces.pools import pool_identity_params
from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "world.json":  # world.json names the folder and the chunking
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_manifest_and_open_dataset(tmp_path):
    cfg = ToyfacesConfig(pool="webface", identities=5, images=4, seed=1, workers=1)
    summary = make_toyfaces(cfg, tmp_path / "w", progress=False)
    root = tmp_path / "w"
    assert summary["images"] == 20 and summary["identities"] == 5
    assert sorted(p.name for p in root.iterdir()) == [
        "00000", "00001", "00002", "00003", "00004",
        "identities.parquet", "manifest.parquet", "preview.png", "world.json"]
    assert not (tmp_path / "w.partial").exists()
    man = pd.read_parquet(root / "manifest.parquet")
    assert len(man) == 20
    assert set(NUISANCE_FIELDS) <= set(man.columns)
    assert (man.groupby("identity").size() == 4).all()
    assert (man["path"] == [f"{i:05d}/{j:03d}.jpg" for i in range(5) for j in range(4)]).all()

    ds = open_dataset(root)
    assert len(ds) == 20 and ds.num_identities == 5
    s = ds[5]
    assert s.image.shape == (112, 112, 3) and s.image.dtype == np.uint8 and s.label == 1


def test_same_seed_same_bytes_regardless_of_workers_and_chunks(tmp_path):
    a = ToyfacesConfig(pool="teacher", identities=6, images=3, seed=7, workers=1, chunk_identities=6)
    b = ToyfacesConfig(pool="teacher", identities=6, images=3, seed=7, workers=2, chunk_identities=2)
    make_toyfaces(a, tmp_path / "a", progress=False)
    make_toyfaces(b, tmp_path / "b", progress=False)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_pools_and_seeds_give_different_people():
    t = pool_identity_params("teacher", range(4), seed=0)
    j = pool_identity_params("judge", range(4), seed=0)
    t1 = pool_identity_params("teacher", range(4), seed=1)
    assert not np.allclose(t, j) and not np.allclose(t, t1)
    # a prefix of a bigger pool is the same people
    np.testing.assert_array_equal(pool_identity_params("teacher", range(8), 0)[:4], t)


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    cfg = ToyfacesConfig(pool="pca", identities=6, images=2, seed=3, workers=1, chunk_identities=2)
    make_toyfaces(cfg, tmp_path / "full", progress=False)
    # simulate a run killed after its first chunk: a partial folder holding one finished chunk
    from vec2face.toyfaces import world

    partial = tmp_path / "res.partial"
    (partial / ".parts").mkdir(parents=True)
    (partial / ".config.json").write_text(json.dumps(cfg.model_dump(exclude={"workers"})))
    world._render_chunk(("pca", 3, 0, 2, 2, str(partial)))
    (partial / "00004").mkdir()  # debris of an unfinished chunk is overwritten
    make_toyfaces(cfg, tmp_path / "res", progress=False)
    assert _tree_digest(tmp_path / "full") == _tree_digest(tmp_path / "res")


def test_rerun_with_same_config_is_skipped(tmp_path):
    cfg = ToyfacesConfig(pool="judge", identities=2, images=2, workers=1)
    make_toyfaces(cfg, tmp_path / "w", progress=False)
    mtime = (tmp_path / "w" / "manifest.parquet").stat().st_mtime_ns
    make_toyfaces(cfg, tmp_path / "w", progress=False)
    assert (tmp_path / "w" / "manifest.parquet").stat().st_mtime_ns == mtime


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="toyfaces.pool"):
        load_step_config(ToyfacesConfig, "toyfaces", None, {"pool": "nope"})
    with pytest.raises(ConfigError, match="toyfaces.identities"):
        load_step_config(ToyfacesConfig, "toyfaces", None, {"identities": 0})
    with pytest.raises(ConfigError, match="toyfaces.colour"):
        load_step_config(ToyfacesConfig, "toyfaces", {"toyfaces": {"colour": 1}})


def test_world_json_is_the_same_under_any_output_root(tmp_path):
    cfg = ToyfacesConfig(pool="judge", identities=2, images=2, seed=4, workers=1)
    one = make_toyfaces(cfg, tmp_path / "root1" / "judge_pool", progress=False)
    two = make_toyfaces(cfg, tmp_path / "elsewhere" / "deeper" / "pool", progress=False)
    first = (tmp_path / "root1" / "judge_pool" / "world.json").read_bytes()
    assert first == (tmp_path / "elsewhere" / "deeper" / "pool" / "world.json").read_bytes()
    assert "path" not in json.loads(first)
    # the returned summary still says where the pool is, rendered or reused
    assert one["path"] == str(tmp_path / "root1" / "judge_pool")
    assert two["path"] == str(tmp_path / "elsewhere" / "deeper" / "pool")
    moved = tmp_path / "moved"
    (tmp_path / "root1" / "judge_pool").rename(moved)
    assert make_toyfaces(cfg, moved, progress=False)["path"] == str(moved)
