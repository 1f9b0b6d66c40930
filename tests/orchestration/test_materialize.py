"""End to end on the micro profile: the main job through Dagster, then DVC and MLflow state."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow.tracking import MlflowClient

from assets_defs.steps import STEPS
from orchestration.definitions import make_resources
from orchestration.main_job import main, run_main_job, summary_lines
from tests.orchestration.conftest import make_micro_project


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """The main job run twice on one micro project and one Dagster instance."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        repo = make_micro_project(tmp_path_factory.mktemp("e2e") / "project")
        out = repo / "outputs" / "tiny"
        instance = dg.DagsterInstance.ephemeral()
        first = run_main_job(repo / "params.yaml", out, repo, instance=instance)
        second = run_main_job(repo / "params.yaml", out, repo, instance=instance)
        yield {"repo": repo, "out": out, "instance": instance, "first": first, "second": second}


def _materializations(result) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.to_user_string(): e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()}


def test_every_step_materializes_with_outputs_and_metadata(materialized):
    first, out = materialized["first"], materialized["out"]
    assert first.success
    mats = _materializations(first)
    assert set(mats) == set(STEPS)
    for name, step in STEPS.items():
        meta = mats[name].metadata
        assert Path(meta["path"].value) == out / step.output and (out / step.output).is_dir()
        assert meta["dvc_stage"].value == step.stage
        assert meta["dvc_md5"].value.endswith(".dir")
        assert mats[name].tags["dagster/data_version"] == meta["dvc_md5"].value
        assert meta["reused"].value is False
    assert mats["webface_pool"].metadata["images"].value == 12
    assert mats["webface_subset"].metadata["selected"].value == 3
    assert mats["benchmark_sets"].metadata["cfp_fp_pairs"].value == 20
    assert mats["teacher_pool"].metadata["preview"].value.startswith("![preview.png](data:image/png;base64,")
    report = json.loads((out / "webface_subset" / "subset_report.json").read_text())
    assert report["selected"] == 3 and (out / "webface_subset" / "train.lmdb").exists()
    assert sorted(p.name for p in (out / "benchmarks").glob("*.bin")) == [
        "agedb_30.bin", "calfw.bin", "cfp_fp.bin", "cplfw.bin", "lfw.bin"]


def test_checks_run_with_the_materialization_and_pass(materialized):
    checks = {(c.asset_key.to_user_string(), c.check_name): c
              for c in materialized["first"].get_asset_check_evaluations()}
    assert set(checks) == {("webface_subset", "webface_subset_expectations"),
                           ("benchmark_sets", "benchmark_sets_expectations")}
    for check in checks.values():
        assert check.passed, check.metadata
        assert check.metadata["failed_expectations"].value == "none"


def test_dvc_records_every_output_and_status_is_clean(materialized):
    repo, out = materialized["repo"], materialized["out"]
    dvc = make_resources(str(out), str(repo / "params.yaml"), str(repo))["dvc"]
    assert dvc.status() == {}
    lock = (repo / "dvc.lock").read_text()
    mats = _materializations(materialized["first"])
    for name, step in STEPS.items():
        assert dvc.recorded_hash(out / step.output) == mats[name].metadata["dvc_md5"].value
        assert step.stage in lock
    assert "analytics = false" in (repo / ".dvc" / "config").read_text()
    assert str(out / "dvc-remote") in (repo / ".dvc" / "config.local").read_text()
    dvc.push()  # the local directory remote takes the cache offline
    assert any((out / "dvc-remote").rglob("*"))


def test_mlflow_has_one_run_per_step_tagged_with_dvc_and_dagster(materialized):
    out, first = materialized["out"], materialized["first"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vec2face")
    runs = client.search_runs([experiment.experiment_id])
    by_asset = {r.data.tags["dagster_asset"]: r for r in runs}
    assert len(runs) == len(STEPS) and set(by_asset) == set(STEPS)  # the rerun logged nothing new
    subset = by_asset["webface_subset"]
    assert subset.info.status == "FINISHED"
    assert subset.data.tags["dagster_run_id"] == first.run_id
    assert subset.data.params["identities"] == "3"
    assert subset.data.metrics["images_written"] > 0
    assert [a.path for a in client.list_artifacts(subset.info.run_id)] == ["subset_report.json"]
    assert experiment.artifact_location.startswith((out / "mlartifacts").as_uri())


def test_rerun_with_unchanged_inputs_reuses_every_output(materialized):
    second, first = materialized["second"], materialized["first"]
    assert second.success
    before, after = _materializations(first), _materializations(second)
    for name in STEPS:
        assert after[name].metadata["reused"].value is True
        assert after[name].tags["dagster/data_version"] == before[name].tags["dagster/data_version"]
    assert all(c.passed for c in second.get_asset_check_evaluations())
    lines = summary_lines(second, materialized["out"], materialized["repo"] / "params.yaml",
                          materialized["repo"])
    assert any(line.startswith("webface_subset ") for line in lines)
    assert any("dagster dev -m orchestration.definitions -h 127.0.0.1" in line for line in lines)


def test_changed_params_redo_only_the_affected_steps(materialized, tmp_path, monkeypatch, capsys):
    """A new subset seed redoes webface_subset alone; the command line prints the table."""
    repo, out = materialized["repo"], materialized["out"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["subset"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))  # last test: it edits the project
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    code = main(["--params", str(repo / "params.yaml"), "--out", str(out), "--repo", str(repo)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "check webface_subset:webface_subset_expectations passed" in printed
    assert (tmp_path / "dagster_home" / "dagster.yaml").is_file()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME, as main() used it
    record = instance.get_latest_materialization_event(dg.AssetKey("webface_subset"))
    assert record.asset_materialization.metadata["reused"].value is False
    pool = instance.get_latest_materialization_event(dg.AssetKey("webface_pool"))
    assert pool.asset_materialization.metadata["reused"].value is True
    dvc = make_resources(str(out), str(repo / "params.yaml"), str(repo))["dvc"]
    assert dvc.status() == {}  # dvc.lock now records seed 1 and the new subset
    assert "seed: 1" in (repo / "dvc.lock").read_text()
