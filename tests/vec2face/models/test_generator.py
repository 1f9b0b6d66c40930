"""Vec2Face generator and discriminator: shapes, masking, generation, official-checkpoint layout."""

from __future__ import annotations

import argparse
import logging
import math

import pytest
import scipy.stats
import torch

from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.models import (
    build_generator,
    list_models,
    load_generator_checkpoint,
    save_generator_checkpoint,
)
from vec2face.models.discriminator import PatchDiscriminator, build_discriminator
from vec2face.models.generator import (
    GENERATION_MASKING,
    TRAIN_MASKING,
    GeneratorArch,
    MaskingConfig,
)

OFFICIAL_UNUSED = {  # the official modules our model does not build, with vit_base shapes
    "patch_embed.proj.weight": (768, 3, 16, 16),
    "patch_embed.proj.bias": (768,),
    "center_token.weight": (49, 768),
    "center_token.bias": (49,),
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_generator("tiny")


def _official_like(state: dict[str, torch.Tensor], d: int) -> dict[str, torch.Tensor]:
    """Our state dict plus the official-only unused tensors (shapes for width d)."""
    out = dict(state)
    out["patch_embed.proj.weight"] = torch.randn(d, 3, 16, 16)
    out["patch_embed.proj.bias"] = torch.randn(d)
    out["center_token.weight"] = torch.randn(49, d)
    out["center_token.bias"] = torch.randn(49)
    return out


# ------------------------------------------------------------------------------- registry
def test_registry_lists_sizes_and_rejects_unknown():
    assert {"tiny", "vit_base_patch16", "vit_large_patch16"} <= set(list_models("generator"))
    with pytest.raises(ConfigError, match="known: .*tiny.*vit_base_patch16"):
        build_generator("vit_gigantic")
    with pytest.raises(ConfigError, match="unknown overrides \\['depthh'\\]"):
        build_generator("tiny", depthh=3)


def test_arch_validation_and_dict_roundtrip():
    with pytest.raises(ConfigError, match="decoder_embed_dim"):
        GeneratorArch(
            name="x",
            embed_dim=64,
            depth=1,
            num_heads=2,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=2,
        )
    arch = build_generator("tiny").arch
    assert GeneratorArch.from_dict(arch.to_dict()) == arch
    assert arch.image_size == 112
    assert isinstance(arch.to_dict()["dec_ch_mult"], list)


def test_overrides_apply(tiny):
    m = build_generator(
        "tiny", decoder_depth=1, gen_masking=MaskingConfig(ratio_min=0.2, ratio_mu=0.3)
    )
    assert len(m.decoder_blocks) == 1 and m.gen_masking.ratio_min == 0.2
    assert m.train_masking == TRAIN_MASKING


# ------------------------------------------------------------------------------- masking
def test_truncated_normal_matches_scipy():
    g = torch.Generator().manual_seed(0)
    for cfg in (TRAIN_MASKING, GENERATION_MASKING):
        r = cfg.sample_ratios(40000, g).numpy()
        ref = scipy.stats.truncnorm(
            (cfg.ratio_min - cfg.ratio_mu) / cfg.ratio_std,
            (cfg.ratio_max - cfg.ratio_mu) / cfg.ratio_std,
            loc=cfg.ratio_mu,
            scale=cfg.ratio_std,
        )
        assert r.min() >= cfg.ratio_min and r.max() <= cfg.ratio_max
        assert abs(r.mean() - ref.mean()) < 0.005
        assert abs(r.std() - ref.std()) < 0.005


def test_draw_masks_structure(tiny):
    g = torch.Generator().manual_seed(3)
    for cfg in (TRAIN_MASKING, GENERATION_MASKING):
        keep, mask = tiny.draw_masks(64, cfg, g)
        n_drop = math.ceil(49 * cfg.ratio_min)
        assert keep.shape == (64, 50 - n_drop) and mask.shape == (64, 49)
        assert (keep[:, 0] == 0).all()  # class token always kept
        assert (mask.sum(1) >= n_drop).all()
        for k, m in zip(keep, mask):
            assert len(set(k.tolist())) == k.numel()
            dropped = set(range(1, 50)) - set(k.tolist())
            assert len(dropped) == n_drop
            assert all(m[i - 1] for i in dropped)  # every dropped token is a masked token


# ------------------------------------------------------------------------------- forward
def test_tiny_forward_backward(tiny):
    tiny.train()
    v = torch.randn(3, 512)
    out = tiny(v, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (3, 3, 112, 112)
    assert out.tokens.shape == out.target_tokens.shape == (3, 49, 192)
    assert out.mask.dtype == torch.bool and (out.mask.sum(1) >= 25).all()
    assert out.tokens.requires_grad and not out.target_tokens.requires_grad
    # target tokens are the unmasked feature tokens of the projected vector
    enc = tiny.latent_prior_proj_f(v)
    expected = tiny.feature_token(enc.unsqueeze(-1)).transpose(1, 2)
    torch.testing.assert_close(out.target_tokens, expected.detach())
    (out.images.square().mean() + out.tokens.square().mean()).backward()
    grads = [p.grad for p in tiny.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert tiny.last_layer().grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def _official_style_forward(m, v, keep, mask):
    """The official algorithm: boolean drop in position order, refill by nonzero order."""
    enc = m.latent_prior_proj_f(v)
    tokens = m.feature_token(enc.unsqueeze(-1)).permute(0, 2, 1).clone()
    tokens[mask] = enc.unsqueeze(1).expand(-1, 49, -1)[mask]
    x = m.token_emb(torch.cat([enc.unsqueeze(1), tokens], 1))
    drop = torch.ones(v.shape[0], 50, dtype=torch.bool)
    drop.scatter_(1, keep, False)
    bsz, _, d = x.shape
    x = x[(~drop).nonzero(as_tuple=True)].reshape(bsz, -1, d)
    for blk in m.blocks:
        x = blk(x)
    x = m.decoder_embed(m.norm(x))
    pad = x[:, 0:1].repeat(1, 50, 1)
    full = pad.clone()
    full[(~drop).nonzero(as_tuple=True)] = x.reshape(-1, x.shape[-1])
    all_mask = torch.cat([torch.zeros(bsz, 1, dtype=torch.bool), mask], 1)
    x = torch.where(all_mask.unsqueeze(-1), pad, full) + m.decoder_pos_embed_learned
    for blk in m.decoder_blocks:
        x = blk(x)
    logits = m.decoder_norm(x)
    z = m.im_decoder_proj(logits[:, 1:].reshape(bsz, 7, 7, -1)).permute(0, 3, 1, 2)
    return m.im_decoder(z)


def test_forward_matches_official_algorithm(tiny):
    tiny.eval()
    v = torch.randn(4, 512)
    keep, mask = tiny.draw_masks(4, GENERATION_MASKING, torch.Generator().manual_seed(1))
    with torch.no_grad():
        latent, _ = tiny.forward_encoder(v, keep, mask)
        _, z = tiny.forward_decoder(latent, keep, mask)
        ours = tiny.im_decoder(z)
        ref = _official_style_forward(tiny, v, keep, mask)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------- generate
def test_generate_reproducible_and_batch_independent(tiny):
    tiny.train()
    v = torch.randn(5, 512)
    a = tiny.generate(v, seed=7, batch_size=2)
    b = tiny.generate(v.numpy(), seed=7, batch_size=5)
    c = tiny.generate(v, seed=8, batch_size=5)
    assert tiny.training  # mode restored
    assert a.shape == (5, 3, 112, 112) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # batch-size-dependent kernels
    assert (a - c).abs().max() > 1e-4
    bf = tiny.generate(v, seed=7, batch_size=5, autocast_bf16=True)
    assert bf.dtype == torch.float32 and (bf - a).abs().mean() < 0.1


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.randn(2, 128), "shape \\(N, 512\\)"),
        (torch.randn(512), "shape \\(N, 512\\)"),
        (torch.empty(0, 512), "empty batch"),
        (torch.tensor([[0.0] * 511 + [float("nan")]]), "NaN/inf \\(rows \\[0\\]"),
        (torch.tensor([[1.0] * 512, [float("inf")] * 512]), "NaN/inf \\(rows \\[1\\]"),
    ],
)
def test_generate_rejects_bad_vectors(tiny, bad, match):
    with pytest.raises(Vec2FaceError, match=match):
        tiny.generate(bad)


# ------------------------------------------------------------------------------- checkpoints
def test_our_checkpoint_roundtrip(tiny, tmp_path):
    m = build_generator("tiny", gen_masking=MaskingConfig(ratio_min=0.2, ratio_mu=0.25))
    path = tmp_path / "gen.pth"
    save_generator_checkpoint(m, path, epoch=3, extra={"run": "abc", "loss_weights": {"mse": 1.0}})
    loaded, report = load_generator_checkpoint(path)
    assert report.arch_name == "tiny" and not report.official and report.ignored == ()
    assert report.epoch == 3 and report.metadata == {"run": "abc", "loss_weights": {"mse": 1.0}}
    assert loaded.arch == m.arch and loaded.gen_masking == m.gen_masking and not loaded.training
    for k, t in m.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[k]), k
    v = torch.randn(2, 512)
    torch.testing.assert_close(m.generate(v, seed=1), loaded.generate(v, seed=1))
    with pytest.raises(Vec2FaceError, match="differs from requested 'vit_base_patch16'"):
        load_generator_checkpoint(path, name="vit_base_patch16")


def test_official_layout_tiny_loads_and_reports_ignored(tiny, tmp_path, caplog):
    path = tmp_path / "official.pth"
    state = _official_like(tiny.state_dict(), 192)
    torch.save(
        {"model_vec2face": state, "epoch": 99, "args": argparse.Namespace(model="x", blr=4e-5)},
        path,
    )
    with caplog.at_level(logging.WARNING):
        loaded, report = load_generator_checkpoint(path, name="tiny")
    assert report.official and set(report.ignored) == set(OFFICIAL_UNUSED)
    assert "ignored 4 unused official tensors" in caplog.text
    for k, t in tiny.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[k]), k


def test_checkpoint_errors(tiny, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_generator_checkpoint(tmp_path / "none.pth")
    torch.save({"state_dict": {}}, tmp_path / "nokey.pth")
    with pytest.raises(Vec2FaceError, match="no 'model_vec2face'"):
        load_generator_checkpoint(tmp_path / "nokey.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Vec2FaceError, match="cannot read"):
        load_generator_checkpoint(tmp_path / "junk.pth")

    state = tiny.state_dict()
    extra = dict(state, **{"foo.weight": torch.zeros(1)})
    torch.save({"model_vec2face": extra}, tmp_path / "extra.pth")
    with pytest.raises(Vec2FaceError, match="unexpected keys: foo.weight"):
        load_generator_checkpoint(tmp_path / "extra.pth", name="tiny")
    partial = {k: v for k, v in state.items() if k != "decoder_norm.bias"}
    torch.save({"model_vec2face": partial}, tmp_path / "partial.pth")
    with pytest.raises(Vec2FaceError, match="missing keys: decoder_norm.bias"):
        load_generator_checkpoint(tmp_path / "partial.pth", name="tiny")
    # an official-layout file of another size, loaded as the default vit_base_patch16
    torch.save({"model_vec2face": state}, tmp_path / "small.pth")
    with pytest.raises(
        Vec2FaceError,
        match=r"'vit_base_patch16'.*latent_prior_proj_f.weight \(192, 512\) vs \(768, 512\)",
    ):
        load_generator_checkpoint(tmp_path / "small.pth")


# ------------------------------------------------------------------------------- paper size
@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_generator("vit_base_patch16")


def test_vit_base_matches_official_layout(base):
    state = base.state_dict()
    assert len(state) == 349 - len(OFFICIAL_UNUSED)
    n_params = sum(p.numel() for p in base.parameters())
    assert n_params == 173_498_725
    official_params = n_params + sum(math.prod(s) for s in OFFICIAL_UNUSED.values())
    assert round(official_params / 1e6, 1) == 174.1

    per_module = {}
    for k in state:
        per_module[k.split(".")[0]] = per_module.get(k.split(".")[0], 0) + 1
    assert per_module == {
        "latent_prior_proj_f": 2,
        "feature_token": 2,
        "token_emb": 4,
        "blocks": 12 * 12,
        "norm": 2,
        "decoder_embed": 2,
        "decoder_pos_embed_learned": 1,
        "decoder_blocks": 8 * 12,
        "decoder_norm": 2,
        "im_decoder_proj": 2,
        "im_decoder": 88,
    }
    shapes = {
        "token_emb.position_ids": (1, 50),
        "token_emb.position_embeddings.weight": (50, 768),
        "latent_prior_proj_f.weight": (768, 512),
        "feature_token.weight": (49, 1),
        "blocks.11.attn.qkv.weight": (2304, 768),
        "blocks.11.mlp.fc1.weight": (3072, 768),
        "decoder_pos_embed_learned": (1, 50, 768),
        "decoder_blocks.7.attn.proj.weight": (768, 768),
        "im_decoder_proj.weight": (256, 768),
        "im_decoder.conv_in.weight": (512, 256, 3, 3),
        "im_decoder.mid.block_2.conv2.weight": (512, 512, 3, 3),
        "im_decoder.up.4.upsample.conv.weight": (512, 512, 3, 3),
        "im_decoder.up.3.block.0.nin_shortcut.weight": (256, 256, 1, 1),
        "im_decoder.up.1.block.0.nin_shortcut.weight": (128, 128, 1, 1),
        "im_decoder.up.0.block.1.norm2.weight": (128,),
        "im_decoder.conv_out.weight": (3, 128, 3, 3),
    }
    for k, s in shapes.items():
        assert tuple(state[k].shape) == s, k
    assert not any("attn" in k for k in state if k.startswith("im_decoder"))
    assert "im_decoder.up.0.upsample.conv.weight" not in state
    assert [len(base.im_decoder.up[i].block) for i in range(5)] == [2] * 5
    assert base.blocks[0].attn.num_heads == 12 and base.decoder_blocks[0].attn.num_heads == 16


@pytest.mark.slow
def test_vit_base_loads_official_layout(base, tmp_path, caplog):
    state = _official_like(base.state_dict(), 768)
    for k, s in OFFICIAL_UNUSED.items():
        assert tuple(state[k].shape) == s
    assert len(state) == 349
    path = tmp_path / "vec2face_generator.pth"
    torch.save({"model_vec2face": state}, path)
    del state
    with caplog.at_level(logging.WARNING):
        loaded, report = load_generator_checkpoint(path)
    assert report.arch_name == "vit_base_patch16" and report.official
    assert set(report.ignored) == set(OFFICIAL_UNUSED) and "patch_embed.proj.weight" in caplog.text
    ours = base.state_dict()
    for k, t in loaded.state_dict().items():
        assert torch.equal(t, ours[k]), k


# ------------------------------------------------------------------------------- discriminator
def test_discriminator_shapes_names_and_backward():
    assert {"patchgan", "patchgan_tiny"} <= set(list_models("discriminator"))
    with pytest.raises(ConfigError, match="known: patchgan"):
        build_discriminator("stylegan")
    d = build_discriminator("patchgan")
    assert isinstance(d, PatchDiscriminator) and d.dims == (64, 128, 256, 512)
    state = d.state_dict()
    # the official (parti-pytorch ViT-VQGAN) layout: multi-scale stem, 3 stages, 2 logit convs
    assert tuple(state["layers.0.0.convs.0.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["layers.0.0.convs.2.weight"].shape) == (16, 3, 15, 15)
    assert tuple(state["layers.3.3.block.project.weight"].shape) == (512, 512, 3, 3)
    assert tuple(state["to_logits.2.weight"].shape) == (1, 512, 4, 4)
    t = build_discriminator("patchgan_tiny")
    x = torch.randn(2, 3, 112, 112, requires_grad=True)
    logits = t(x)
    assert logits.shape == (2, 1, 11, 11)
    logits.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bf16_generation_uses_a_weight_copy_that_follows_weight_updates():
    torch.manual_seed(0)
    g = build_generator("tiny").eval()
    v = torch.randn(4, 512)
    fp32 = g.generate(v, seed=3)
    bf16 = g.generate(v, seed=3, autocast_bf16=True)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert (bf16 - fp32).abs().mean() < 0.05
    assert torch.equal(bf16, g.generate(v, seed=3, autocast_bf16=True))  # cached copy, same bytes
    assert not any("_bf16" in k for k in g.state_dict())
    with torch.no_grad():  # an in-place update, as an optimiser step makes
        g.im_decoder.conv_out.bias.add_(0.5)
    moved = g.generate(v, seed=3, autocast_bf16=True)
    assert (moved - bf16).mean() > 0.1  # the copy was rebuilt from the new weights


def test_vector_scale_multiplies_the_input_and_travels_with_the_checkpoint(tmp_path):
    import dataclasses

    torch.manual_seed(0)
    g = build_generator("tiny", vector_scale=math.sqrt(512)).eval()
    assert g.arch.vector_scale == pytest.approx(math.sqrt(512))
    # the paper sizes take our unit-norm features to the official raw-feature scale (norm ~22)
    assert build_generator("vit_base_patch16").arch.vector_scale == pytest.approx(math.sqrt(512))
    from vec2face.models.generator import Vec2FaceGenerator

    plain = Vec2FaceGenerator(dataclasses.replace(g.arch, vector_scale=1.0)).eval()
    plain.load_state_dict(g.state_dict())
    v = torch.nn.functional.normalize(torch.randn(3, 512), dim=1)
    torch.testing.assert_close(g.generate(v, seed=1), plain.generate(v * math.sqrt(512), seed=1))
    path = tmp_path / "g.pt"
    save_generator_checkpoint(g, path)
    loaded, _ = load_generator_checkpoint(path)
    assert loaded.arch.vector_scale == g.arch.vector_scale


def test_decoder_norm_groups_override_builds_and_travels_with_the_checkpoint(tmp_path):
    from torch import nn

    g = build_generator("tiny", dec_norm_groups=8)
    norms = [m for m in g.im_decoder.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 8 for m in norms)
    # The official layout keeps 32 groups; a group count that does not divide a level's
    # width is refused with the field named.
    assert all(
        m.num_groups == 32
        for m in build_generator("tiny").im_decoder.modules()
        if isinstance(m, nn.GroupNorm)
    )
    with pytest.raises(ConfigError, match="dec_norm_groups 7"):
        build_generator("tiny", dec_norm_groups=7)
    path = tmp_path / "g.pt"
    save_generator_checkpoint(g, path)
    loaded, _ = load_generator_checkpoint(path)
    assert loaded.arch.dec_norm_groups == 8
    torch.testing.assert_close(loaded.state_dict(), g.state_dict())


def test_input_whitening_init_decorrelates_the_projected_vectors():
    # Anisotropic features, like a small teacher's: eigenvalues spread over four decades.
    g = torch.Generator().manual_seed(3)
    basis, _ = torch.linalg.qr(torch.randn(512, 512, generator=g, dtype=torch.float64))
    scales = torch.logspace(0, -2, 512, dtype=torch.float64)
    feats = (torch.randn(4000, 512, generator=g, dtype=torch.float64) * scales) @ basis.T + 0.3
    feats = torch.nn.functional.normalize(feats, dim=1).float()

    model = build_generator("tiny", vector_scale=math.sqrt(512))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = model.init_input_whitening(feats)
    assert stats["kept"] == 192 and 0.0 < stats["top10_share"] < 1.0 and stats["condition"] > 10

    with torch.no_grad():
        proj = model.latent_prior_proj_f(feats * model.arch.vector_scale).double()
    assert proj.mean(0).abs().max() < 1e-3
    cov = torch.cov(proj.T)
    torch.testing.assert_close(cov, torch.eye(192, dtype=torch.float64), atol=2e-3, rtol=0)
    # The projection holds the leading principal directions, largest first.
    lead = torch.linalg.eigh(torch.cov(feats.double().T))[1][:, -1]
    row0 = torch.nn.functional.normalize(model.latent_prior_proj_f.weight[0].detach().double(), dim=0)
    assert abs(float(row0 @ lead)) > 0.999
    # Nothing but the projection changed.
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"latent_prior_proj_f.weight", "latent_prior_proj_f.bias"}


def test_input_whitening_init_keeps_extra_rows_and_rejects_bad_features():
    model = build_generator("tiny", embed_dim=768, decoder_embed_dim=768, num_heads=12, decoder_num_heads=12)
    rows_before = model.latent_prior_proj_f.weight[512:].clone()
    feats = torch.nn.functional.normalize(torch.randn(2000, 512), dim=1)
    assert model.init_input_whitening(feats)["kept"] == 512
    assert torch.equal(model.latent_prior_proj_f.weight[512:], rows_before)
    with pytest.raises(ConfigError, match=r"\(N, 512\)"):
        model.init_input_whitening(torch.randn(10, 256))
    with pytest.raises(ConfigError, match="finite"):
        model.init_input_whitening(torch.full((10, 512), float("nan")))


def test_input_whitening_init_whitens_only_the_directions_the_data_spans():
    model = build_generator("tiny")
    feats = torch.nn.functional.normalize(torch.randn(50, 512), dim=1)  # spans 49 directions
    stats = model.init_input_whitening(feats)
    assert stats["kept"] == 49
    with torch.no_grad():
        proj = model.latent_prior_proj_f(feats).double()[:, :49]
    torch.testing.assert_close(torch.cov(proj.T), torch.eye(49, dtype=torch.float64), atol=1e-3, rtol=0)
