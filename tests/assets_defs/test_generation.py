"""The HSFace partitions, the shard completeness rule, the ablation's config, and one shard
materialized with the estimator (and the teacher) the chain trained."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from assets_defs import _configs, build_assets
from assets_defs.generation import (
    GENERATOR_FILE,
    IDENTITIES_FILE,
    GaussianAblationConfig,
    complete_shards,
    shard_keys,
)
from assets_defs.steps import STEPS
from orchestration.definitions import make_resources
from tests.orchestration.conftest import MICRO_PARAMS
from vec2face.attributes import build_attribute_net
from vec2face.attributes.estimators import toy_checkpoint_state
from vec2face.attributes.train import MODEL_FILE
from vec2face.config import load_step_config, read_params
from vec2face.errors import ConfigError, DataFormatError
from vec2face.fr.train import save_backbone
from vec2face.hsface.identities import IdentitiesConfig
from vec2face.hsface.writer import SHARD_FILES, shard_name
from vec2face.models import build_backbone, build_generator
from vec2face.models.generator import save_generator_checkpoint


def test_shard_keys_follow_identities_and_shard_size():
    assert shard_keys({"hsface": {"identities": 5, "shard_identities": 2}}) == [
        "00000",
        "00001",
        "00002",
    ]
    assert shard_keys({"hsface": {"size": "tiny", "shard_identities": 1000}}) == ["00000"]


def _shard(root, k, start, stop):
    folder = root / "shards" / shard_name(k)
    folder.mkdir(parents=True)
    for name in SHARD_FILES:
        (folder / name).write_bytes(b"")
    (folder / "shard.json").write_text(
        json.dumps({"shard": k, "identity_start": start, "identity_stop": stop, "images": 0})
    )


def test_complete_shards_names_the_missing_trailing_shard(tmp_path):
    params = {"hsface": {"identities": 6, "shard_identities": 2}}
    _shard(tmp_path, 0, 0, 2)
    _shard(tmp_path, 1, 2, 4)
    with pytest.raises(DataFormatError, match="missing shards shard_00002 of 3"):
        complete_shards(params, tmp_path)
    _shard(tmp_path, 2, 4, 6)
    assert [p.name for p in complete_shards(params, tmp_path)] == [
        "shard_00000",
        "shard_00001",
        "shard_00002",
    ]


def test_gaussian_ablation_overrides_the_sampler_settings_and_its_own_count():
    params = {
        "identities": {"n": 7, "sampler": "pca", "threshold": 0.3},
        "gaussian_ablation": {"sampler": "gaussian", "threshold": 1.0, "seed": 4},
    }
    ablation = load_step_config(GaussianAblationConfig, "gaussian_ablation", params)
    ids = load_step_config(
        IdentitiesConfig, "identities", params, ablation.model_dump(exclude_none=True)
    )
    assert (ids.n, ids.sampler, ids.threshold, ids.seed) == (7, "gaussian", 1.0, 4)
    params["gaussian_ablation"]["n"] = 3  # the reports read only so many identities
    ablation = load_step_config(GaussianAblationConfig, "gaussian_ablation", params)
    ids = load_step_config(
        IdentitiesConfig, "identities", params, ablation.model_dump(exclude_none=True)
    )
    assert ids.n == 3
    with pytest.raises(ConfigError, match=r"gaussian_ablation\.n"):
        load_step_config(
            GaussianAblationConfig, "gaussian_ablation", {"gaussian_ablation": {"n": 0}}
        )


def _upstream_outputs(repo, refine_steps: int):
    """The micro params with random stand-ins for the outputs hsface_dataset reads; the
    teacher folder holds real weights only when the settings run AttrOP, so the plain run
    proves it loads no teacher. No dvc.yaml: the stand-ins have no upstream of their own to
    commit, so DVC tracks them as plain ``dvc add`` outputs."""
    params = yaml.safe_load(MICRO_PARAMS.read_text())
    params["hsface"]["refine_steps"] = refine_steps
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = repo / "outputs" / "tiny"
    folder = {name: out / STEPS[name].output for name in STEPS["hsface_dataset"].inputs}
    for path in folder.values():
        path.mkdir(parents=True)
    torch.manual_seed(0)
    save_generator_checkpoint(build_generator("tiny"), folder["fmae_generator"] / GENERATOR_FILE)
    vectors = np.random.default_rng(0).standard_normal((4, 512)).astype(np.float32)
    np.save(folder["identity_vectors"] / IDENTITIES_FILE, vectors)
    torch.save(
        toy_checkpoint_state(build_attribute_net().eval(), "attrnet_s"),
        folder["attribute_estimator"] / MODEL_FILE,
    )
    if refine_steps:
        save_backbone(
            build_backbone("tiny").eval(),
            _configs.fr_training(params, "fr_teacher_train"),
            folder["fr_teacher"],
        )
    else:
        (folder["fr_teacher"] / "backbone.pt").write_bytes(b"not loaded without AttrOP")
    return out


@pytest.mark.parametrize("refine_steps", [0, 1])
def test_a_shard_materialized_by_the_asset_has_estimated_attributes(tmp_path, refine_steps):
    repo = tmp_path / "project"
    out = _upstream_outputs(repo, refine_steps)
    result = dg.materialize(
        build_assets(read_params(repo / "params.yaml")),
        selection=["hsface_dataset"],
        partition_key="00000",
        resources=make_resources(str(out), str(repo / "params.yaml"), str(repo)),
    )
    assert result.success
    shard = out / "hsface" / "shards" / shard_name(0)
    manifest = pd.read_parquet(shard / "manifest.parquet")
    assert len(manifest) == 2 * 5  # micro: 2 identities a shard, 5 images each
    # the toy estimator gives every attribute column, which stays NaN without an estimator
    assert manifest[["yaw", "pitch", "age", "quality"]].notna().all().all()
    stamp = json.loads((shard / "shard.json").read_text())["stamp"]
    assert stamp["estimated_attributes"] is True
    assert (stamp["refine_steps"], stamp["fr_model_sha256"] is not None) == (
        refine_steps,
        bool(refine_steps),
    )
