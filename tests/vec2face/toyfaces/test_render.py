"""Tests of the procedural face renderer: API shapes, determinism, identity and pose effects."""

from __future__ import annotations

import numpy as np
import pytest

from vec2face.toyfaces import (
    IDENTITY_FIELDS,
    IMAGE_SIZE,
    NUISANCE_FIELDS,
    identity_lookalike_features,
    render_face,
    render_faces,
    sample_identity_params,
    sample_nuisance,
)

QUIET = {
    "blur": 0.0,
    "noise": 0.0,
    "occluder": 0.0,
    "glasses": 0.0,
    "pitch": 0.0,
    "roll": 0.0,
    "shift_x": 0.0,
    "shift_y": 0.0,
    "scale": 1.0,
}


def col(name: str) -> int:
    return NUISANCE_FIELDS.index(name)


@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    return sample_identity_params(6, np.random.default_rng(11))


def test_field_lists_cover_the_contract() -> None:
    required = {
        "yaw",
        "pitch",
        "roll",
        "age",
        "expression",
        "blur",
        "noise",
        "jpeg_quality",
        "glasses",
        "occluder",
    }
    assert required <= set(NUISANCE_FIELDS)
    assert any(f.startswith("light_") for f in NUISANCE_FIELDS)
    assert any(f.startswith("bg_") for f in NUISANCE_FIELDS)
    assert len(set(IDENTITY_FIELDS)) == len(IDENTITY_FIELDS) >= 40
    assert len(set(NUISANCE_FIELDS)) == len(NUISANCE_FIELDS)


def test_shapes_and_dtypes(ids: np.ndarray) -> None:
    nu = sample_nuisance(6, np.random.default_rng(0))
    assert ids.shape == (6, len(IDENTITY_FIELDS)) and ids.dtype == np.float32
    assert nu.shape == (6, len(NUISANCE_FIELDS)) and nu.dtype == np.float32
    imgs = render_faces(ids, nu)
    assert imgs.shape == (6, IMAGE_SIZE, IMAGE_SIZE, 3) and imgs.dtype == np.uint8
    one = render_face(ids[2], nu[2])
    assert one.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and one.dtype == np.uint8
    assert np.array_equal(one, imgs[2])  # batching does not change an image
    assert render_faces(ids[:0], nu[:0]).shape == (0, IMAGE_SIZE, IMAGE_SIZE, 3)
    # Images are not flat: there is structure and a full range of tones.
    assert imgs.std() > 20 and imgs.max() > 150 and imgs.min() < 60


def test_images_do_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(21)
    p = sample_identity_params(30, rng)
    nu = sample_nuisance(30, rng, glasses=np.arange(30) % 3 == 0, occluder=np.arange(30) % 4 == 0)
    together = render_faces(p, nu)
    for i in (0, 3, 8, 29):
        assert np.array_equal(render_faces(p[i : i + 1], nu[i : i + 1])[0], together[i]), i
    for start in (3, 5):
        assert np.array_equal(render_faces(p[start:], nu[start:]), together[start:]), start
    # Batches above the internal block size are split without changing any image.
    from vec2face.toyfaces import render

    big = np.concatenate([p] * 10)[: render._MAX_BATCH + 3]
    big_nu = np.concatenate([nu] * 10)[: render._MAX_BATCH + 3]
    out = render_faces(big, big_nu)
    assert out.shape[0] == len(big)
    assert np.array_equal(out[render._MAX_BATCH :], together[render._MAX_BATCH % 30 :][:3])


def test_bad_shapes_raise(ids: np.ndarray) -> None:
    nu = sample_nuisance(6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="identity"):
        render_faces(ids[:, :5], nu)
    with pytest.raises(ValueError, match="rows"):
        render_faces(ids[:3], nu)


def test_determinism() -> None:
    a = sample_identity_params(5, np.random.default_rng(7))
    b = sample_identity_params(5, np.random.default_rng(7))
    assert np.array_equal(a, b)
    na = sample_nuisance(5, np.random.default_rng(8), yaw=10.0)
    nb = sample_nuisance(5, np.random.default_rng(8), yaw=10.0)
    assert np.array_equal(na, nb)
    assert render_faces(a, na).tobytes() == render_faces(b, nb).tobytes()
    assert not np.array_equal(a, sample_identity_params(5, np.random.default_rng(9)))


def test_different_identities_look_different(ids: np.ndarray) -> None:
    nu = np.repeat(sample_nuisance(1, np.random.default_rng(3), yaw=0.0, **QUIET), 6, 0)
    imgs = render_faces(ids, nu).astype(np.float32)
    face = imgs[:, 30:100, 25:87]  # the inner face region
    for i in range(6):
        for j in range(i + 1, 6):
            assert np.abs(face[i] - face[j]).mean() > 6.0, (i, j)
    # The same identity under a different nuisance row (only the noise pattern) stays close.
    nu2 = nu.copy()
    nu2[:, col("noise")] = 3.0
    same = render_faces(ids, nu2).astype(np.float32)[:, 30:100, 25:87]
    assert np.abs(same - face).mean() < 4.0


def test_skin_tone_alone_does_not_identify(ids: np.ndarray) -> None:
    # Two identities that differ only in skin tone differ much less than two random ones.
    nu = np.repeat(sample_nuisance(1, np.random.default_rng(3), yaw=0.0, **QUIET), 2, 0)
    pair = np.repeat(ids[:1], 2, 0)
    k = IDENTITY_FIELDS.index("skin_tone")
    pair[0, k], pair[1, k] = 0.3, 0.6
    tone = np.abs(np.diff(render_faces(pair, nu).astype(np.float32), axis=0)).mean()
    other = np.abs(np.diff(render_faces(ids[:2], nu).astype(np.float32), axis=0)).mean()
    assert tone < 0.5 * other


def test_yaw_turns_the_head(ids: np.ndarray) -> None:
    yaws = np.array([0.0, 60.0, -60.0])
    nu = sample_nuisance(3, np.random.default_rng(5), yaw=yaws, light_azimuth=0.0, **QUIET)
    nu[:, col("bg_texture")] = 0.0
    imgs = render_faces(np.repeat(ids[:1], 3, 0), nu).astype(np.float32)
    front, right, left = imgs
    # The head turned +60 and -60 are close to mirror images of each other.
    assert np.abs(right - left[:, ::-1]).mean() < np.abs(right - left).mean()
    # The turn changes the image mostly on one side; the side flips with the yaw sign.
    d_right = np.abs(right - front).mean(axis=(0, 2))
    d_left = np.abs(left - front).mean(axis=(0, 2))
    assert d_right.sum() > 0 and d_left.sum() > 0
    asym_r = d_right[56:].sum() - d_right[:56].sum()
    asym_l = d_left[56:].sum() - d_left[:56].sum()
    assert np.sign(asym_r) == -np.sign(asym_l) != 0


def test_features_move_toward_the_turn(ids: np.ndarray) -> None:
    # Blue irises are the only blue pixels on a grey background; they move with the nose.
    person = ids[1:2].repeat(3, 0)
    person[:, IDENTITY_FIELDS.index("iris_hue")] = 0.8
    person[:, IDENTITY_FIELDS.index("iris_dark")] = 0.0
    grey = {f"bg_{c}": 0.5 for c in ("r", "g", "b", "r2", "g2", "b2")}
    nu = sample_nuisance(
        3,
        np.random.default_rng(6),
        yaw=np.array([-40.0, 0.0, 40.0]),
        eye_close=0.0,
        gaze_x=0.0,
        **grey,
        **QUIET,
    )
    imgs = render_faces(person, nu).astype(np.float32)
    blue = (imgs[..., 2] - imgs[..., 0] > 25)[:, 30:75]  # eye band, clear of the clothes
    xs = [np.nonzero(b)[1].mean() for b in blue]
    assert all(b.sum() > 4 for b in blue)
    assert xs[0] + 2 < xs[1] < xs[2] - 2


def test_fixed_overrides_and_unknown_field() -> None:
    ages = np.array([20.0, 40.0, 60.0, 80.0])
    nu = sample_nuisance(4, np.random.default_rng(0), yaw=15.0, age=ages, glasses=1.0)
    assert np.all(nu[:, col("yaw")] == 15.0)
    assert np.array_equal(nu[:, col("age")], ages.astype(np.float32))
    assert np.all(nu[:, col("glasses")] == 1.0)
    # Other fields do not depend on what was fixed.
    free = sample_nuisance(4, np.random.default_rng(0))
    assert np.array_equal(free[:, col("pitch")], nu[:, col("pitch")])
    with pytest.raises(ValueError, match="smile_amount"):
        sample_nuisance(4, np.random.default_rng(0), smile_amount=1.0)
    with pytest.raises(ValueError, match="age"):
        sample_nuisance(4, np.random.default_rng(0), age=np.zeros(3))


def test_sampled_nuisance_ranges() -> None:
    nu = sample_nuisance(4000, np.random.default_rng(1))
    yaw = nu[:, col("yaw")]
    assert np.abs(yaw).max() <= 75.0 and np.abs(yaw).max() > 60.0
    assert np.mean(np.abs(yaw) < 20.0) > 0.5  # mostly near-frontal
    assert np.abs(nu[:, col("pitch")]).max() <= 25.0
    assert np.abs(nu[:, col("roll")]).max() <= 15.0
    age = nu[:, col("age")]
    assert age.min() >= 18.0 and age.max() <= 80.0 and age.max() - age.min() > 50.0
    q = nu[:, col("jpeg_quality")]
    assert q.min() >= 30 and q.max() <= 95 and np.all(q == np.round(q))
    for f in ("glasses", "occluder"):
        assert set(np.unique(nu[:, col(f)])) <= {0.0, 1.0}
    assert 0.05 < nu[:, col("glasses")].mean() < 0.3
    assert 0.0 < nu[:, col("occluder")].mean() < 0.15
    assert nu[:, col("blur")].min() >= 0.0 and nu[:, col("noise")].min() >= 0.0


def test_age_greys_hair_and_lines_the_face(ids: np.ndarray) -> None:
    nu = sample_nuisance(2, np.random.default_rng(2), yaw=0.0, age=np.array([20.0, 80.0]), **QUIET)
    young, old = render_faces(np.repeat(ids[2:3], 2, 0), nu).astype(np.float32)
    assert np.abs(young - old).mean() > 2.0
    top = slice(0, 20)  # hair band
    sat = lambda im: (im.max(-1) - im.min(-1))[top].mean()
    assert sat(old) < sat(young)


def test_glasses_and_occluder_change_the_image(ids: np.ndarray) -> None:
    base = sample_nuisance(1, np.random.default_rng(4), yaw=0.0, **QUIET)
    rows = np.repeat(base, 3, 0)
    rows[1, col("glasses")] = 1.0
    rows[2, col("occluder")] = 1.0
    imgs = render_faces(np.repeat(ids[3:4], 3, 0), rows).astype(np.float32)
    eyes = slice(35, 58)
    assert np.abs(imgs[1] - imgs[0])[eyes].mean() > 3.0
    assert np.abs(imgs[1] - imgs[0])[95:].mean() < 0.5  # glasses leave the chin alone
    assert np.abs(imgs[2] - imgs[0]).mean() > 3.0


def test_blur_and_noise(ids: np.ndarray) -> None:
    base = sample_nuisance(1, np.random.default_rng(4), yaw=0.0, **QUIET)
    rows = np.repeat(base, 3, 0)
    rows[1, col("blur")] = 2.0
    rows[2, col("noise")] = 10.0
    sharp, blurred, noisy = render_faces(np.repeat(ids[:1], 3, 0), rows).astype(np.float32)
    grad = lambda im: np.abs(np.diff(im, axis=1)).mean()
    assert grad(blurred) < 0.7 * grad(sharp)
    resid = noisy - sharp
    assert 7.0 < resid.std() < 13.0


def test_lookalike_features() -> None:
    p = sample_identity_params(50, np.random.default_rng(0))
    f = identity_lookalike_features(p)
    assert f.dtype == np.float32 and f.shape[0] == 50 and 20 <= f.shape[1] < len(IDENTITY_FIELDS)
    # A copy with only the strand pattern changed is a perfect look-alike.
    q = p.copy()
    q[:, IDENTITY_FIELDS.index("hair_seed")] = 0.5
    assert np.allclose(identity_lookalike_features(q), f)
    # A small change is closer than a random other identity.
    near = p.copy()
    near[:, IDENTITY_FIELDS.index("nose_length")] += 0.5
    d_near = np.linalg.norm(identity_lookalike_features(near) - f, axis=1)
    d_far = np.linalg.norm(f - f[::-1], axis=1)
    assert np.all(d_near < np.median(d_far))
    with pytest.raises(ValueError):
        identity_lookalike_features(p[:, :3])
