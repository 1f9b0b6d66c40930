"""The HSFace partitions, the shard completeness rule and the ablation's config."""

from __future__ import annotations

import json

import pytest

from assets_defs.generation import GaussianAblationConfig, complete_shards, shard_keys
from vec2face.config import load_step_config
from vec2face.errors import ConfigError, DataFormatError
from vec2face.generation.hsface import SHARD_FILES, shard_name
from vec2face.generation.identities import IdentitiesConfig


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


def test_gaussian_ablation_overrides_only_the_sampler_settings_of_identities():
    params = {
        "identities": {"n": 7, "sampler": "pca", "threshold": 0.3},
        "gaussian_ablation": {"sampler": "gaussian", "threshold": 1.0, "seed": 4},
    }
    ablation = load_step_config(GaussianAblationConfig, "gaussian_ablation", params)
    ids = load_step_config(IdentitiesConfig, "identities", params, ablation.model_dump())
    assert (ids.n, ids.sampler, ids.threshold, ids.seed) == (7, "gaussian", 1.0, 4)
    with pytest.raises(ConfigError, match=r"gaussian_ablation\.n"):
        load_step_config(
            GaussianAblationConfig, "gaussian_ablation", {"gaussian_ablation": {"n": 3}}
        )
