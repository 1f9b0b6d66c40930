"""Generator loss terms on hand-checkable inputs, and their composition."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vec2face.errors import ConfigError
from vec2face.generator import losses as L
from vec2face.generator.losses import (
    FRPerceptualLoss,
    GeneratorLoss,
    GeneratorLossConfig,
    IdentityLoss,
    LPIPSLoss,
    SSIMLoss,
    TextureLoss,
    adaptive_gan_weight,
    gan_weight_at,
    local_gram,
    ls_discriminator_loss,
    ls_generator_loss,
    pixel_mse,
    ssim,
    token_loss,
)


class CountingFR(nn.Module):
    """An FR stand-in: a fixed linear map of the flattened image, counting its calls."""

    def __init__(self, dim: int = 512, size: int = 16):
        super().__init__()
        self.size = size
        self.pool = nn.AdaptiveAvgPool2d(size // 4)
        self.proj = nn.Linear(3 * (size // 4) ** 2, dim)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.proj(self.pool(x).flatten(1))


@pytest.fixture(autouse=True)
def _no_vgg_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_pixel_mse_known_values():
    a = torch.zeros(2, 3, 4, 4)
    assert pixel_mse(a, a) == 0
    assert torch.isclose(pixel_mse(a, a + 0.5), torch.tensor(0.25))


def test_ssim_identical_is_one_and_orders_distortion():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(ssim((x + 1) / 2, (x + 1) / 2), torch.ones(2), atol=1e-5)
    assert SSIMLoss()(x, x).abs() < 1e-5
    small = SSIMLoss()(x, (x + 0.05 * torch.randn_like(x)).clamp(-1, 1))
    large = SSIMLoss()(x, (x + 0.5 * torch.randn_like(x)).clamp(-1, 1))
    assert 0 < small < large


def test_ssim_constant_images_hand_value():
    # For constant images a, b: variances and covariance are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.2, 0.6, 0.01**2
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert torch.isclose(ssim(x, y), torch.tensor([expected]), atol=1e-5).all()


def test_token_loss_known_value():
    t = torch.zeros(2, 49, 8)
    assert token_loss(t, t) == 0
    assert torch.isclose(token_loss(t + 2.0, t), torch.tensor(4.0))


def test_lpips_fallback_flag_and_frozen():
    with pytest.warns(UserWarning, match="random VGG trunk"):
        lp = LPIPSLoss()
    assert lp.pretrained_backbone is False
    lp.train()
    assert not lp.metric.training
    assert all(not p.requires_grad for p in lp.parameters())
    x = torch.rand(2, 3, 64, 64, requires_grad=True) * 2 - 1
    d = lp(x, x.detach())
    assert d.shape == (2,) and torch.allclose(d, torch.zeros(2), atol=1e-6)
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    assert (lp(x, y) > 0).all()


def test_lpips_uses_given_vgg_weights(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    lp = LPIPSLoss(backbone_weights=path)
    assert lp.pretrained_backbone is True
    trunk = dict(lp.metric.net.named_parameters())
    assert torch.equal(trunk["slice3.14.weight"], vgg.features[14].weight)
    assert torch.equal(trunk["slice5.28.bias"], vgg.features[28].bias)
    with pytest.raises(ConfigError, match="not found"):
        LPIPSLoss(backbone_weights=tmp_path / "missing.pth")


def test_identity_loss_zero_for_matching_vector():
    fr = CountingFR()
    loss = IdentityLoss(fr)
    img = torch.rand(3, 3, 16, 16)
    v = fr(img).detach() * 3.0  # cosine ignores scale
    assert loss(img, v).abs() < 1e-6
    assert torch.isclose(loss(img, -v), torch.tensor(2.0))
    assert all(not p.requires_grad for p in fr.parameters())
    loss.train()
    assert not fr.training


def test_gan_losses_and_schedule():
    ones, zeros = torch.ones(2, 1, 11, 11), torch.zeros(2, 1, 11, 11)
    assert ls_generator_loss(ones) == 0 and ls_generator_loss(zeros) == 1
    assert ls_discriminator_loss(ones, zeros) == 0
    assert torch.isclose(ls_discriminator_loss(zeros, ones), torch.tensor(1.0))
    assert gan_weight_at(79, 80) == 0.0
    assert gan_weight_at(79.99, 80) == 0.0
    assert gan_weight_at(80, 80) == 0.8
    assert gan_weight_at(95, 80, weight=0.5) == 0.5


def test_adaptive_weight_finite_positive():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, padding=1)
    disc = nn.Conv2d(3, 1, 4)
    img = conv(torch.randn(2, 4, 8, 8))
    rec = (img - 0.3).square().mean()
    gan = ls_generator_loss(disc(img))
    w = adaptive_gan_weight(rec, gan, conv.weight, weight=0.8)
    assert w.ndim == 0 and torch.isfinite(w) and w > 0 and not w.requires_grad
    g_rec = torch.autograd.grad(rec, conv.weight, retain_graph=True)[0].norm()
    g_gan = torch.autograd.grad(gan, conv.weight, retain_graph=True)[0].norm()
    assert torch.isclose(w, 0.8 * g_rec / (g_gan + 1e-4))


def _batch(n=2, size=16):
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 3, 3, padding=1)
    images = conv(torch.randn(n, 4, size, size))
    targets = torch.rand(n, 3, size, size) * 2 - 1
    tokens = torch.randn(n, 49, 8, requires_grad=True)
    return conv, images, targets, tokens, torch.randn(n, 49, 8), torch.randn(n, 512)


def test_generator_loss_composition_matches_terms():
    fr = CountingFR()
    cfg = GeneratorLossConfig(lpips=0.0, disc_start=5)
    loss = GeneratorLoss(cfg, fr_model=fr)
    assert loss.lpips is None and loss.pretrained_lpips_backbone is None
    conv, images, targets, tokens, target_tokens, vectors = _batch()
    total, terms = loss(images, targets, tokens, target_tokens, vectors, epoch=0)
    assert set(terms) == {"mse", "ssim", "token", "identity", "gan_weight", "total"}
    expected = terms["mse"] + 0.1 * terms["ssim"] + terms["token"] + terms["identity"]
    assert abs(terms["total"] - expected) < 1e-5 and abs(total.item() - expected) < 1e-5
    assert terms["gan_weight"] == 0.0
    total.backward()
    assert conv.weight.grad is not None and tokens.grad is not None


def test_switched_off_terms_not_computed():
    fr = CountingFR()
    cfg = GeneratorLossConfig(mse=0, lpips=0, ssim=0, identity=0, gan=0, disc_start=0)
    loss = GeneratorLoss(cfg, fr_model=fr)
    assert loss.identity is None and loss.lpips is None
    _, images, targets, tokens, target_tokens, vectors = _batch()
    disc = CountingFR(dim=1)
    total, terms = loss(
        images, targets, tokens, target_tokens, vectors, epoch=10, discriminator=disc
    )
    assert set(terms) == {"token", "gan_weight", "total"}
    assert fr.calls == 0 and disc.calls == 0
    assert abs(total.item() - terms["token"]) < 1e-6


def test_gan_term_switches_on_at_disc_start_with_adaptive_weight():
    cfg = GeneratorLossConfig(lpips=0, identity=0, disc_start=3, adaptive_gan_weight=True)
    loss = GeneratorLoss(cfg)
    conv, images, targets, tokens, target_tokens, vectors = _batch()
    disc = nn.Conv2d(3, 1, 4)
    _, before = loss(
        images,
        targets,
        tokens,
        target_tokens,
        vectors,
        epoch=2,
        discriminator=disc,
        last_layer=conv.weight,
    )
    assert "gan" not in before
    _, after = loss(
        images,
        targets,
        tokens,
        target_tokens,
        vectors,
        epoch=3,
        discriminator=disc,
        last_layer=conv.weight,
    )
    assert "gan" in after and after["gan_weight"] > 0 and after["gan_weight"] != 0.8
    rec = after["mse"] + 0.1 * after["ssim"] + after["token"]
    assert abs(after["total"] - (rec + after["gan_weight"] * after["gan"])) < 1e-4
    with pytest.raises(ConfigError, match="no discriminator"):
        loss(images, targets, tokens, target_tokens, vectors, epoch=3)
    with pytest.raises(ConfigError, match="last_layer"):
        loss(images, targets, tokens, target_tokens, vectors, epoch=3, discriminator=disc)


def test_official_negative_mean_option_and_config_validation():
    cfg = GeneratorLossConfig(lpips=0, identity=0, disc_start=0, gan_generator_loss="negative_mean")
    loss = GeneratorLoss(cfg)
    assert loss._gan_term is L.negative_mean_generator_loss
    with pytest.raises(ConfigError, match="needs an FR model"):
        GeneratorLoss(GeneratorLossConfig(lpips=0))
    with pytest.raises(ValueError):
        GeneratorLossConfig(mse=-1)
    with pytest.raises(ValueError):
        GeneratorLossConfig(gan_generator_loss="hinge")


def test_default_weights_follow_official_combination():
    cfg = GeneratorLossConfig()
    # official nll: mean(mse + 0.1 * (2 * LPIPS)) + 0.1 * (1 - SSIM) + token + identity
    assert (cfg.mse, cfg.lpips, cfg.ssim, cfg.token, cfg.identity) == (1.0, 0.2, 0.1, 1.0, 1.0)
    assert (cfg.gan, cfg.disc_start) == (0.8, 80)
    with pytest.warns(UserWarning, match="random VGG trunk"):
        loss = GeneratorLoss(cfg, fr_model=CountingFR())
    assert loss.pretrained_lpips_backbone is False


def test_lpips_alex_trunk_loads_torchvision_alexnet_and_unknown_net_is_refused(tmp_path):
    import torchvision

    alex = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(alex.state_dict(), path)
    lp = LPIPSLoss(backbone_weights=path, net="alex")
    assert lp.pretrained_backbone is True
    trunk = dict(lp.metric.net.named_parameters())
    assert torch.equal(trunk["slice1.0.weight"], alex.features[0].weight)
    assert torch.equal(trunk["slice5.10.bias"], alex.features[10].bias)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    assert lp(x, x).abs().max() < 1e-6 and (lp(x, x.flip(-1)) > 0).all()
    with pytest.raises(ConfigError, match="not a torchvision vgg file"):
        LPIPSLoss(backbone_weights=path, net="vgg")
    with pytest.raises(ConfigError, match="LPIPS net 'resnet' unknown"):
        LPIPSLoss(net="resnet")


def test_fr_perceptual_loss_on_iresnet_trunk():
    from vec2face.models import build_backbone

    torch.manual_seed(0)
    fr = build_backbone("tiny")
    loss = FRPerceptualLoss(fr)
    assert not fr.training and all(not p.requires_grad for p in fr.parameters())
    targets = torch.rand(2, 3, 112, 112) * 2 - 1
    assert loss(targets, targets).item() == pytest.approx(0.0, abs=1e-6)
    # Five maps (stem + four stages): each term is in [0, 4] (unit vectors), and a
    # channel-wise rescaling of the real image's maps (a brightness change) costs little
    # against a different image.
    images = (torch.rand(2, 3, 112, 112) * 2 - 1).requires_grad_(True)
    far = loss(images, targets)
    near = loss((targets + 0.05 * torch.randn_like(targets)).clamp(-1, 1), targets)
    assert 0.0 < near.item() < far.item() <= 5 * 4.0
    far.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in fr.parameters())
    loss.train()
    assert not fr.training


@pytest.mark.parametrize("term", ["fr_perceptual", "texture"])
def test_teacher_feature_term_in_generator_loss_and_refused_without_trunk(term):
    from vec2face.models import build_backbone

    fr = build_backbone("tiny")
    cfg = GeneratorLossConfig(lpips=0.0, ssim=0.0, token=0.0, identity=0.0, disc_start=5, **{term: 0.3})
    assert cfg.teacher_terms == (term,)
    loss = GeneratorLoss(cfg, fr_model=fr)
    images = torch.rand(2, 3, 112, 112) * 2 - 1
    targets = torch.rand(2, 3, 112, 112) * 2 - 1
    tokens = torch.zeros(2, 49, 8)
    _, terms = loss(images, targets, tokens, tokens, torch.randn(2, 512), epoch=0)
    assert set(terms) == {"mse", term, "gan_weight", "total"}
    assert terms["total"] == pytest.approx(terms["mse"] + 0.3 * terms[term], rel=1e-5)
    with pytest.raises(ConfigError, match="IResNet-like.*CountingFR"):
        GeneratorLoss(cfg, fr_model=CountingFR())
    with pytest.raises(ConfigError, match=f"{term} weight > 0 needs an FR model"):
        GeneratorLoss(cfg, fr_model=None)


def test_local_gram_by_hand_and_blind_to_position_inside_a_window():
    # One 2x4 map of 2 channels, windows of 2: two windows, each G = F F^T / 4.
    maps = torch.tensor([[[[1.0, 2.0, 0.0, 0.0], [3.0, 4.0, 0.0, 2.0]], [[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]]])
    g = local_gram(maps, 2)
    assert g.shape == (1, 2, 2, 2)
    assert torch.allclose(g[0, 0], torch.tensor([[30.0, 1.0], [1.0, 1.0]]) / 4)
    assert torch.allclose(g[0, 1], torch.tensor([[4.0, 2.0], [2.0, 4.0]]) / 4)
    # Moving a detail inside its window changes the pixels, not the window's Gram matrix.
    moved = maps.clone()
    moved[..., :2] = maps[..., :2].flip(-1)
    assert not torch.equal(moved, maps) and torch.allclose(local_gram(moved, 2), g)
    # Rows/columns beyond a multiple of the window are cropped; an oversized window is refused.
    assert local_gram(torch.ones(1, 3, 5, 7), 2).shape == (1, 6, 3, 3)
    with pytest.raises(ConfigError, match="patch 3 must be in"):
        local_gram(maps, 3)


def test_texture_loss_asks_for_detail_a_blur_lacks():
    from vec2face.models import build_backbone

    torch.manual_seed(0)
    fr = build_backbone("tiny")
    loss = TextureLoss(fr, patch=16)
    assert not fr.training and all(not p.requires_grad for p in fr.parameters())
    targets = (torch.rand(2, 3, 112, 112) * 2 - 1)
    assert loss(targets, targets).item() == pytest.approx(0.0, abs=1e-6)
    # Fine noise texture: the same texture shifted by 4 pixels, a quarter window (pixel MSE
    # large), is closer in texture than its 5x5 box blur (pixel MSE smaller): the term asks
    # for the detail, not for its exact position. (4: a whole pixel of the stride-4 stage.)
    shifted = targets.roll(4, dims=-1)
    blurred = torch.nn.functional.avg_pool2d(targets, 5, stride=1, padding=2, count_include_pad=False)
    assert pixel_mse(shifted, targets) > pixel_mse(blurred, targets)
    assert loss(shifted, targets).item() < 0.5 * loss(blurred, targets).item()
    images = blurred.clone().requires_grad_(True)
    loss(images, targets).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in fr.parameters())
    loss.train()
    assert not fr.training
    with pytest.raises(ConfigError, match="IResNet-like.*CountingFR"):
        TextureLoss(CountingFR())
