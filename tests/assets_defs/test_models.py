"""Configs of the model assets, and bad config failing an asset before any work."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from assets_defs import _configs, all_asset_checks, build_assets
from assets_defs.models import generator_config, same_size
from orchestration.definitions import make_resources
from tests.orchestration.conftest import make_micro_project, step_failure_message
from vec2face.config import read_params
from vec2face.errors import ConfigError


def test_fr_sections_build_on_the_params_profile():
    params = {"profile": "tiny", "fr_judge_train": {"backbone": "tiny_judge", "seed": 1}}
    judge = _configs.fr_training(params, "fr_judge_train")
    # backbone and seed from the section, the margin head from the tiny preset
    assert (judge.backbone, judge.seed, judge.margin) == ("tiny_judge", 1, "cosface")
    assert _configs.fr_training({"profile": "paper"}, "fr_train").backbone == "se_ir50"
    with pytest.raises(ConfigError, match="'profile'"):
        _configs.fr_training({}, "fr_train")
    with pytest.raises(ConfigError, match="unknown FR profile 'huge'"):
        _configs.fr_training({"profile": "huge"}, "fr_train")


def test_fr_model_and_generator_take_the_backbone_the_teacher_was_trained_as(tmp_path):
    (tmp_path / "backbone.json").write_text('{"backbone": "tiny_judge", "embedding_size": 512}')
    params = {
        "profile": "tiny",
        "fr_teacher": {"backbone": "r100", "checkpoint": "elsewhere.pth"},
        "generator": {"teacher": "r50", "epochs": 9},
    }
    model = _configs.fr_model(params, "teacher", tmp_path)
    assert (model.backbone, model.checkpoint) == ("tiny_judge", str(tmp_path))
    generator = generator_config(params, tmp_path)
    assert generator.teacher == "tiny_judge" and generator.teacher_checkpoint == str(tmp_path)
    assert (generator.model, generator.epochs) == ("tiny", 9)  # the tiny preset, then the section


def test_fr_model_needs_datasets_of_the_same_size():
    assert same_size({"subset": {"identities": 4}, "hsface": {"identities": 4}}) == 4
    with pytest.raises(ConfigError, match=r"subset\.identities is 4 and hsface\.identities is 200"):
        same_size({"subset": {"identities": 4}, "hsface": {"size": "tiny"}})


@pytest.mark.parametrize(
    "asset, section, key, value",
    [
        ("fmae_generator", "generator", "lpips_backbone_weights", "weights/vgg16.pth"),
        ("dataset_reports", "dataset_reports", "reference_centers", "real/webface_centers.npy"),
    ],
)
def test_a_missing_weights_file_fails_the_asset_naming_it_and_nothing_downstream_runs(
    tmp_path, asset, section, key, value
):
    repo = make_micro_project(tmp_path / "project")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = str(tmp_path / value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    @dg.asset(deps=[asset])
    def consumer() -> None:
        """Stands for whatever reads the asset."""

    result = dg.materialize(
        [*build_assets(read_params(repo / "params.yaml")), *all_asset_checks, consumer],
        selection=[asset, "consumer"],
        resources=make_resources(
            str(repo / "outputs" / "tiny"), str(repo / "params.yaml"), str(repo)
        ),
        raise_on_error=False,
    )
    assert not result.success
    message = step_failure_message(result)
    assert str(tmp_path / value) in message and f"{section}.{key}" in message
    assert not result.get_asset_materialization_events()
