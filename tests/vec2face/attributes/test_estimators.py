"""The estimator interface: shapes, gradients to the input, quality label, loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vec2face.attributes import (
    ATTRIBUTES,
    AttributeEstimatorConfig,
    CombinedAttributeEstimator,
    build_attribute_net,
    load_attribute_estimator,
    load_toy_estimator,
    toy_quality_label,
)
from vec2face.attributes.estimators import N_TEXTURE_STATS, texture_statistics, toy_checkpoint_state
from vec2face.errors import ConfigError
from vec2face.models import list_models


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_attribute_net().eval()


def test_forward_shapes_and_gradients_reach_the_image(net):
    x = (torch.rand(3, 3, 112, 112) * 2 - 1).requires_grad_()
    out = net(x)
    assert set(out) == set(ATTRIBUTES)
    assert all(v.shape == (3,) and v.dtype == torch.float32 for v in out.values())
    for name in ATTRIBUTES:
        (g,) = torch.autograd.grad(out[name].sum(), x, retain_graph=True)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name
    # AttrOP's hinge on quality back-propagates to every image of the batch.
    (g,) = torch.autograd.grad(
        torch.relu(27.0 - out["quality"]).sum() + 1e-3 * out["quality"].sum(), x
    )
    assert (g.flatten(1).abs().sum(1) > 0).all()


def test_forward_under_bf16_autocast_and_channels_last(net):
    x = (torch.rand(2, 3, 112, 112) * 2 - 1).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    ref = net(x)
    assert out["yaw"].dtype == torch.float32
    assert torch.allclose(out["age"], ref["age"], atol=2.0)


def test_predict_returns_numpy_per_attribute_in_batches(net):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    pred = net.predict(imgs, batch_size=2)
    assert set(pred) == set(ATTRIBUTES)
    assert all(v.shape == (5,) and v.dtype == np.float32 for v in pred.values())
    with torch.no_grad():
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
        ref = net(x)
    np.testing.assert_allclose(pred["yaw"], ref["yaw"].numpy(), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="uint8"):
        net.predict(imgs.astype(np.float32))


def test_quality_label_is_monotone_in_each_degradation_and_on_magface_scale():
    base = dict(blur=np.full(5, 0.3), noise=np.full(5, 2.0), jpeg_quality=np.full(5, 85.0))
    steps = {
        "blur": np.linspace(0, 2.5, 5),
        "noise": np.linspace(0, 14, 5),
        "jpeg_quality": np.linspace(95, 30, 5),
    }
    for name, values in steps.items():
        q = toy_quality_label(**{**base, name: values})
        assert np.all(np.diff(q) < 0), name
    assert toy_quality_label(0.0, 0.0, 95.0) == pytest.approx(35.0)
    worst = toy_quality_label(2.5, 14.0, 30.0)
    assert 10.0 < worst < 13.0
    # blur 0.3 + noise 2 + JPEG 85: D = 0.3 + 0.25 + 10/65 -> 10 + 25 exp(-D/2)
    d = 0.3 + 0.25 + 10 / 65
    assert toy_quality_label(0.3, 2.0, 85.0) == pytest.approx(10 + 25 * np.exp(-d / 2), rel=1e-6)


def test_texture_statistics_see_noise_and_blur():
    torch.manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(112.0), torch.arange(112.0), indexing="ij")
    clean = ((xx // 14 + yy // 14) % 2 * 1.2 - 0.6).expand(1, 3, 112, 112)
    noisy = clean + 0.1 * torch.randn(1, 1, 112, 112)
    blurred = torch.nn.functional.avg_pool2d(clean, 5, 1, 2, count_include_pad=False)
    s_clean, s_noisy, s_blur = (texture_statistics(x) for x in (clean, noisy, blurred))
    assert s_clean.shape == (1, N_TEXTURE_STATS)
    assert s_noisy[0, 1] > s_clean[0, 1] + 1.0  # 25% quantile of |residual| at full resolution
    assert s_blur[0, 5] < s_clean[0, 5]  # 99% quantile: softer edges


def test_registered_and_unknown_names_listed():
    assert "attrnet_s" in list_models("attributes")
    with pytest.raises(KeyError, match="attrnet_s"):
        build_attribute_net("nope")


def test_checkpoint_round_trip_and_missing_file(net, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(toy_checkpoint_state(net, "attrnet_s"), path)
    loaded = load_toy_estimator(path)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x)["quality"], net(x)["quality"])
    with pytest.raises(
        ConfigError, match=r"nothere\.pt \(config key attribute_estimator\.checkpoint\)"
    ):
        load_attribute_estimator(AttributeEstimatorConfig(checkpoint=str(tmp_path / "nothere.pt")))
    bad = tmp_path / "bad.pt"
    state = toy_checkpoint_state(net, "attrnet_s")
    del state["model"]["head.0.weight"]
    torch.save(state, bad)
    with pytest.raises(ConfigError, match="missing.*head.0.weight"):
        load_toy_estimator(bad)


def test_load_attribute_estimator_requires_a_source_per_attribute(net, tmp_path):
    with pytest.raises(ConfigError, match=r"age.*attribute_estimator\.checkpoint"):
        load_attribute_estimator(AttributeEstimatorConfig())
    with pytest.raises(ConfigError, match="unknown"):
        load_attribute_estimator(AttributeEstimatorConfig(attributes=["beauty"]))
    path = tmp_path / "m.pt"
    torch.save(toy_checkpoint_state(net, "attrnet_s"), path)
    est = load_attribute_estimator(AttributeEstimatorConfig(checkpoint=str(path)))
    assert est.provides == ATTRIBUTES and not est.training


def test_combined_estimator_routes_and_runs_each_source_once(net):
    calls = []

    class Constant(torch.nn.Module):
        provides = ("quality",)

        def forward(self, images):
            calls.append(1)
            return {"quality": images.mean(dim=(1, 2, 3)) * 0 + 30.0}

    combo = CombinedAttributeEstimator(
        {**{a: net for a in ATTRIBUTES if a != "quality"}, "quality": Constant()}
    )
    out = combo(torch.zeros(2, 3, 112, 112))
    assert torch.equal(out["quality"], torch.full((2,), 30.0)) and len(calls) == 1
    assert set(out) == set(ATTRIBUTES)
    with pytest.raises(ValueError, match="does not provide 'age'"):
        CombinedAttributeEstimator({"age": Constant()})
