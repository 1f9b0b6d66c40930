"""MLflow and DVC resources against embedded stores in tmp_path."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from vec2face.errors import ConfigError
from vec2face.tracking import Tracker


def test_mlflow_resource_logs_params_metrics_artifacts_to_sqlite(tmp_path):
    resource = MlflowResource(root=str(tmp_path / "out"), experiment="unit")
    assert resource.resolved_uri() == f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    report = tmp_path / "report.json"
    report.write_text("{}")
    with resource.start_run("step", tags={"dvc_md5": "abc.dir"}) as tracker:
        assert isinstance(tracker, Tracker)
        tracker.log_params({"subset": {"identities": 3, "seed": 0}})
        tracker.log_metrics({"loss": 0.5}, step=1)
        tracker.log_metrics({"loss": 0.25}, step=2)
        tracker.log_artifact(report)
        tracker.set_tags({"stage": "webface_subset"})
        run_id = tracker.run_id
    client = MlflowClient(resource.resolved_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"subset.identities": "3", "subset.seed": "0"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (1, 0.5),
        (2, 0.25),
    ]
    assert run.data.tags["dvc_md5"] == "abc.dir" and run.data.tags["stage"] == "webface_subset"
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.json"]
    assert run.info.artifact_uri.startswith((tmp_path / "out" / "mlartifacts").as_uri())


def test_mlflow_run_is_marked_failed_when_the_step_raises(tmp_path):
    resource = MlflowResource(root=str(tmp_path))
    with pytest.raises(ValueError), resource.start_run("broken") as tracker:
        raise ValueError("boom")
    assert MlflowClient(resource.resolved_uri()).get_run(tracker.run_id).info.status == "FAILED"


def test_a_registered_versions_files_download_once_and_a_missing_one_is_named(tmp_path):
    resource = MlflowResource(root=str(tmp_path / "out"))
    weights = tmp_path / "generator.pt"
    weights.write_bytes(b"weights")
    with resource.start_run("fmae_generator") as tracker:
        tracker.log_artifact(weights)
    number = resource.register_model("vec2face-generator", tracker.run_id, "", {})
    version = resource.model_versions("vec2face-generator")[0]
    into = tmp_path / "cache" / f"v{number}"
    # an optional file the run lacks (an older run without discriminator.pt) is skipped
    got = resource.download_version_files(version, ["generator.pt"], into, ["discriminator.pt"])
    assert got == into and sorted(p.name for p in into.iterdir()) == ["generator.pt"]
    assert (into / "generator.pt").read_bytes() == b"weights"
    weights.write_bytes(b"changed")  # present already: not fetched again
    resource.download_version_files(version, ["generator.pt"], into)
    assert (into / "generator.pt").read_bytes() == b"weights"
    with pytest.raises(FileNotFoundError, match=f"vec2face-generator version {number}: .* "
                       "has no artifact discriminator.pt"):
        resource.download_version_files(version, ["discriminator.pt"], tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert MlflowResource(root=str(tmp_path)).resolved_uri() == "http://127.0.0.1:5999"
    explicit = MlflowResource(root=str(tmp_path), tracking_uri=f"sqlite:///{tmp_path}/x.db")
    assert explicit.resolved_uri() == f"sqlite:///{tmp_path}/x.db"


def test_paths_resource_names_a_missing_params_file(tmp_path):
    paths = PipelinePaths(root=str(tmp_path / "out"), params=str(tmp_path / "nope.yaml"))
    assert paths.output("world/webface") == tmp_path / "out" / "world" / "webface"
    with pytest.raises(ConfigError, match="nope.yaml"):
        paths.read_params()


def test_dvc_resource_inits_adds_versions_and_pushes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    dvc = DvcResource(repo_dir=str(repo), remote_dir=str(tmp_path / "remote"))
    dvc.ensure_repo()
    config = (repo / ".dvc" / "config").read_text()
    assert "no_scm = True" in config and "analytics = false" in config
    local = (repo / ".dvc" / "config.local").read_text()
    assert "remote = local" in local and str(tmp_path / "remote") in local
    data = repo / "data"
    data.mkdir()
    (data / "a.txt").write_text("one")
    assert dvc.stage_for(data) is None
    first = dvc.record(data)  # no dvc.yaml stage outputs it: tracked with dvc add
    assert first.endswith(".dir") and (repo / "data.dvc").is_file()
    assert dvc.stage_for(data) == "data.dvc" and dvc.recorded_hash(data) == first
    assert dvc.status() == {}
    (data / "a.txt").write_text("two")
    assert dvc.status() != {}
    second = dvc.record(data)
    assert second != first and dvc.status() == {}
    dvc.push()
    assert any((tmp_path / "remote").rglob("*"))
    # the first version stays retrievable from the cache
    assert (repo / ".dvc" / "cache" / "files" / "md5" / first[:2] / first[2:]).is_file()
    with pytest.raises(FileNotFoundError, match="missing"):
        dvc.record(repo / "missing")
