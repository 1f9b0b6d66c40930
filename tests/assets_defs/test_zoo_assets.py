"""The zoo's Dagster assets build entries with the library's zoo build (micro profile)."""

from __future__ import annotations

import dagster as dg

from assets_defs import build_assets
from orchestration.definitions import make_definitions, make_resources
from tests.orchestration.conftest import MICRO_PARAMS
from vec2face import zoo
from vec2face.config import read_params


def test_zoo_job_selects_only_the_zoo_group():
    defs = make_definitions("outputs/x", str(MICRO_PARAMS))
    selected = defs.resolve_job_def("build_zoo").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in selected} == {f"zoo_{n}" for n in zoo.ZOO_NAMES}
    prepare = defs.resolve_job_def("prepare_generation").asset_layer.selected_asset_keys
    assert not {k.to_user_string() for k in prepare} & {f"zoo_{n}" for n in zoo.ZOO_NAMES}


def test_zoo_asset_writes_an_entry_then_keeps_it_when_not_better(tmp_path, monkeypatch):
    monkeypatch.setenv("VEC2FACE_ZOO", str(tmp_path / "zoo"))
    resources = make_resources(str(tmp_path / "out"), str(MICRO_PARAMS))
    assets = build_assets(read_params(MICRO_PARAMS))
    first = dg.materialize(assets, selection=["zoo_attributes"], resources=resources)
    (mat,) = [e.step_materialization_data.materialization
              for e in first.get_asset_materialization_events()]
    assert mat.metadata["written"].value is True and mat.metadata["version"].value == 1
    manifest = zoo.manifest("attributes", tmp_path / "zoo")
    assert mat.metadata["sha256"].value == manifest["sha256"]
    assert manifest["command"].startswith("dagster asset zoo_attributes")
    assert mat.metadata["heldout_yaw_mae"].value == manifest["figures"]["yaw_mae"]
    again = dg.materialize(assets, selection=["zoo_attributes"], resources=resources)
    (mat,) = [e.step_materialization_data.materialization
              for e in again.get_asset_materialization_events()]
    assert mat.metadata["written"].value is False
    assert "does not improve" in mat.metadata["reason"].value
    assert zoo.manifest("attributes", tmp_path / "zoo")["version"] == 1
