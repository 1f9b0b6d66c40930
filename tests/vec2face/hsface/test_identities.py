"""Identity-vector sampling: the greedy rejection, its samplers, errors and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from vec2face.cli.main import main
from vec2face.config import load_step_config
from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.hsface import (
    IdentitiesConfig,
    draw_candidates,
    fit_pca_prior,
    max_pairwise_cosine,
    sample_identities,
    save_identities,
)


def _reference(m: int = 300, dim: int = 16, seed: int = 3) -> np.ndarray:
    """Anisotropic centers with a shared offset: raw cosines are mostly positive."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, dim)) * np.linspace(2.0, 0.5, dim) + 0.3).astype(np.float32)


def _cos_matrix(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return u @ u.T


def _naive_greedy(candidates: np.ndarray, n: int, threshold: float) -> tuple[np.ndarray, int]:
    """The sequential loop the blocked sampler must reproduce: (kept, candidates used)."""
    kept: list[int] = []
    units: list[np.ndarray] = []
    for i, x in enumerate(candidates.astype(np.float64)):
        u = x / np.linalg.norm(x)
        if all(float(u @ k) < threshold for k in units):
            kept.append(i)
            units.append(u)
            if len(kept) == n:
                return candidates[kept], i + 1
    raise AssertionError("naive loop ran out of candidates")


@pytest.mark.parametrize("sampler", ["gaussian", "pca"])
def test_every_pair_is_below_the_threshold(sampler):
    ref = _reference(dim=32) if sampler == "pca" else None
    vec, info = sample_identities(40, dim=32, threshold=0.3, sampler=sampler, reference=ref,
                                  seed=1, batch=32, return_info=True)
    assert vec.shape == (40, 32) and vec.dtype == np.float32
    cos = _cos_matrix(vec)
    np.fill_diagonal(cos, -1.0)
    assert cos.max() < 0.3
    assert info.accepted == 40 and info.candidates > 40  # 32-d at 0.3: rejections happen
    assert info.acceptance_rate == pytest.approx(40 / info.candidates)
    assert max_pairwise_cosine(vec, sample=40) == pytest.approx(cos.max(), abs=1e-12)


@pytest.mark.parametrize("sampler,threshold,n",
                         [("gaussian", 0.3, 30), ("gaussian", 0.0, 8), ("pca", 0.5, 40)])
def test_equals_the_sequential_greedy_loop_for_any_batch(sampler, threshold, n):
    # batch 4096 puts all candidates in one block: conflicts resolved inside it
    ref = _reference() if sampler == "pca" else None
    cands = draw_candidates(3000, dim=16, sampler=sampler, reference=ref, seed=7)
    expected, used = _naive_greedy(cands, n, threshold)
    for batch in (1, 5, 64, 4096):
        vec, info = sample_identities(n, dim=16, threshold=threshold, sampler=sampler,
                                      reference=ref, seed=7, batch=batch, return_info=True)
        assert np.array_equal(vec, expected), batch
        assert info.candidates == used


def test_threshold_one_keeps_every_distinct_direction():
    vec, info = sample_identities(300, dim=8, threshold=1.0, sampler="gaussian", seed=0,
                                  return_info=True)
    assert np.array_equal(vec, draw_candidates(300, dim=8, sampler="gaussian", seed=0))
    assert info.acceptance_rate == 1.0


def test_same_seed_same_bytes_other_seed_other_vectors():
    a = sample_identities(50, dim=32, threshold=0.3, sampler="gaussian", seed=4)
    b = sample_identities(50, dim=32, threshold=0.3, sampler="gaussian", seed=4, batch=9)
    c = sample_identities(50, dim=32, threshold=0.3, sampler="gaussian", seed=5)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_budget_error_says_how_many_were_reached():
    # In 2-d at most 3 directions are pairwise more than 90 degrees apart.
    msg = r"reached 3 of 5 vectors within max_candidates=200"
    with pytest.raises(Vec2FaceError, match=msg) as exc:
        sample_identities(5, dim=2, threshold=0.0, sampler="gaussian", max_candidates=200)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"threshold": -1.0}, "threshold must be in \\(-1, 1\\], got -1.0"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"threshold": float("nan")}, "threshold must be in"),
    ({"n": 0}, "n must be a positive integer, got 0"),
    ({"dim": 0}, "dim must be a positive integer, got 0"),
    ({"sampler": "uniform"}, "sampler must be one of pca, gaussian"),
    ({"sampler": "pca"}, "sampler 'pca' needs reference"),
    ({"sampler": "gaussian", "reference": np.ones((3, 8))}, "does not use one"),
    ({"sampler": "pca", "reference": np.ones((5, 9))}, "has dimension 9, expected dim=8"),
    ({"sampler": "pca", "reference": np.ones((1, 8))}, "at least 2 rows"),
    ({"sampler": "pca", "reference": np.ones((8,))}, "2-D"),
    ({"sampler": "pca", "reference": np.ones((4, 8))}, "identical"),
])
def test_bad_input_is_a_one_line_error_naming_the_value(kwargs, match):
    args = {"n": 5, "dim": 8, "threshold": 0.3, "sampler": "gaussian"} | kwargs
    with pytest.raises(ConfigError, match=match) as exc:
        sample_identities(**args)
    assert "\n" not in str(exc.value)


def test_reference_with_nan_or_missing_file(tmp_path):
    ref = _reference(dim=8)
    ref[3, 2] = np.inf
    with pytest.raises(ConfigError, match="1 rows hold NaN or inf \\(first: row 3\\)"):
        sample_identities(5, dim=8, sampler="pca", reference=ref)
    with pytest.raises(ConfigError, match="reference file not found"):
        sample_identities(5, dim=8, sampler="pca", reference=tmp_path / "nope.npy")


def test_pca_reference_from_a_path_matches_the_array(tmp_path):
    ref = _reference()
    np.save(tmp_path / "c.npy", ref)
    a = sample_identities(20, dim=16, threshold=0.4, sampler="pca", reference=ref, seed=2)
    b = sample_identities(20, dim=16, threshold=0.4, sampler="pca",
                          reference=str(tmp_path / "c.npy"), seed=2)
    assert np.array_equal(a, b)


def test_pca_prior_reproduces_the_reference_covariance():
    ref = _reference(m=4000, dim=6).astype(np.float64)
    prior = fit_pca_prior(ref, dim=6)
    assert prior.rank == 6
    draws = prior.sample(np.random.default_rng(0), 100_000).astype(np.float64)
    np.testing.assert_allclose(draws.mean(0), ref.mean(0), atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), np.cov(ref.T), atol=0.05)


def test_pca_with_fewer_rows_than_dim_samples_in_the_reference_span():
    ref = _reference(m=5, dim=16)
    prior = fit_pca_prior(ref, dim=16)
    assert prior.rank == 4
    vec, info = sample_identities(3, dim=16, threshold=0.9, sampler="pca", reference=ref,
                                  return_info=True)
    assert info.pca_rank == 4
    # every sample minus the mean lies in the span of the centred reference rows
    basis, _ = np.linalg.qr((ref - ref.mean(0)).astype(np.float64).T)
    dev = vec.astype(np.float64) - ref.mean(0)
    np.testing.assert_allclose(dev - dev @ basis @ basis.T, 0.0, atol=1e-4)


def test_save_identities_writes_float32_npy(tmp_path):
    vec = sample_identities(10, dim=8, threshold=0.5, sampler="gaussian")
    path = save_identities(vec.astype(np.float64), tmp_path / "sub" / "ids.npy")
    back = np.load(path)
    assert back.dtype == np.float32 and np.array_equal(back, vec)
    assert [p.name for p in path.parent.iterdir()] == ["ids.npy"]
    with pytest.raises(Vec2FaceError, match="finite 2-D"):
        save_identities(np.full((2, 3), np.nan), tmp_path / "bad.npy")


def test_config_validates_through_params():
    params = {"identities": {"n": 7, "sampler": "gaussian"}}
    cfg = load_step_config(IdentitiesConfig, "identities", params, {"threshold": 0.2})
    assert (cfg.n, cfg.sampler, cfg.threshold, cfg.dim) == (7, "gaussian", 0.2, 512)
    with pytest.raises(ConfigError, match="identities.threshold"):
        load_step_config(IdentitiesConfig, "identities", None, {"threshold": 1.5})
    assert all(f.description for f in IdentitiesConfig.model_fields.values())


def test_cli_samples_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "ids.npy"
    rc = main(["identities", "sample", "--n", "30", "--dim", "16", "--threshold", "0.3",
               "--sampler", "gaussian", "--seed", "3", "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    vec = np.load(out)
    assert vec.shape == (30, 16)
    again = sample_identities(30, dim=16, threshold=0.3, sampler="gaussian", seed=3)
    assert np.array_equal(vec, again)
    assert summary["n"] == 30 and 0 < summary["acceptance_rate"] <= 1
    assert summary["max_pairwise_cosine_sampled"] < 0.3 and summary["seconds"] >= 0


def test_cli_pca_from_params_and_errors(tmp_path, capsys):
    np.save(tmp_path / "ref.npy", _reference())
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"identities": {
        "n": 10, "dim": 16, "sampler": "pca", "reference": str(tmp_path / "ref.npy"),
        "threshold": 0.4}}))
    rc = main(["identities", "sample", "--params", str(params), "--out", str(tmp_path / "v.npy"),
               "--quiet"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["pca_rank"] == 16
    rc = main(["identities", "sample", "--n", "5", "--out", str(tmp_path / "x.npy"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: identities.reference") and "\n" not in err
    assert not (tmp_path / "x.npy").exists()
