"""IResNet backbones: insightface layout and forward, SE-IR50, tiny, checkpoint loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vec2face.errors import ConfigError
from vec2face.models import build_backbone, list_models
from vec2face.models.state_dict import load_backbone, load_state_dict_strict, read_state_dict

torch.set_num_threads(2)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every tensor (BN statistics and PReLU slopes included) a non-trivial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("features.weight"):
                continue  # frozen at 1, as insightface saves it
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
    return model


# --- an independent reading of insightface's IResNet forward, on a bare state dict ------------


def _bn(x, sd, p):
    return F.batch_norm(
        x,
        sd[p + "running_mean"],
        sd[p + "running_var"],
        sd[p + "weight"],
        sd[p + "bias"],
        training=False,
        eps=1e-5,
    )


def _reference_forward(
    sd: dict[str, torch.Tensor], x: torch.Tensor, layers: tuple[int, ...], stem_stride: int = 1
) -> torch.Tensor:
    x = F.conv2d(x, sd["conv1.weight"], stride=stem_stride, padding=1)
    x = F.prelu(_bn(x, sd, "bn1."), sd["prelu.weight"])
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}."
            stride = 2 if b == 0 else 1
            out = _bn(x, sd, p + "bn1.")
            out = F.conv2d(out, sd[p + "conv1.weight"], padding=1)
            out = F.prelu(_bn(out, sd, p + "bn2."), sd[p + "prelu.weight"])
            out = F.conv2d(out, sd[p + "conv2.weight"], stride=stride, padding=1)
            out = _bn(out, sd, p + "bn3.")
            short = x
            if b == 0:
                short = _bn(
                    F.conv2d(x, sd[p + "downsample.0.weight"], stride=2), sd, p + "downsample.1."
                )
            if p + "attn.fc1.weight" in sd:
                gate = short.mean(dim=(2, 3), keepdim=True)
                gate = torch.sigmoid(
                    F.conv2d(
                        F.relu(F.conv2d(gate, sd[p + "attn.fc1.weight"])), sd[p + "attn.fc2.weight"]
                    )
                )
                short = short * gate
            x = out + short
    x = torch.flatten(_bn(x, sd, "bn2."), 1)
    x = F.linear(x, sd["fc.weight"], sd["fc.bias"])
    return F.batch_norm(
        x,
        sd["features.running_mean"],
        sd["features.running_var"],
        sd["features.weight"],
        sd["features.bias"],
        training=False,
        eps=1e-5,
    )


def test_registry_lists_every_backbone_and_names_them_on_a_miss():
    assert {"r18", "r34", "r50", "r100", "se_ir50", "tiny"} <= set(list_models("backbone"))
    with pytest.raises(KeyError, match="known: .*r100.*r50.*se_ir50.*tiny"):
        build_backbone("r51")


@pytest.mark.parametrize(
    "name, tensors, params_m",
    [("r50", 475, 43.59), ("r100", 925, 65.16), ("se_ir50", 483, 43.63)],
)
def test_state_dict_size_matches_insightface(name, tensors, params_m):
    model = build_backbone(name)
    assert len(model.state_dict()) == tensors
    assert round(_num_params(model) / 1e6, 2) == params_m


def test_r50_key_names_and_shapes_follow_insightface():
    sd = build_backbone("r50").state_dict()
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn1.running_var": (64,),
        "prelu.weight": (64,),
        "layer1.0.bn1.weight": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer1.0.prelu.weight": (64,),
        "layer1.0.downsample.0.weight": (64, 64, 1, 1),
        "layer1.0.downsample.1.running_mean": (64,),
        "layer2.0.conv1.weight": (128, 64, 3, 3),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.13.bn3.num_batches_tracked": (),
        "layer4.2.bn3.bias": (512,),
        "bn2.weight": (512,),
        "fc.weight": (512, 512 * 7 * 7),
        "fc.bias": (512,),
        "features.weight": (512,),
        "features.running_var": (512,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert "layer3.14.bn1.weight" not in sd
    assert not [k for k in sd if "attn" in k]


def test_se_ir50_has_se_units_only_in_each_stages_first_block():
    sd = build_backbone("se_ir50").state_dict()
    attn = sorted(k for k in sd if ".attn." in k)
    assert attn == sorted(
        f"layer{i}.0.attn.{fc}.weight" for i in range(1, 5) for fc in ("fc1", "fc2")
    )
    assert tuple(sd["layer1.0.attn.fc1.weight"].shape) == (4, 64, 1, 1)
    assert tuple(sd["layer4.0.attn.fc2.weight"].shape) == (512, 32, 1, 1)


@pytest.mark.parametrize(
    "name, layers, stem_stride",
    [("r18", (2, 2, 2, 2), 1), ("tiny", (1, 2, 2, 1), 2), ("tiny_judge", (1, 1, 2, 1), 2)],
)
def test_forward_equals_insightface_forward_on_the_same_state_dict(name, layers, stem_stride):
    model = _randomize(build_backbone(name)).eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        ours = model(x)
        ref = _reference_forward(model.state_dict(), x, layers, stem_stride)
    assert ours.shape == (2, 512)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_se_block_gates_the_shortcut_branch():
    model = _randomize(build_backbone("tiny", se_reduction=16, embedding_size=64), seed=3).eval()
    sd = model.state_dict()
    assert "layer1.0.attn.fc1.weight" in sd and "layer1.1.attn.fc1.weight" not in sd
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), _reference_forward(sd, x, (1, 2, 2, 1), stem_stride=2), rtol=1e-4, atol=1e-4
        )
        # Gating the residual branch instead would give another function.
        block = model.layer2[0]
        h = torch.randn(2, block.conv1.in_channels, 28, 28)
        residual = block.bn3(block.conv2(block.prelu(block.bn2(block.conv1(block.bn1(h))))))
        short = block.downsample(h)
        torch.testing.assert_close(block(h), residual + block.attn(short))
        assert not torch.allclose(block(h), block.attn(residual) + short, atol=1e-3)


@pytest.mark.parametrize("name", ["r18", "r34", "r50", "se_ir50", "tiny"])
def test_every_backbone_runs_forward_and_backward(name):
    # 32x32 input keeps the deep models cheap on CPU; the layout is the same as at 112.
    model = build_backbone(name, embedding_size=16, input_size=32).train()
    out = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert out.shape == (2, 16)
    out.square().sum().backward()
    assert model.conv1.weight.grad is not None and torch.isfinite(model.conv1.weight.grad).all()
    assert model.features.weight.grad is None


def test_embedding_bn_weight_is_frozen_at_one_through_training():
    model = build_backbone("tiny", embedding_size=32).train()
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(32))
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=5e-4
    )
    for _ in range(2):
        opt.zero_grad()
        model(torch.rand(4, 3, 112, 112) * 2 - 1).square().mean().backward()
        opt.step()
    assert torch.equal(model.features.weight, torch.ones(32))


def test_channels_last_and_bf16_autocast_agree_with_fp32():
    model = _randomize(build_backbone("tiny"), seed=1).eval()
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
        torch.testing.assert_close(cl, ref, rtol=1e-3, atol=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert F.cosine_similarity(low.float(), ref).min() > 0.98


def test_fp16_flag_runs_the_trunk_in_low_precision_and_returns_float32():
    fp32 = _randomize(build_backbone("tiny"), seed=2).eval()
    half = build_backbone("tiny", fp16=True).eval()
    half.load_state_dict(fp32.state_dict())
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        out = half(x)
        ref = fp32(x)
    assert out.dtype == torch.float32
    assert not torch.equal(out, ref)  # the trunk really ran in bfloat16
    assert F.cosine_similarity(out, ref).min() > 0.98


# --- checkpoint loading ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return _randomize(build_backbone("tiny"), seed=5).eval()


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "ddp"])
def test_load_backbone_gives_the_same_embeddings(tmp_path, tiny_model, wrap):
    sd = tiny_model.state_dict()
    obj = {
        "raw": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "ddp": {f"module.{k}": v for k, v in sd.items()},
    }[wrap]
    path = tmp_path / "backbone.pth"
    torch.save(obj, path)
    loaded = load_backbone("tiny", path)
    assert not loaded.training
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny_model(x), rtol=0, atol=0)


def test_missing_checkpoint_names_the_file_and_config_key(tmp_path):
    path = tmp_path / "arcface-r100-glint360k.pth"
    with pytest.raises(
        ConfigError,
        match=r"not found: .*arcface-r100-glint360k\.pth \(config key fr_teacher\.weights\)",
    ):
        load_backbone("r100", path, config_key="fr_teacher.weights")


def test_wrong_architecture_lists_missing_unexpected_and_misshaped_keys(tmp_path, tiny_model):
    sd = dict(tiny_model.state_dict())
    del sd["layer1.0.conv1.weight"]
    sd["head.extra"] = torch.zeros(3)
    sd["fc.bias"] = torch.zeros(7)
    path = tmp_path / "r50-glint.pth"
    torch.save(sd, path)
    with pytest.raises(ConfigError) as err:
        load_backbone("tiny", path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "r50-glint.pth" in msg
    assert "1 missing [layer1.0.conv1.weight]" in msg
    assert "1 unexpected [head.extra]" in msg
    assert "1 mis-shaped [fc.bias (7,) vs model (512,)]" in msg


def test_many_mismatches_are_counted_and_truncated(tiny_model):
    r18 = build_backbone("r18")
    with pytest.raises(ConfigError, match=r"src\.pth: .*\d+ missing \[.*, \.\.\. \(\+\d+\)\]"):
        load_state_dict_strict(r18, tiny_model.state_dict(), source="src.pth")


def test_missing_batchnorm_counters_are_tolerated(tiny_model):
    sd = {k: v for k, v in tiny_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    fresh = build_backbone("tiny").eval()
    load_state_dict_strict(fresh, sd, source="old.pth")
    torch.testing.assert_close(fresh.fc.weight, tiny_model.fc.weight)


class _NotWeights:
    pass


def test_checkpoint_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "pickled_model.pth"
    torch.save({"state_dict": _NotWeights()}, path)
    with pytest.raises(ConfigError, match=r"cannot read checkpoint .*pickled_model\.pth"):
        read_state_dict(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(ConfigError, match="broken.pth"):
        read_state_dict(path)


def test_stem_stride_two_halves_every_map_and_rounds_the_last_up():
    model = build_backbone("tiny").eval()
    assert model.conv1.stride == (2, 2)
    assert model.cfg.final_side == 4  # 112 -> 56 -> 28 -> 14 -> 7 -> 4
    assert model.fc.in_features == 128 * 4 * 4
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 112, 112)).shape == (1, 128 * 16)
    assert build_backbone("r50").cfg.final_side == 7
    with pytest.raises(ValueError, match="stem_stride must be 1, 2 or 4, got 3"):
        build_backbone("tiny", stem_stride=3)


def test_patchify_stem_sees_each_4x4_patch_once():
    model = build_backbone("tiny_patch4").eval()
    assert model.conv1.kernel_size == (4, 4) and model.conv1.stride == (4, 4)
    assert model.conv1.padding == (0, 0)
    assert model.cfg.final_side == 2  # 112 -> 28 -> 14 -> 7 -> 4 -> 2
    assert model.fc.in_features == 128 * 2 * 2
    with torch.no_grad():
        maps = model.feature_maps(torch.zeros(2, 3, 112, 112))
        assert [m.shape[-1] for m in maps] == [28, 14, 7, 4, 2]
        # a pixel reaches exactly one stem output: changing one changes one position only
        x = torch.zeros(1, 3, 112, 112)
        y = x.clone()
        y[0, :, 5, 9] = 1.0
        changed = (model.bn1(model.conv1(y)) - model.bn1(model.conv1(x))).abs().sum(1)[0] > 0
        assert changed.nonzero().tolist() == [[1, 2]]
        assert model(torch.zeros(3, 3, 112, 112)).shape == (3, 512)
