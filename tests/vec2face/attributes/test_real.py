"""Rotation helpers on hand-computed cases; 6DRepNet and MagFace layouts load strictly."""

from __future__ import annotations

import math

import pytest
import torch

from vec2face.attributes import AttributeEstimatorConfig, load_attribute_estimator
from vec2face.attributes.real import (
    SixDRepNetPose,
    euler_from_rotation,
    load_magface,
    load_sixdrepnet,
    magface_backbone_state,
    rotation_from_6d,
    rotation_from_euler,
)
from vec2face.errors import ConfigError
from vec2face.models import build_backbone


def test_6d_to_rotation_hand_cases():
    eye = rotation_from_6d(torch.tensor([[2.0, 0, 0, 1.0, 3.0, 0]]))
    assert torch.allclose(eye, torch.eye(3)[None], atol=1e-6)
    # a = y axis, b = -x axis: c1 = (0,1,0), c3 = c1 x b = (0,0,1), c2 = c3 x c1 = (-1,0,0)
    r = rotation_from_6d(torch.tensor([[0.0, 1, 0, -1, 0, 0]]))
    assert torch.allclose(r[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    assert torch.allclose(
        euler_from_rotation(r)[0], torch.tensor([0.0, 0.0, math.pi / 2]), atol=1e-6
    )


def test_euler_hand_cases_and_round_trip():
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rx30 = torch.tensor([[[1.0, 0, 0], [0, c, -s], [0, s, c]]])
    assert torch.allclose(
        euler_from_rotation(rx30)[0], torch.tensor([math.pi / 6, 0, 0]), atol=1e-6
    )
    ry = torch.tensor([[[c, 0, s], [0, 1.0, 0], [-s, 0, c]]])
    assert torch.allclose(euler_from_rotation(ry)[0], torch.tensor([0, math.pi / 6, 0]), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    angles = (torch.rand(50, 3, generator=g) - 0.5) * torch.tensor([2.0, 2.8, 2.0])
    r = rotation_from_euler(angles[:, 0], angles[:, 1], angles[:, 2])
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(euler_from_rotation(r), angles, atol=1e-4)
    # Gimbal lock (yaw 90 degrees): roll is set to 0, pitch absorbs the rest.
    lock = rotation_from_euler(
        torch.tensor([0.3]), torch.tensor([math.pi / 2]), torch.tensor([0.0])
    )
    e = euler_from_rotation(lock)[0]
    assert e[2] == 0 and e[1] == pytest.approx(math.pi / 2, abs=1e-3)
    assert torch.allclose(rotation_from_euler(e[:1], e[1:2], e[2:]), lock, atol=1e-3)


def test_sixdrepnet_layout_loads_strictly_and_gives_differentiable_degrees(tmp_path):
    torch.manual_seed(0)
    model = SixDRepNetPose()
    state = model.state_dict()
    # RepVGG-B1g2 deploy: 28 blocks (weight + bias) + linear_reg; groups=2 on even blocks.
    assert len(state) == 58
    assert state["layer0.rbr_reparam.weight"].shape == (64, 3, 3, 3)
    assert state["layer1.0.rbr_reparam.weight"].shape == (128, 64, 3, 3)
    assert state["layer1.1.rbr_reparam.weight"].shape == (128, 64, 3, 3)
    assert state["layer2.0.rbr_reparam.weight"].shape == (256, 128, 3, 3)
    assert state["layer3.15.rbr_reparam.weight"].shape == (512, 256, 3, 3)
    assert state["layer4.0.rbr_reparam.weight"].shape == (2048, 512, 3, 3)
    assert state["linear_reg.weight"].shape == (6, 2048)
    path = tmp_path / "6DRepNet_300W_LP_AFLW2000.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    loaded = load_sixdrepnet(path, config_key="attribute_estimator.sixdrepnet")
    x = (torch.rand(1, 3, 112, 112) * 2 - 1).requires_grad_()
    out = loaded(x)
    assert set(out) == {"yaw", "pitch", "roll"}
    assert all(v.shape == (1,) and abs(float(v.detach())) <= 180 for v in out.values())
    with torch.no_grad():
        ref = model(x)
    assert torch.allclose(out["yaw"], ref["yaw"])
    (g,) = torch.autograd.grad(out["yaw"].abs().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0

    del state["layer3.4.rbr_reparam.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ConfigError, match=r"missing \[layer3\.4\.rbr_reparam\.bias\]"):
        load_sixdrepnet(tmp_path / "short.pth")
    torch.save({"layer0.rbr_dense.conv.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "train.pth")
    with pytest.raises(ConfigError, match="training-layout"):
        load_sixdrepnet(tmp_path / "train.pth")
    with pytest.raises(
        ConfigError, match=r"absent\.pth \(config key attribute_estimator\.sixdrepnet\)"
    ):
        load_attribute_estimator(
            AttributeEstimatorConfig(sixdrepnet=str(tmp_path / "absent.pth"), attributes=["yaw"])
        )


def test_magface_key_mapping():
    t = torch.zeros(1)
    dp = {
        "module.features.conv1.weight": t,
        "module.features.features.weight": t,
        "module.fc.weight": t,
    }
    assert set(magface_backbone_state(dp)) == {"conv1.weight", "features.weight"}
    inner = {"features.module.conv1.weight": t, "features.module.fc.weight": t, "fc.weight": t}
    assert set(magface_backbone_state(inner)) == {"conv1.weight", "fc.weight"}
    plain = {"conv1.weight": t, "features.weight": t}
    assert magface_backbone_state(plain) == plain


def test_magface_r100_checkpoint_loads_and_quality_is_the_feature_norm(tmp_path):
    torch.manual_seed(0)
    backbone = build_backbone("r100").eval()
    with torch.no_grad():
        # Small weights keep 100 random residual layers finite (the default init overflows).
        for m in backbone.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                m.weight.normal_(0.0, 0.2 / m.weight[0].numel() ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    # MagFace's trainer: DataParallel(NetworkBuilder(features=iresnet100, fc=MagLinear)).
    sd = {f"module.features.{k}": v for k, v in backbone.state_dict().items()}
    sd["module.fc.weight"] = torch.randn(512, 10)
    path = tmp_path / "magface_epoch_00025.pth"
    torch.save({"epoch": 25, "arch": "iresnet100", "state_dict": sd}, path)
    est = load_magface(path, arch="r100", config_key="attribute_estimator.magface")
    x = (torch.rand(1, 3, 112, 112) * 2 - 1).requires_grad_()
    q = est(x)["quality"]
    for m in backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.eps = 2e-5
    with torch.no_grad():
        ref = backbone(((x + 1) / 2).flip(1)).norm(dim=1)
    assert q.shape == (1,) and torch.allclose(q, ref, rtol=1e-4), (q, ref)
    (g,) = torch.autograd.grad(q.sum(), x)
    assert g.abs().sum() > 0

    del sd["module.features.layer2.7.conv1.weight"]
    torch.save({"state_dict": sd}, tmp_path / "broken.pth")
    with pytest.raises(ConfigError, match=r"broken\.pth.*missing \[layer2\.7\.conv1\.weight\]"):
        load_magface(tmp_path / "broken.pth")
    with pytest.raises(ConfigError, match=r"gone\.pth \(config key attribute_estimator\.magface\)"):
        load_attribute_estimator(
            AttributeEstimatorConfig(magface=str(tmp_path / "gone.pth"), attributes=["quality"])
        )
