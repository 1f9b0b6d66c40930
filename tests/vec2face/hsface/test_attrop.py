"""AttrOP on the tiny generator: it lowers its losses, stops per item, freezes converged items,
is Adam, is deterministic, reaches a yaw target, and rejects bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.hsface.attrop import (
    AttrOPResult,
    AttrOPSettings,
    attrop,
    refine_identities,
    refinement_masks,
)
from vec2face.models import build_backbone, build_generator

N = 3
ID_ONLY = dict(quality_target=None)


@pytest.fixture(scope="module")
def nets():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # eval mode: the helpers below run the FR model outside attrop (BatchNorm must not move)
    return build_generator("tiny").eval(), build_backbone("tiny").eval()


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((N, 512)).astype(np.float32)


@pytest.fixture(scope="module")
def unreachable(nets, vectors) -> AttrOPResult:
    """8 steps toward an id threshold nothing can pass (1 - cos >= 0), with the history."""
    g, fr = nets
    settings = AttrOPSettings(max_steps=8, id_threshold=1e-9, **ID_ONLY)
    return attrop(g, vectors, fr, settings=settings, seed=3, record_history=True)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _id_loss(g, fr, x, identity, masks) -> np.ndarray:
    with torch.no_grad():
        keep, mask = masks
        latent, _ = g.forward_encoder(torch.as_tensor(x), keep, mask)
        _, z = g.forward_decoder(latent, keep, mask)
        feats = fr(g.im_decoder(z).clamp(-1, 1))
        return (1 - F.cosine_similarity(feats, torch.as_tensor(identity), dim=1)).numpy()


def test_budget_spent_lowers_the_id_loss_and_reports_the_shortfall(unreachable, nets, vectors):
    r = unreachable
    assert r.vectors.shape == (N, 512) and r.vectors.dtype == np.float32
    assert r.steps.tolist() == [8] * N and not r.converged.any()
    hist = r.history["id_loss"]
    assert hist.shape == (9, N) and np.isfinite(hist).all()
    assert (r.id_loss < hist[0]).all()  # every item improved
    np.testing.assert_array_equal(r.id_loss, hist[-1])
    assert np.isnan(r.quality).all() and np.isnan(r.yaw).all()  # no attribute terms
    rep = r.report()
    assert rep["items"] == N and rep["converged"] == 0 and rep["hit_budget"] == N
    assert rep["max_steps"] == 8 and rep["mean_steps"] == 8
    assert set(rep["shortfall"]) == {"id_loss"}
    assert rep["shortfall"]["id_loss"]["items"] == N
    assert rep["shortfall"]["id_loss"]["max"] == pytest.approx(float(r.id_loss.max()), abs=1e-6)
    # the reported loss is the loss of the returned vectors, under the run's masks
    g, fr = nets
    masks = g.draw_masks(N, g.gen_masking, torch.Generator().manual_seed(3))
    np.testing.assert_allclose(_id_loss(g, fr, r.vectors, vectors, masks), r.id_loss, atol=1e-5)


def test_the_update_is_adam(nets, vectors, unreachable):
    """With nothing converging, the trajectory is torch.optim.Adam(lr=0.1) on the summed loss,
    over the vectors in units of their starting rms component."""
    g, fr = nets
    masks = g.draw_masks(N, g.gen_masking, torch.Generator().manual_seed(3))
    rms = torch.tensor(vectors).norm(dim=1, keepdim=True) / np.sqrt(512)
    u = (torch.tensor(vectors) / rms).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=0.1)
    target = torch.tensor(vectors)
    for _ in range(8):
        x = u * rms
        latent, _ = g.forward_encoder(x, *masks)
        _, z = g.forward_decoder(latent, *masks)
        feats = fr(g.im_decoder(z).clamp(-1, 1))
        loss = (100 * (1 - F.cosine_similarity(feats, target, dim=1))).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(unreachable.vectors, (u * rms).detach().numpy(), atol=2e-5)


def test_steps_are_relative_to_the_vector_scale(nets, vectors):
    """Adam's first step is about lr per component of u: at the official scale (unit-rms
    components) that is 0.1, for an L2-normalised vector 0.1 / sqrt(512) (not 0.1, which
    would be twice its components)."""
    g, fr = nets
    settings = AttrOPSettings(max_steps=1, id_threshold=1e-9, **ID_ONLY)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for x0, rms in ((unit, 1 / np.sqrt(512)), (unit * np.sqrt(512), 1.0)):
        moved = np.abs(attrop(g, x0, fr, settings=settings, seed=3).vectors - x0)
        np.testing.assert_allclose(np.median(moved), 0.1 * rms, rtol=0.05)
        assert moved.max() <= 0.1 * rms * 1.001


def test_items_stop_when_they_pass_and_stay_frozen(nets, vectors, unreachable):
    g, fr = nets
    hist = unreachable.history["id_loss"]
    threshold = float(np.median(hist[4]))  # some items pass early, others later or never
    first_pass = [next((s for s in range(9) if hist[s, i] < threshold), None) for i in range(N)]
    assert any(s is not None for s in first_pass) and any(s != 0 for s in first_pass)
    settings = AttrOPSettings(max_steps=8, id_threshold=threshold, **ID_ONLY)
    short = attrop(g, vectors, fr, settings=settings, seed=3)
    for i, s in enumerate(first_pass):
        if s is None:
            assert not short.converged[i] and short.steps[i] == 8
        else:
            assert short.converged[i] and short.steps[i] == s
            assert short.id_loss[i] < threshold
            np.testing.assert_allclose(short.id_loss[i], hist[s, i], atol=1e-5)
    # a larger budget: the converged items are exactly where they were
    longer = attrop(
        g, vectors, fr, settings=AttrOPSettings(**{**vars(settings), "max_steps": 14}), seed=3
    )
    for i in np.flatnonzero(short.converged):
        np.testing.assert_array_equal(longer.vectors[i], short.vectors[i])
        assert longer.steps[i] == short.steps[i]
    assert (longer.steps >= short.steps).all()
    assert longer.report()["converged"] >= short.report()["converged"]


def test_deterministic_for_a_seed_and_batching_only_chunks_the_work(nets, vectors, unreachable):
    g, fr = nets
    settings = AttrOPSettings(max_steps=8, id_threshold=1e-9, **ID_ONLY)
    again = attrop(g, vectors, fr, settings=settings, seed=3)
    np.testing.assert_array_equal(again.vectors, unreachable.vectors)
    np.testing.assert_array_equal(again.id_loss, unreachable.id_loss)
    # Another batch changes float summation order by an ulp; eight Adam steps through the
    # generator amplify it (about tenfold every two steps here), so compare loosely.
    chunked = attrop(g, vectors, fr, settings=settings, seed=3, batch_size=2)
    np.testing.assert_allclose(_cos(chunked.vectors, unreachable.vectors), 1.0, atol=1e-2)
    np.testing.assert_allclose(chunked.id_loss, unreachable.id_loss, atol=2e-2)
    other = attrop(g, vectors, fr, settings=settings, seed=4)
    assert not np.allclose(other.vectors, unreachable.vectors)


def test_yaw_target_is_reached_with_improvement_at_every_step(nets, vectors, half_contrast):
    g, fr = nets
    est = half_contrast
    # a loose identity threshold, so the yaw test decides when an item stops
    settings = AttrOPSettings(max_steps=20, id_threshold=1.5, quality_target=None, yaw_target=45)
    r = attrop(g, vectors, fr, estimator=est, settings=settings, seed=3, record_history=True)
    error = np.abs(45 - np.abs(r.history["yaw"]))
    assert (error[0] > 5).all()  # every item starts away from the target
    assert r.converged.all() and (r.steps > 0).all()
    assert (np.abs(45 - np.abs(r.yaw)) < 5).all()
    for i in range(N):
        path = error[: r.steps[i] + 1, i]
        assert (np.diff(path) < 0).all(), path  # the error falls at every step until it stops
        assert np.isnan(error[r.steps[i] + 1 :, i]).all()  # then nothing is evaluated
    # the yaw is what the estimator says of the returned vectors' images
    with torch.no_grad():
        masks = g.draw_masks(N, g.gen_masking, torch.Generator().manual_seed(3))
        latent, _ = g.forward_encoder(torch.from_numpy(r.vectors), *masks)
        images = g.im_decoder(g.forward_decoder(latent, *masks)[1]).clamp(-1, 1)
        np.testing.assert_allclose(est(images)["yaw"].numpy(), r.yaw, atol=1e-3)
    assert set(r.shortfall) == {"id_loss", "yaw"} and not r.shortfall["yaw"].any()


def test_quality_hinge_raises_the_quality(nets, vectors, half_contrast):
    g, fr = nets
    settings = AttrOPSettings(max_steps=6, id_threshold=1.5, id_weight=1.0, quality_target=60.0)
    r = attrop(
        g,
        vectors,
        fr,
        estimator=half_contrast,
        settings=settings,
        seed=3,
        record_history=True,
    )
    q = r.history["quality"]
    assert (q[-1] > q[0]).all() and not r.converged.any()  # 60 is out of reach in 6 steps
    np.testing.assert_allclose(r.shortfall["quality"], np.maximum(60 - r.quality - 1, 0), rtol=1e-6)
    assert r.report()["shortfall"]["quality"]["items"] == N
    assert r.report()["mean_quality"] == pytest.approx(float(r.quality.mean()))


def test_refine_identities_is_per_identity_and_id_only(nets, vectors):
    g, fr = nets
    whole = refine_identities(
        g, vectors, fr, max_steps=3, identity_indices=[10, 11, 12], batch_size=3
    )
    assert whole.settings.quality_target is None and whole.settings.yaw_target is None
    assert (whole.steps <= 3).all() and np.isnan(whole.quality).all()
    # the id term fell: the refined vectors' images match the original vectors better
    masks = refinement_masks(g, 0, [10, 11, 12])
    before = _id_loss(g, fr, vectors, vectors, masks)
    np.testing.assert_allclose(
        _id_loss(g, fr, whole.vectors, vectors, masks), whole.id_loss, atol=1e-5
    )
    assert (whole.id_loss < before).all()
    # identity 11 alone, in a batch of its own: the same mask, so (almost) the same result
    alone = refine_identities(g, vectors[1:2], fr, max_steps=3, identity_indices=[11])
    np.testing.assert_allclose(_cos(alone.vectors, whole.vectors[1:2]), 1.0, atol=1e-3)
    np.testing.assert_allclose(alone.id_loss, whole.id_loss[1:2], atol=1e-2)
    keep, mask = refinement_masks(g, 0, [11, 12])
    keep3, mask3 = refinement_masks(g, 0, [10, 11, 12])
    assert torch.equal(keep, keep3[1:]) and torch.equal(mask, mask3[1:])
    other_seed = refinement_masks(g, 1, [11])[1]
    assert not torch.equal(other_seed, mask[:1])


def test_bad_inputs_give_clear_errors(nets, vectors, half_contrast):
    g, fr = nets
    s = AttrOPSettings(max_steps=2, **ID_ONLY)
    with pytest.raises(Vec2FaceError, match=r"shape \(N>0, 512\), got \(3, 256\)"):
        attrop(g, vectors[:, :256], fr, settings=s)
    with pytest.raises(Vec2FaceError, match=r"shape \(N>0, 512\), got \(512,\)"):
        attrop(g, vectors[0], fr, settings=s)
    bad = vectors.copy()
    bad[1, 5] = np.nan
    with pytest.raises(Vec2FaceError, match=r"NaN/inf \(rows \[1\]\)"):
        attrop(g, bad, fr, settings=s)
    with pytest.raises(Vec2FaceError, match=r"zero identity vectors \(rows \[2\]\)"):
        attrop(
            g, vectors, fr, identity=np.where(np.arange(N)[:, None] == 2, 0, vectors), settings=s
        )
    with pytest.raises(Vec2FaceError, match="2 identity vectors for 3 input vectors"):
        attrop(g, vectors, fr, identity=vectors[:2], settings=s)
    for budget in (0, -3, 2.5):
        with pytest.raises(ConfigError, match="max_steps must be an integer >= 1"):
            AttrOPSettings(max_steps=budget)
    with pytest.raises(ConfigError, match="yaw_target must be in"):
        AttrOPSettings(yaw_target=120)
    with pytest.raises(ConfigError, match="lr must be finite and > 0"):
        AttrOPSettings(lr=float("nan"))
    with pytest.raises(ConfigError, match="targets quality need an attribute estimator"):
        attrop(g, vectors, fr, settings=AttrOPSettings(max_steps=2))

    yaw_only = type(half_contrast)()
    yaw_only.provides = ("yaw",)
    with pytest.raises(ConfigError, match=r"gives \('yaw',\), not quality"):
        attrop(g, vectors, fr, estimator=yaw_only, settings=AttrOPSettings(max_steps=2))
    with pytest.raises(Vec2FaceError, match=r"FR model gives features of shape \(3, 128\)"):
        attrop(g, vectors, build_backbone("tiny", embedding_size=128), settings=s)
    keep, mask = g.draw_masks(2, g.gen_masking, torch.Generator().manual_seed(0))
    with pytest.raises(Vec2FaceError, match="masks must be keep_idx"):
        attrop(g, vectors, fr, settings=s, masks=(keep, mask))
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        attrop(g, vectors, fr, settings=s, batch_size=0)
