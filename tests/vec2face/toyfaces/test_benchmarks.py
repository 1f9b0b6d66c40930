"""The toy benchmark sets: .bin layout, fold order and each set's stress factor."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from vec2face.toyfaces.benchmarks import BenchmarksConfig, make_benchmarks
from vec2face.toyfaces.identity import identity_lookalike_features
from vec2face.toyfaces.pools import pool_identity_params


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):  # the public files need no global at all
        raise AssertionError(f"global {module}.{name} in a .bin")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    out = tmp_path_factory.mktemp("bins")
    cfg = BenchmarksConfig(pairs=80, identities=40, seed=0, workers=2)
    return out, cfg, make_benchmarks(cfg, out, progress=False)


def test_bin_files_are_plain_pickles_in_fold_order(sets):
    out, cfg, summary = sets
    assert sorted(summary) == ["agedb_30", "calfw", "cfp_fp", "cplfw", "lfw"]
    for name in summary:
        with open(out / f"{name}.bin", "rb") as f:
            images, issame = _NoGlobals(f).load()
        assert len(images) == 160 and len(issame) == 80
        assert all(type(b) is bytes and b[:2] == b"\xff\xd8" for b in images)
        assert all(type(x) is bool for x in issame)
        # 10 folds in order, each 4 genuine then 4 impostor pairs
        assert issame == ([True] * 4 + [False] * 4) * 10


def _pairs(out, name):
    t = pd.read_parquet(out / f"{name}_pairs.parquet")
    return t.iloc[0::2].reset_index(drop=True), t.iloc[1::2].reset_index(drop=True)


def test_genuine_pairs_share_identity_impostors_do_not(sets):
    out, _, summary = sets
    for name in summary:
        a, b = _pairs(out, name)
        assert ((a.identity == b.identity) == a.issame).all()


def test_cfp_fp_pairs_are_frontal_vs_profile(sets):
    a, b = _pairs(sets[0], "cfp_fp")
    ya, yb = a.yaw.abs().to_numpy(), b.yaw.abs().to_numpy()
    lo, hi = np.minimum(ya, yb), np.maximum(ya, yb)
    assert (lo < 10).all() and (hi > 60).all() and (hi <= 75.01).all()


def test_age_sets_have_age_gaps(sets):
    a, b = _pairs(sets[0], "agedb_30")
    gap = (a.age - b.age).abs()
    assert gap.between(22, 38).all() and abs(gap.mean() - 30) < 2
    assert a.age.between(18, 80).all() and b.age.between(18, 80).all()
    a, b = _pairs(sets[0], "calfw")
    assert (a.age - b.age).abs().min() >= 19.9


def test_cross_pose_and_lookalike_impostors(sets):
    out, cfg, _ = sets
    a, b = _pairs(out, "cplfw")
    assert ((a.yaw - b.yaw).abs() >= 20).all()
    feats = identity_lookalike_features(pool_identity_params("cplfw", range(cfg.identities), cfg.seed))
    d = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    rank = d.argsort(1).argsort(1)  # rank[i, j]: how close j is to i among the others
    imp = ~a.issame
    ranks = rank[a.identity[imp], b.identity[imp]]
    assert (ranks < cfg.lookalike_k).all()
    # random impostors in lfw are, on average, far less alike
    la, lb = _pairs(out, "lfw")
    lfeats = identity_lookalike_features(pool_identity_params("lfw", range(cfg.identities), cfg.seed))
    ld = ((lfeats[:, None] - lfeats[None]) ** 2).sum(-1)
    assert d[a.identity[imp], b.identity[imp]].mean() < 0.7 * ld[la.identity[~la.issame], lb.identity[~la.issame]].mean()


def test_rerun_is_skipped_and_deterministic(sets, tmp_path):
    out, cfg, _ = sets
    again = make_benchmarks(cfg.model_copy(update={"sets": ("lfw",)}), tmp_path, progress=False)
    assert (tmp_path / "lfw.bin").read_bytes() == (out / "lfw.bin").read_bytes()
    mtime = (tmp_path / "lfw.bin").stat().st_mtime_ns
    assert make_benchmarks(cfg.model_copy(update={"sets": ("lfw",)}), tmp_path, progress=False) == again
    assert (tmp_path / "lfw.bin").stat().st_mtime_ns == mtime


def test_unknown_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark set"):
        make_benchmarks(BenchmarksConfig(pairs=20, identities=20, sets=("megaface",)), tmp_path)


def test_pairs_must_fill_the_folds():
    from vec2face.config import load_step_config
    from vec2face.errors import ConfigError

    with pytest.raises(ConfigError, match="10 folds"):
        load_step_config(BenchmarksConfig, "benchmarks", None, {"pairs": 30})


def test_benchmarks_json_is_the_same_under_any_output_root(tmp_path):
    cfg = BenchmarksConfig(pairs=20, identities=20, seed=0, sets=("lfw",), workers=1)
    one = make_benchmarks(cfg, tmp_path / "root1" / "benchmarks", progress=False)
    make_benchmarks(cfg, tmp_path / "other" / "deeper" / "bins", progress=False)
    first = (tmp_path / "root1" / "benchmarks" / "benchmarks.json").read_bytes()
    assert first == (tmp_path / "other" / "deeper" / "bins" / "benchmarks.json").read_bytes()
    assert json.loads(first)["sets"]["lfw"]["path"] == "lfw.bin"
    assert one["lfw"]["path"] == str(tmp_path / "root1" / "benchmarks" / "lfw.bin")


def test_a_moved_benchmark_folder_is_reused_with_its_new_paths(tmp_path):
    cfg = BenchmarksConfig(pairs=20, identities=20, seed=0, sets=("lfw",), workers=1)
    make_benchmarks(cfg, tmp_path / "before", progress=False)
    (tmp_path / "before").rename(tmp_path / "after")
    mtime = (tmp_path / "after" / "lfw.bin").stat().st_mtime_ns
    again = make_benchmarks(cfg, tmp_path / "after", progress=False)
    assert again["lfw"]["path"] == str(tmp_path / "after" / "lfw.bin")
    assert (tmp_path / "after" / "lfw.bin").stat().st_mtime_ns == mtime


def test_another_process_writes_byte_identical_bins(sets, tmp_path):
    import subprocess
    import sys

    out, cfg, _ = sets
    argv = [sys.executable, "-m", "vec2face.cli.main", "benchmarks", "make", "--out",
            str(tmp_path), "--pairs", str(cfg.pairs), "--identities", str(cfg.identities),
            "--seed", str(cfg.seed), "--set", "lfw", "--set", "calfw", "--workers", "1", "--quiet"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("lfw.bin", "calfw.bin", "lfw_pairs.parquet", "calfw_pairs.parquet"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
