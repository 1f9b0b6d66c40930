"""End to end on the micro profile: the whole asset graph through ``dagster.materialize``
(phase by phase: what the shards need, each shard, what is made from the shards), then
the outputs, checks, DVC state, MLflow runs and registry, the chain sensor, and a rerun
through the main job that reuses everything."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from assets_defs import build_asset_checks, build_assets
from assets_defs.generation import shard_keys
from assets_defs.models import GENERATOR_INIT_TAG
from assets_defs.steps import STEPS, chain_steps
from assets_defs.zoo import ZOO
from orchestration.definitions import make_resources
from orchestration.jobs import HSFACE
from orchestration.main_job import dagster_instance, main, run_main_job, summary_lines
from orchestration.sensors import make_evaluate_after_shards
from tests.orchestration.conftest import ZOO_WEIGHTS, make_micro_project
from vec2face.config import read_params
from vec2face.data import open_dataset
from vec2face.fr.extract import extract_features, load_trained_backbone
from vec2face.models import load_generator_checkpoint

pytestmark = pytest.mark.slow  # about a minute on 2 loaded cores; part of the normal suite

SHARDS = ["00000", "00001"]  # micro: 4 identities, 2 a shard
#: the micro profile trains its off-the-shelf models: every step there is
UNPARTITIONED = [name for name in STEPS if name != "hsface_dataset"]
#: every check of the micro chain: one per asset (the shard check runs once per shard)
CHECKS = {
    ("teacher_pool", "teacher_pool_expectations"),
    ("judge_pool", "judge_pool_expectations"),
    ("webface_pool", "webface_pool_expectations"),
    ("pca_pool", "pca_pool_expectations"),
    ("benchmark_sets", "benchmark_sets_expectations"),
    ("webface_subset", "webface_subset_expectations"),
    ("fr_teacher", "fr_teacher_expectations"),
    ("fr_judge", "fr_judge_expectations"),
    ("attribute_estimator", "attribute_estimator_expectations"),
    ("fmae_generator", "fmae_generator_expectations"),
    ("identity_vectors", "identity_vectors_expectations"),
    ("hsface_dataset", "hsface_shard_expectations"),
    ("hsface_merged", "hsface_manifest_expectations"),
    ("gaussian_ablation", "gaussian_ablation_expectations"),
    ("dataset_reports", "hsface_noise_expectations"),
    ("fr_model", "fr_model_expectations"),
    ("benchmark_accuracies", "benchmark_accuracies_expectations"),
}


def materialize_chain(
    repo: Path, out: Path, instance: dg.DagsterInstance
) -> list[dg.ExecuteInProcessResult]:
    """Every asset of the graph with its checks, phase by phase, through dagster.materialize."""
    params = read_params(repo / "params.yaml")
    assets = [*build_assets(params), *build_asset_checks(params)]
    resources = make_resources(str(out), str(repo / "params.yaml"), str(repo))
    # the chain, not the zoo's own assets (those retrain the shipped models)
    before = dg.AssetSelection.all() - HSFACE.downstream(include_self=True) - ZOO
    runs = [
        dg.materialize(
            assets, selection=before, resources=resources, instance=instance, raise_on_error=False
        )
    ]
    for key in shard_keys(params):
        runs.append(
            dg.materialize(
                assets,
                selection=HSFACE,
                partition_key=key,
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
        )
    runs.append(
        dg.materialize(
            assets,
            selection=HSFACE.downstream(include_self=False),
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
    )
    return runs


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The chain materialized once, then rerun by the main job on the same instance."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        repo = make_micro_project(tmp_path_factory.mktemp("e2e") / "project")
        out = repo / "outputs" / "tiny"
        # a persistent instance: what reruns is decided by its materialization records
        home = tmp_path_factory.mktemp("dagster_home")
        mp.setenv("DAGSTER_HOME", str(home))
        instance = dagster_instance(repo)
        first = materialize_chain(repo, out, instance)
        second = run_main_job(
            repo / "params.yaml", out, repo, instance=instance, log=lambda _: None
        )
        yield {"repo": repo, "out": out, "instance": instance, "first": first, "second": second,
               "home": home}


def _materializations(runs) -> dict[str, dg.AssetMaterialization]:
    """asset (``name[partition]`` for shards) -> its materialization."""
    found = {}
    for run in runs:
        for event in run.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            name = mat.asset_key.to_user_string()
            found[f"{name}[{mat.partition}]" if mat.partition else name] = mat
    return found


def test_every_step_materializes_with_outputs_and_metadata(chain):
    first, out = chain["first"], chain["out"]
    assert all(run.success for run in first)
    mats = _materializations(first)
    assert set(mats) == {*UNPARTITIONED, *(f"hsface_dataset[{k}]" for k in SHARDS)}
    for name in UNPARTITIONED:
        step, meta = STEPS[name], mats[name].metadata
        assert Path(meta["path"].value) == out / step.output and (out / step.output).is_dir()
        assert meta["dvc_stage"].value == step.stage
        assert meta["dvc_md5"].value.endswith(".dir")
        assert mats[name].tags["dagster/data_version"] == meta["dvc_md5"].value
        assert meta["reused"].value is False and meta["mlflow_run_id"].value
    assert mats["webface_subset"].metadata["selected"].value == 4
    assert mats["hsface_merged"].metadata["images"].value == 4 * 5
    assert mats["fr_teacher"].metadata["num_classes"].value == 6
    assert (
        mats["fmae_generator"]
        .metadata["preview"]
        .value.startswith("![epoch_0000.png](data:image/png")
    )
    with open_dataset(out / "fmae_generator" / "training_data" / "train.lmdb") as data:
        assert (
            data.has_features
            and len(data) == mats["webface_subset"].metadata["images_written"].value
        )
        # the generator is conditioned on each image's own teacher feature, not a flip-sum
        # (which is the same for a face and its mirror)
        teacher = load_trained_backbone(out / "fr_teacher")
        kept = np.stack([data[i].feature for i in range(len(data))])
        alone = extract_features(teacher, data, batch_size=8, flip=False, autocast=True)
        summed = extract_features(teacher, data, batch_size=8, flip=True, autocast=True)
        np.testing.assert_allclose(kept, alone, atol=2e-3)
        assert np.abs(kept - summed).max() > 1e-2
    assert (out / "fmae_generator" / "generator.pt").is_file()
    assert np.load(out / "identity_vectors" / "identities.npy").shape == (4, 512)
    assert np.load(out / "identity_vectors" / "reference" / "centers.npy").shape == (8, 512)
    for shard in SHARDS:
        meta = mats[f"hsface_dataset[{shard}]"].metadata
        assert meta["images"].value == 2 * 5 and meta["reused"].value is False
        assert (out / "hsface" / "shards" / f"shard_{shard}" / "train.lmdb").is_file()
    # both generated datasets carry the trained attribute estimator's estimates
    for merged in (out / "hsface_merged", out / "gaussian_ablation" / "merged"):
        manifest = pd.read_parquet(merged / "manifest.parquet")
        assert manifest[["yaw", "pitch", "age", "quality"]].notna().all().all(), merged
    assert sorted(p.name for p in (out / "dataset_reports").iterdir() if p.is_dir()) == [
        "cache",
        "comparison",
        "gaussian_ablation",
        "hsface",
        "webface_subset",
    ]
    for model in ("teacher", "webface", "hsface"):
        results = json.loads((out / "benchmark_accuracies" / f"{model}.json").read_text())
        assert set(results) == {"lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "average"}
    assert (out / "fr_model" / "webface" / "backbone.pt").is_file()
    assert (out / "fr_model" / "hsface" / "backbone.pt").is_file()


def test_the_last_current_shard_records_the_dataset_in_dvc(chain):
    mats = _materializations(chain["first"])
    first, last = (mats[f"hsface_dataset[{k}]"].metadata for k in SHARDS)
    assert first["shards_current"].value == "1/2" and "dvc_md5" not in first
    assert last["shards_current"].value == "2/2" and last["dvc_md5"].value.endswith(".dir")
    # a shard's data version is its LMDB's hash: each shard has its own
    versions = {mats[f"hsface_dataset[{k}]"].tags["dagster/data_version"] for k in SHARDS}
    assert len(versions) == 2


def test_every_check_runs_with_its_asset_and_passes(chain):
    evaluations = [c for run in chain["first"] for c in run.get_asset_check_evaluations()]
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in evaluations}
    assert set(checks) == CHECKS and len(evaluations) == len(CHECKS) - 1 + len(SHARDS)
    shard_checks = [c for c in evaluations if c.check_name == "hsface_shard_expectations"]
    assert sorted(c.partition for c in shard_checks) == SHARDS
    for check in evaluations:
        assert check.passed, check.metadata
        assert check.metadata["failed_expectations"].value == "none"


def test_dvc_records_every_output_and_status_is_clean(chain):
    repo, out = chain["repo"], chain["out"]
    dvc = make_resources(str(out), str(repo / "params.yaml"), str(repo))["dvc"]
    assert dvc.status() == {}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    mats = _materializations(chain["first"])
    for name in UNPARTITIONED:
        step = STEPS[name]
        assert dvc.recorded_hash(out / step.output) == mats[name].metadata["dvc_md5"].value
        # a pool the chain renders only to train a model has no dvc.yaml stage (dvc.yaml
        # describes the zoo sources): DVC tracks it with a .dvc file
        tracked = Path(f"{out / step.output}.dvc").is_file() or step.stage in lock
        assert tracked, name
    hsface = dvc.recorded_hash(out / "hsface")
    assert hsface == mats["hsface_dataset[00001]"].metadata["dvc_md5"].value
    assert lock["fr_model"]["params"]["params.yaml"]["profile"] == "tiny"
    assert lock["fr_teacher"]["params"]["params.yaml"] == {"sources.teacher": "train"}
    assert str(out / "dvc-remote") in (repo / ".dvc" / "config.local").read_text()
    dvc.push()  # the local directory remote takes the cache offline
    assert any((out / "dvc-remote").rglob("*"))


def test_mlflow_tracks_every_step_and_registers_the_models(chain):
    out, first = chain["out"], chain["first"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vec2face")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) == len(UNPARTITIONED) + len(SHARDS)  # the main job's rerun logged nothing new
    by_asset = {r.info.run_name: r for r in runs}
    assert set(by_asset) == {*UNPARTITIONED, *(f"hsface_dataset[{k}]" for k in SHARDS)}
    assert all(r.info.status == "FINISHED" for r in runs)
    run_ids = {run.run_id for run in first}
    assert {r.data.tags["dagster_run_id"] for r in runs} == run_ids
    teacher = by_asset["fr_teacher"]
    assert (
        teacher.data.params["config.epochs"] == "1"
        and teacher.data.params["config.backbone"] == "tiny"
    )
    assert [m.step for m in client.get_metric_history(teacher.info.run_id, "loss")] == [1]
    assert "val/lfw/accuracy" in teacher.data.metrics
    assert "val/lfw/tar_far_1e-03" in teacher.data.metrics  # renamed for MLflow
    assert {a.path for a in client.list_artifacts(teacher.info.run_id)} >= {
        "backbone.pt",
        "backbone.json",
    }
    generator = by_asset["fmae_generator"]
    assert {a.path for a in client.list_artifacts(generator.info.run_id)} >= {
        "generator.pt",
        "epoch_0000.png",
    }
    fr = by_asset["fr_model"]
    assert {"webface/loss", "hsface/loss"} <= set(fr.data.metrics)

    mats = _materializations(first)
    registered = {m.name: m for m in client.search_registered_models()}
    assert set(registered) == {
        "fr-teacher", "fr-judge", "attribute-estimator", "vec2face-generator", "fr-model"
    }
    (judge_v,) = client.search_model_versions("name='fr-judge'")
    assert judge_v.tags["training_data"] == "judge_pool"
    (teacher_v,) = client.search_model_versions("name='fr-teacher'")
    assert teacher_v.run_id == teacher.info.run_id
    assert teacher_v.tags["training_data"] == "teacher_pool"
    assert teacher_v.tags["training_data_dvc_md5"] == mats["teacher_pool"].metadata["dvc_md5"].value
    assert teacher_v.tags["dagster_run_id"] in run_ids
    (generator_v,) = client.search_model_versions("name='vec2face-generator'")
    assert (
        generator_v.tags["training_data_dvc_md5"]
        == mats["webface_subset"].metadata["dvc_md5"].value
    )
    versions = {v.tags["trained_on"]: v for v in client.search_model_versions("name='fr-model'")}
    assert set(versions) == {"webface", "hsface"}
    assert (
        versions["hsface"].tags["training_data_dvc_md5"]
        == mats["hsface_merged"].metadata["dvc_md5"].value
    )
    averages = {
        name: json.loads((out / "benchmark_accuracies" / f"{name}.json").read_text())["average"][
            "accuracy"
        ]
        for name in versions
    }
    for name, version in versions.items():
        assert float(version.tags["benchmark_average"]) == pytest.approx(averages[name])
        assert version.source.endswith(f"/artifacts/{name}/model")
    best = max(versions, key=lambda n: (averages[n], int(versions[n].version)))
    assert (
        client.get_model_version_by_alias("fr-model", "champion").version == versions[best].version
    )
    # the training data are the runs' dataset inputs, the other inputs plain inputs
    inputs = {
        d.dataset.name: {t.key: t.value for t in d.tags}["mlflow.data.context"]
        for d in client.get_run(fr.info.run_id).inputs.dataset_inputs
    }
    assert inputs == {"webface_subset": "training", "hsface_merged": "training"}
    digest = client.get_run(fr.info.run_id).inputs.dataset_inputs[0].dataset.digest
    assert mats[next(iter(inputs))].metadata["dvc_md5"].value.startswith(digest)


def test_registered_models_load_with_the_pytorch_flavor(chain, monkeypatch):
    import mlflow
    import mlflow.pytorch

    out = chain["out"]
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; monkeypatch restores the
    # variable and set_tracking_uri(None) mlflow's own global. (Restoring get_tracking_uri()'s
    # earlier answer instead exported its default, sqlite:///<cwd>/mlflow.db, to every later
    # test of the worker.)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        champion = mlflow.pytorch.load_model("models:/fr-model@champion")
        teacher = mlflow.pytorch.load_model("models:/fr-teacher/1")
        generator = mlflow.pytorch.load_model("models:/vec2face-generator/1")
        info = mlflow.models.get_model_info("models:/fr-model@champion")
    finally:
        mlflow.set_tracking_uri(None)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert champion.eval()(x).shape == (2, 512)
        trained = load_trained_backbone(out / "fr_teacher")(x)
        assert torch.allclose(teacher.eval()(x), trained, atol=1e-5)
    assert generator.generate(torch.randn(2, 512), seed=0).shape == (2, 3, 112, 112)
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 3, 112, 112]


def test_evaluation_sensor_leaves_the_main_jobs_shards_to_it(chain):
    """The chain's last shard materializations come from the main job's rerun: the sensor
    moves its cursor past them without a request (the main job evaluates them itself)."""
    sensor = make_evaluate_after_shards(SHARDS)
    skipped = sensor.evaluate_tick(dg.build_sensor_context(instance=chain["instance"]))
    assert not skipped.run_requests and "main job" in skipped.skip_message and skipped.cursor
    again = sensor.evaluate_tick(
        dg.build_sensor_context(instance=chain["instance"], cursor=skipped.cursor)
    )
    assert not again.run_requests and "no shard materialized" in again.skip_message
    empty = sensor.evaluate_tick(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral()))
    assert not empty.run_requests and "00000, 00001" in empty.skip_message


def test_main_job_rerun_reuses_every_output(chain):
    second = chain["second"]
    assert second.success
    assert [r.dagster_run.job_name for r in second.runs] == [
        "prepare_generation",
        "generate_hsface_shards",
        "generate_hsface_shards",
        "evaluate_hsface",
    ]
    before, after = _materializations(chain["first"]), _materializations(second.runs)
    assert set(after) == set(before)
    for name, mat in after.items():
        assert mat.metadata["reused"].value is True, name
        assert mat.tags["dagster/data_version"] == before[name].tags["dagster/data_version"], name
    assert all(c.passed for c in second.check_evaluations())
    lines = summary_lines(second, chain["out"], chain["repo"] / "params.yaml", chain["repo"])
    assert any(line.startswith("| teacher |") for line in lines)
    # the per-step time table: every step of the rerun (each shard's too) and the total
    table = lines[lines.index("time per step (wall):") + 1 :]
    table = table[: table.index("")]
    steps = [row.split()[0] for row in table[1:-1]]
    assert set(after) <= set(steps)  # every asset (checks are steps of their own)
    assert table[-1].startswith("total (steps)")
    # every shard row shows a version: the dataset's DVC md5 where its materialization
    # recorded it, else the shard's own hash
    assets = lines[: lines.index("time per step (wall):")]
    shard_rows = [line.split() for line in assets if line.startswith("hsface_dataset[")]
    assert sorted(row[0] for row in shard_rows) == ["hsface_dataset[00000]", "hsface_dataset[00001]"]
    for row in shard_rows:
        mat = after[row[0]]
        if "dvc_md5" in mat.metadata:
            assert row[1] == mat.metadata["dvc_md5"].value
        else:
            assert row[1:3] == ["sha256", mat.tags["dagster/data_version"][:33]]
    assert any(line.startswith("hsface ") and "intra_class_outlier_rate" in line for line in lines)
    assert any("dagster dev -m orchestration.definitions -h 127.0.0.1" in line for line in lines)


def test_changed_params_redo_only_the_affected_step(chain, capsys):
    """A new report seed redoes dataset_reports alone; the command line prints the table."""
    repo, out = chain["repo"], chain["out"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["dataset_reports"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))  # last test: it edits the project
    code = main(["--params", str(repo / "params.yaml"), "--out", str(out), "--repo", str(repo)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "check dataset_reports:hsface_noise_expectations passed" in printed
    assert "| hsface |" in printed
    assert (chain["home"] / "dagster.yaml").is_file()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME, as main() used it
    reports = instance.get_latest_materialization_event(dg.AssetKey("dataset_reports"))
    assert reports.asset_materialization.metadata["reused"].value is False
    for name in ("fr_model", "fmae_generator", "benchmark_accuracies"):
        record = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert record.asset_materialization.metadata["reused"].value is True, name
    dvc = make_resources(str(out), str(repo / "params.yaml"), str(repo))["dvc"]
    assert dvc.status() == {}  # dvc.lock now records the new seed and the new reports
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["dataset_reports"]["params"]["params.yaml"]["dataset_reports"]["seed"] == 1


# ----------------------------------------------------------------------------- zoo sources


@pytest.fixture(scope="module")
def zoo_chain(tmp_path_factory):
    """The micro chain with every off-the-shelf model from the (micro) zoo and the generator
    warm-started from the zoo's for one step."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        repo = make_micro_project(tmp_path_factory.mktemp("zoo_e2e") / "project")
        mp.setenv("VEC2FACE_ZOO", str(repo / ZOO_WEIGHTS))  # the micro zoo
        params = read_params(repo / "params.yaml")
        params["sources"] = {"teacher": "zoo", "judge": "zoo", "attributes": "zoo"}
        params["generator"].update(init="zoo", max_steps=1)
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        out = repo / "outputs" / "tiny"
        runs = materialize_chain(repo, out, dg.DagsterInstance.ephemeral())
        yield {"repo": repo, "out": out, "runs": runs, "params": params}


def test_zoo_sources_load_the_zoo_models_and_warm_start_the_generator(zoo_chain):
    from vec2face import zoo

    runs, out = zoo_chain["runs"], zoo_chain["out"]
    assert all(run.success for run in runs)
    mats = _materializations(runs)
    chain = chain_steps(zoo_chain["params"])
    assert "teacher_pool" not in mats and "judge_pool" not in mats
    assert {n for n in mats if "[" not in n} == set(chain) - {"hsface_dataset"}
    for asset, name in (("fr_teacher", "teacher"), ("fr_judge", "judge"),
                        ("attribute_estimator", "attributes")):
        meta, manifest = mats[asset].metadata, zoo.manifest(name)
        assert meta["zoo_version"].value == manifest["version"]
        for figure, value in manifest["figures"].items():
            assert meta[f"heldout_{figure}"].value == pytest.approx(value)
        assert json.loads((out / asset / "zoo_manifest.json").read_text())["sha256"] == (
            manifest["sha256"]
        )
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_trained_backbone(out / "fr_teacher")(x), zoo.load("teacher")(x))
    _, report = load_generator_checkpoint(out / "fmae_generator" / "generator.pt")
    generator = zoo.manifest("generator")
    assert report.metadata["metadata"]["init"].startswith(f"zoo generator v{generator['version']}")
    assert all(c.passed for run in runs for c in run.get_asset_check_evaluations())

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    registered = {m.name for m in client.search_registered_models()}
    assert registered == {"fr-teacher", "fr-judge", "attribute-estimator", "vec2face-generator",
                          "fr-model"}
    experiment = client.get_experiment_by_name("vec2face")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = mats["fr_teacher"].metadata["mlflow_run"].value
    assert run.startswith(f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/")
    (teacher_v,) = client.search_model_versions("name='fr-teacher'")
    assert run.endswith(teacher_v.run_id)
    assert teacher_v.tags["source"] == "zoo"
    assert teacher_v.tags["zoo.sha256"] == zoo.manifest("teacher")["sha256"]
    assert "training_data" not in teacher_v.tags

    repo = zoo_chain["repo"]
    dvc = make_resources(str(out), str(repo / "params.yaml"), str(repo))["dvc"]
    assert dvc.status() == {}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["fr_teacher"]["params"]["params.yaml"] == {"sources.teacher": "zoo"}
    # the output holds the zoo manifest (sha256): another zoo file, another DVC hash
    assert (out / "fr_teacher" / "zoo_manifest.json").is_file()


def test_a_data_refresh_warm_starts_the_generator_from_the_registry_champion(zoo_chain):
    # runs after the zoo test above: the chain's generator is the champion now
    repo, out = zoo_chain["repo"], zoo_chain["out"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("vec2face-generator", "champion")
    hsface = json.loads((out / "benchmark_accuracies" / "hsface.json").read_text())
    assert float(champion.tags["hsface_fr_average"]) == pytest.approx(
        hsface["average"]["accuracy"]
    )
    before, _ = load_generator_checkpoint(out / "fmae_generator" / "generator.pt")

    params = zoo_chain["params"]
    assets = [*build_assets(params), *build_asset_checks(params)]
    resources = make_resources(str(out), str(repo / "params.yaml"), str(repo))
    result = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets("fmae_generator"),
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={GENERATOR_INIT_TAG: "registry"},
    )
    assert result.success
    meta = result.asset_materializations_for_node("fmae_generator")[0].metadata
    assert meta["reused"].value is False  # another init: another fingerprint
    source = out / ".registry" / "vec2face-generator" / f"v{champion.version}"
    assert sorted(p.name for p in source.iterdir()) == ["discriminator.pt", "generator.pt"]
    tuned, report = load_generator_checkpoint(out / "fmae_generator" / "generator.pt")
    assert report.metadata["metadata"]["init"] == str(source / "generator.pt")
    # what was downloaded is the chain's generator, the one the evaluation promoted
    downloaded = load_generator_checkpoint(source / "generator.pt")[0].state_dict()
    for name, tensor in before.state_dict().items():
        assert torch.equal(downloaded[name], tensor), name
    assert any(not torch.equal(downloaded[n], t) for n, t in tuned.state_dict().items())
    versions = client.search_model_versions("name='vec2face-generator'")
    assert len(versions) == 2  # the refresh registered a new version; the champion stays
    assert client.get_model_version_by_alias("vec2face-generator", "champion").version == (
        champion.version
    )
