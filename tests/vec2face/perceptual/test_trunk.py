"""The toy perceptual trunk: its distance, its training on a toy pool, loading and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vec2face.errors import ConfigError, DataFormatError
from vec2face.generator.losses import (
    GeneratorLoss,
    GeneratorLossConfig,
    ToyTrunkDistance,
    normalized_map_distance,
)
from vec2face.models.trunk import build_trunk
from vec2face.perceptual import (
    TRUNK_FILE,
    PerceptualTrainConfig,
    load_trunk,
    prefers_sharp,
    target_fields,
    train_trunk,
    trunk_figures,
)
from vec2face.perceptual.train import load_trunk_data
from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    base = tmp_path_factory.mktemp("pools")
    make_toyfaces(ToyfacesConfig(pool="perceptual", identities=6, images=4, workers=1),
                  base / "perceptual", progress=False)
    make_toyfaces(ToyfacesConfig(pool="pca", identities=4, images=3, workers=1),
                  base / "heldout", progress=False)
    return base


@pytest.fixture(scope="module")
def trained(pools, tmp_path_factory):
    out = tmp_path_factory.mktemp("trunk")
    config = PerceptualTrainConfig(epochs=2, batch_size=8)
    return out, config, train_trunk(config, pools / "perceptual", out, pools / "heldout",
                                    progress=False)


def test_normalized_map_distance_on_hand_made_maps():
    a = torch.zeros(2, 3, 2, 2)
    a[:, 0] = 1.0
    b = a.clone()
    b[1] = -a[1]  # image 1: every position points the opposite way
    d = normalized_map_distance([a, a * 5], [b, b])
    # per stage: 0 for the same direction (scale does not matter), 4 for opposite ones
    assert torch.allclose(d, torch.tensor([0.0, 8.0]))


def test_toy_distance_passes_gradients_to_images_only():
    torch.manual_seed(0)
    trunk = build_trunk()
    distance = ToyTrunkDistance(trunk)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    d = distance(y, x)
    assert d.shape == (2,) and torch.all(d > 0)
    assert torch.allclose(distance(x, x), torch.zeros(2), atol=1e-6)
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in trunk.parameters())
    distance.train()
    assert not trunk.training


def test_generator_loss_uses_the_toy_trunk_for_its_lpips_term():
    cfg = GeneratorLossConfig(perceptual_trunk="toy", identity=0.0, token=0.0)
    with pytest.raises(ConfigError, match="perceptual_trunk 'toy' needs the trunk"):
        GeneratorLoss(cfg)
    loss = GeneratorLoss(cfg, perceptual_trunk=build_trunk())
    assert isinstance(loss.lpips, ToyTrunkDistance) and loss.pretrained_lpips_backbone
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    tokens = torch.zeros(2, 49, 8)
    _, terms = loss(x.flip(3), x, tokens, tokens, torch.randn(2, 512), epoch=0)
    assert terms["lpips"] > 0


def _laplacian_energy(a: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return F.conv2d(a, k, groups=3).pow(2).flatten(1).mean(1)


def test_prefers_sharp_separates_edge_keeping_from_edge_losing_distances(pools):
    images = load_trunk_data(pools / "heldout").images

    def keeps_edges(a, b):  # how much edge energy a lost against b: a shift loses none
        return (_laplacian_energy(b) - _laplacian_energy(a)).abs()

    assert prefers_sharp(keeps_edges, images) == 1.0
    assert prefers_sharp(lambda a, b: -keeps_edges(a, b), images) == 0.0


def test_training_writes_a_trunk_that_loads_and_predicts(trained, pools):
    out, config, summary = trained
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert summary["images"] == 24 and summary["identities"] == 6
    figures = summary["heldout"]
    assert set(figures) == {"identity_r2", "nuisance_r2", "yaw_mae", "age_mae", "prefers_sharp"}
    assert 0.0 <= figures["prefers_sharp"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["heldout"] == figures
    trunk = load_trunk(out)
    assert trunk.classify is None and trunk.regress.out_features == len(target_fields())
    assert not trunk.training
    # measuring again gives the same figures: the loaded trunk is the trained one
    assert trunk_figures(trunk, pools / "heldout") == figures
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    maps = trunk.stages(x)
    assert [m.shape[-1] for m in maps] == [56, 28, 14, 7]


def test_training_is_deterministic_and_resumes(trained, pools, tmp_path):
    out, config, _ = trained
    again = train_trunk(config, pools / "perceptual", tmp_path / "again", progress=False)
    a = torch.load(out / TRUNK_FILE, weights_only=True)["model"]
    b = torch.load(tmp_path / "again" / TRUNK_FILE, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run resumes to the same trunk without training
    assert train_trunk(config, pools / "perceptual", tmp_path / "again",
                       progress=False)["history"] == again["history"]
    with pytest.raises(ConfigError, match="other perceptual_train settings"):
        train_trunk(config.model_copy(update={"lr": 1e-3}), pools / "perceptual",
                    tmp_path / "again", progress=False)


def test_bad_inputs_name_the_thing_at_fault(tmp_path, pools):
    with pytest.raises(ConfigError, match=f"perceptual trunk not found: {tmp_path}"):
        load_trunk(tmp_path)
    (tmp_path / TRUNK_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=f"cannot read perceptual trunk {tmp_path / TRUNK_FILE}"):
        load_trunk(tmp_path / TRUNK_FILE)
    with pytest.raises(DataFormatError, match="no manifest.parquet"):
        load_trunk_data(tmp_path)
    with pytest.raises(ConfigError, match="perceptual_train.arch 'nope' unknown"):
        train_trunk(PerceptualTrainConfig(arch="nope"), pools / "perceptual", tmp_path / "x",
                    progress=False)


def test_target_fields_leave_out_pattern_seeds():
    fields = target_fields()
    assert "yaw" in fields and "eye_open" in fields and "glasses" in fields
    assert not {"hair_seed", "bg_seed", "noise_seed", "freckle_seed"} & set(fields)
    assert len(fields) == len(set(fields)) and np.all([isinstance(f, str) for f in fields])


def test_generator_trains_through_the_trunk_of_a_training_folder(trained, tmp_path):
    from vec2face.data import encode_image, write_lmdb
    from vec2face.generator.train import GeneratorTrainConfig, fit
    from vec2face.tracking import NullTracker

    out, _, _ = trained
    rng = np.random.default_rng(0)
    records = [(encode_image(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), "png"), i // 2,
                rng.standard_normal(512).astype(np.float32)) for i in range(4)]
    write_lmdb(records, tmp_path / "train.lmdb", layout="training")
    config = GeneratorTrainConfig(
        model="tiny", discriminator="patchgan_tiny", epochs=1, batch_size=4, num_workers=0,
        warmup_epochs=0, sample_grid_size=1, device="cpu", perceptual_trunk_checkpoint=str(out),
        loss=GeneratorLossConfig(lpips=0.2, perceptual_trunk="toy", identity=0, disc_start=1),
    )
    metrics = []

    class Recording(NullTracker):
        def log_metrics(self, values, step=None):
            metrics.append(values)

    summary = fit(config, tmp_path / "train.lmdb", tmp_path / "run", tracker=Recording(),
                  progress=False)
    assert summary["pretrained_lpips_backbone"] is True
    assert metrics[0]["lpips"] > 0
    bad = config.model_copy(update={"perceptual_trunk_checkpoint": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match=f"perceptual trunk not found: {tmp_path / 'none'}"):
        fit(bad, tmp_path / "train.lmdb", tmp_path / "run2", progress=False)
