"""Asset checks: a corrupted subset fails its GX check and blocks what depends on it."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

import assets_defs.webface as webface_module
from assets_defs import all_asset_checks, all_assets
from assets_defs.checks import benchmark_table, subset_tables, validate
from orchestration.definitions import make_resources
from tests.orchestration.conftest import make_micro_project
from vec2face.data import open_dataset, read_manifest, write_lmdb, write_manifest
from vec2face.data.subset import SubsetConfig
from vec2face.toyfaces.benchmarks import BenchmarksConfig


def _drop_manifest_row(out):
    manifest = read_manifest(out / "manifest.parquet")
    write_manifest(manifest.iloc[1:].reset_index(drop=True), out / "manifest.parquet")


def _break_first_image(out):
    with open_dataset(out / "train.lmdb") as ds:
        records = [ds.read_raw(i)[:2] for i in range(len(ds))]
    records[0] = (b"\xff\xd8 not a jpeg", records[0][1])
    write_lmdb(records, out / "train.lmdb", layout="fr")


@dg.asset(deps=["webface_subset"])
def subset_consumer() -> None:
    """Stands for fr_teacher / fmae_generator: must not run on a failed subset."""


@pytest.mark.parametrize("corrupt, failing", [
    (_drop_manifest_row, "subset_manifest.expect_table_row_count_to_equal"),
    (_break_first_image, "subset_images.expect_column_values_to_be_in_set[readable]"),
])
def test_corrupted_subset_fails_the_blocking_check_and_stops_downstream(tmp_path, monkeypatch, corrupt, failing):
    repo = make_micro_project(tmp_path / "project")
    out = repo / "outputs" / "tiny"
    real = webface_module.make_subset

    def corrupted_subset(src, dst, config):
        report = real(src, dst, config)
        corrupt(dst)
        return report

    monkeypatch.setattr(webface_module, "make_subset", corrupted_subset)
    selected = [a for a in all_assets if a.key.to_user_string() in ("webface_pool", "webface_subset")]
    result = dg.materialize(
        [*selected, *all_asset_checks, subset_consumer],
        selection=["webface_pool", "webface_subset", "subset_consumer"],
        resources=make_resources(str(out), str(repo / "params.yaml"), str(repo)),
        raise_on_error=False,
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "webface_subset_expectations"]
    assert not check.passed
    assert failing in check.metadata["failed_expectations"].value
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "webface_subset" in materialized and "subset_consumer" not in materialized
    assert not result.success


def test_missing_source_fails_with_its_path_and_nothing_downstream_runs(tmp_path):
    repo = make_micro_project(tmp_path / "project")
    out = repo / "outputs" / "tiny"
    result = dg.materialize(
        [*all_assets, *all_asset_checks, subset_consumer],
        selection=["webface_subset", "subset_consumer"],
        resources=make_resources(str(out), str(repo / "params.yaml"), str(repo)),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error, message = failure.step_failure_data.error, ""
    while error is not None:  # Dagster wraps the step's exception; read the whole chain
        message, error = message + error.message, error.cause
    assert "webface_pool" in message and str(out / "world" / "webface") in message
    assert not result.get_asset_materialization_events()


def test_validate_reports_each_expectation():
    import great_expectations.expectations as gxe

    frame = pd.DataFrame({"width": [112, 111]})
    passed, meta = validate({"t": (frame, [gxe.ExpectColumnValuesToBeBetween(column="width", min_value=112,
                                                                              max_value=112)])})
    assert not passed
    assert meta["t.expect_column_values_to_be_between[width]"].startswith("FAILED")
    assert meta["failed_expectations"] == "t.expect_column_values_to_be_between[width]"


def test_benchmark_table_marks_missing_and_unreadable_sets(tmp_path):
    (tmp_path / "lfw.bin").write_bytes(b"not a pickle")
    table = benchmark_table(tmp_path, BenchmarksConfig(pairs=20, identities=20, sets=("lfw", "cfp_fp")))
    assert table.to_dict("records") == [
        {"set": "lfw", "readable": False, "pairs": 0, "genuine": 0, "images": 0},
        {"set": "cfp_fp", "readable": False, "pairs": 0, "genuine": 0, "images": 0},
    ]


def test_subset_tables_expect_the_configured_identity_count(tmp_path):
    from vec2face.data.subset import make_subset
    from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces

    make_toyfaces(ToyfacesConfig(pool="webface", identities=3, images=2, workers=1), tmp_path / "w", progress=False)
    make_subset(tmp_path / "w", tmp_path / "s", SubsetConfig(identities=2, min_images=2))
    passed, _ = validate(subset_tables(tmp_path / "s", SubsetConfig(identities=2, min_images=2)))
    assert passed
    passed, meta = validate(subset_tables(tmp_path / "s", SubsetConfig(identities=3, min_images=2)))
    assert not passed and "subset_identities.expect_table_row_count_to_equal" in meta["failed_expectations"]
