"""Generator quality figures: Laplacian sharpness and the judge-based measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vec2face.generator.data import tensor_to_image
from vec2face.generator.quality import (
    FACE_BOX,
    embed_images,
    laplacian_variance,
    measure_generator_quality,
)
from vec2face.models import build_backbone, build_generator


def test_laplacian_variance_hand_computed():
    flat = np.full((1, 112, 112, 3), 90, np.uint8)
    assert laplacian_variance(flat)[0] == 0.0
    # a single bright pixel in a 5x5 box: Laplacian -4v at the centre, +v at 4 neighbours
    img = np.zeros((1, 5, 5, 3), np.float64)
    img[0, 2, 2] = 10.0
    lap = np.zeros((3, 3))
    lap[1, 1], lap[0, 1], lap[2, 1], lap[1, 0], lap[1, 2] = -40.0, 10.0, 10.0, 10.0, 10.0
    assert laplacian_variance(img, box=(0, 5, 0, 5))[0] == pytest.approx(lap.var())
    # a checkerboard is sharper than a smooth ramp
    yy, xx = np.mgrid[:112, :112]
    checker = (((yy + xx) % 2) * 255).astype(np.uint8)[None, :, :, None].repeat(3, -1)
    ramp = (xx * 2).astype(np.uint8)[None, :, :, None].repeat(3, -1)
    assert laplacian_variance(checker)[0] > 1e4 > laplacian_variance(ramp)[0]


def test_tensor_to_image_maps_minus_one_one_to_levels():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    out = tensor_to_image(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].ravel().tolist() == [0, 128, 255, 255]


def test_measure_generator_quality_shapes_and_ranges():
    torch.manual_seed(0)
    gen = build_generator("tiny").eval()
    teacher, judge = build_backbone("tiny").eval(), build_backbone("tiny_judge").eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 112, 112, 3), dtype=np.uint8)
    issame = [True, False] * 10  # every fold of two pairs holds one of each
    figures, generated = measure_generator_quality(gen, teacher, judge, images, issame, amp=False)
    assert generated.shape == (20, 112, 112, 3) and generated.dtype == np.uint8
    d = figures.as_dict()
    assert d["pairs"] == 20
    assert -1 <= d["judge_cosine_recon"] <= 1 and 0 <= d["judge_accuracy_real"] <= 1
    assert d["identity_preservation"] == pytest.approx(
        d["judge_accuracy_generated"] / d["judge_accuracy_real"]
    )
    t, b, l, r = FACE_BOX
    mae = np.abs(generated[:, t:b, l:r].astype(float) - images[0::2, t:b, l:r]).mean()
    assert d["face_mae"] == pytest.approx(mae)
    # same seed, same figures
    again, _ = measure_generator_quality(gen, teacher, judge, images, issame, amp=False)
    assert again == figures
    with pytest.raises(ValueError, match="for 20 pairs"):
        measure_generator_quality(gen, teacher, judge, images[:10], issame, amp=False)


def test_embed_images_flip_sum_is_mirror_invariant_and_single_pass_is_not():
    torch.manual_seed(0)
    model = build_backbone("tiny").eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    mirrored = images[:, :, ::-1].copy()
    summed = embed_images(model, images, amp=False)
    np.testing.assert_allclose(summed, embed_images(model, mirrored, amp=False), atol=1e-5)
    alone = embed_images(model, images, amp=False, flip=False)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = torch.nn.functional.normalize(model(x), dim=1).numpy()
    np.testing.assert_allclose(alone, expected, atol=1e-4)
    assert np.abs(alone - embed_images(model, mirrored, amp=False, flip=False)).max() > 1e-3
