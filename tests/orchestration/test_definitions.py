"""The Definitions load; jobs, partitions, schedule, sensors and executor are as documented;
dvc.yaml agrees with the asset graph."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import yaml

from assets_defs import build_asset_checks
from assets_defs.generation import SHARD_RETRY
from assets_defs.models import GENERATOR_INIT_TAG
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths, stage_graph
from assets_defs.steps import chain_steps, step_for_stage
from orchestration.definitions import defs, make_definitions
from orchestration.schedules import weekly_regeneration
from tests.orchestration.conftest import MICRO_PARAMS, PROJECT
from vec2face.config import read_params
from vec2face.zoo import ZOO_NAMES

#: the default chain (params.yaml: every off-the-shelf model from the zoo)
CHAIN = chain_steps(read_params(PROJECT / "params.yaml"))


def _selected(job_name: str) -> set[str]:
    return {
        k.to_user_string() for k in defs.resolve_job_def(job_name).asset_layer.selected_asset_keys
    }


def test_definitions_load_with_every_step_resource_and_blocking_check():
    graph = defs.resolve_asset_graph()
    zoo_assets = {f"zoo_{name}" for name in ZOO_NAMES}
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(CHAIN) | zoo_assets
    for name, step in CHAIN.items():
        node = graph.get(dg.AssetKey(name))
        assert node.code_version == step.code_version(read_params(PROJECT / "params.yaml"))
        assert {k.to_user_string() for k in node.parent_keys} == set(step.upstream), name
    checks = {k.name: k.asset_key.to_user_string() for k in graph.asset_check_keys}
    assert checks == {  # every asset of the chain has one (the zoo's pools are not rendered)
        "webface_pool_expectations": "webface_pool",
        "pca_pool_expectations": "pca_pool",
        "benchmark_sets_expectations": "benchmark_sets",
        "webface_subset_expectations": "webface_subset",
        "fr_teacher_expectations": "fr_teacher",
        "fr_judge_expectations": "fr_judge",
        "attribute_estimator_expectations": "attribute_estimator",
        "fmae_generator_expectations": "fmae_generator",
        "identity_vectors_expectations": "identity_vectors",
        "hsface_shard_expectations": "hsface_dataset",
        "hsface_manifest_expectations": "hsface_merged",
        "gaussian_ablation_expectations": "gaussian_ablation",
        "hsface_noise_expectations": "dataset_reports",
        "fr_model_expectations": "fr_model",
        "benchmark_accuracies_expectations": "benchmark_accuracies",
    }
    assert set(checks.values()) == set(CHAIN)
    specs = [
        spec
        for checks_def in build_asset_checks(read_params(PROJECT / "params.yaml"))
        for spec in checks_def.check_specs
    ]
    assert len(specs) == len(checks) and all(spec.blocking for spec in specs)
    # the shard check runs per partition, on the shard of its run
    shard_check = graph.get(
        dg.AssetCheckKey(dg.AssetKey("hsface_dataset"), "hsface_shard_expectations")
    )
    assert shard_check.partitions_def == graph.get(dg.AssetKey("hsface_dataset")).partitions_def
    assert isinstance(defs.resources["paths"], PipelinePaths)
    assert isinstance(defs.resources["mlflow"], MlflowResource)
    assert isinstance(defs.resources["dvc"], DvcResource)
    assert defs.executor is dg.multiprocess_executor


def test_hsface_is_partitioned_by_shard_from_the_params_with_a_retry_policy():
    node = defs.resolve_asset_graph().get(dg.AssetKey("hsface_dataset"))
    # params.yaml: 500 identities, 100 a shard
    assert node.partitions_def.get_partition_keys() == ["00000", "00001", "00002", "00003", "00004"]
    assert defs.resolve_assets_def("hsface_dataset").op.retry_policy == SHARD_RETRY
    assert SHARD_RETRY.max_retries >= 1
    micro = make_definitions("outputs/micro", str(MICRO_PARAMS))
    micro_node = micro.resolve_asset_graph().get(dg.AssetKey("hsface_dataset"))
    assert micro_node.partitions_def.get_partition_keys() == ["00000", "00001"]
    others = [
        k
        for k in defs.resolve_asset_graph().get_all_asset_keys()
        if k.to_user_string() != "hsface_dataset"
    ]
    assert all(defs.resolve_asset_graph().get(k).partitions_def is None for k in others)


def test_jobs_split_the_chain_at_the_shards():
    before = _selected("prepare_generation")
    shards = _selected("generate_hsface_shards")
    after = _selected("evaluate_hsface")
    assert shards == {"hsface_dataset"}
    assert after == {"hsface_merged", "dataset_reports", "fr_model", "benchmark_accuracies"}
    assert before | shards | after == set(CHAIN) and not before & after
    assert defs.resolve_job_def("generate_hsface_shards").partitions_def is not None
    assert _selected("regenerate_identities") == {"identity_vectors"}
    assert _selected("rebuild_from_webface_source") == {
        "webface_subset",
        "fmae_generator",
        "gaussian_ablation",
    }


def test_committed_dvc_yaml_is_the_one_steps_generate():
    from assets_defs.dvc_yaml import main, render

    assert (PROJECT / "dvc.yaml").read_text() == render(read_params(PROJECT / "params.yaml"))
    assert main(["--check"]) == 0


def test_dvc_yaml_check_fails_on_a_hand_edit_and_the_generator_rewrites_it(tmp_path):
    from assets_defs.dvc_yaml import main

    edited = tmp_path / "dvc.yaml"
    edited.write_text((PROJECT / "dvc.yaml").read_text().replace("--quiet", "", 1))
    assert main(["--check", "--out", str(edited)]) == 1
    assert main(["--out", str(edited)]) == 0
    assert edited.read_text() == (PROJECT / "dvc.yaml").read_text()


def test_dvc_yaml_refuses_params_it_cannot_describe():
    import pytest

    from assets_defs.dvc_yaml import render
    from vec2face.errors import ConfigError

    params = read_params(PROJECT / "params.yaml")
    with pytest.raises(ConfigError, match=r"sources \['teacher'\] are 'train'"):
        render({**params, "sources": {"teacher": "train"}})
    with pytest.raises(ConfigError, match="no 'gaussian_ablation' .*'gaussian_ablation'"):
        render({k: v for k, v in params.items() if k != "gaussian_ablation"})


def _stages() -> dict:
    from dvc.repo import Repo

    with Repo(str(PROJECT), uninitialized=True) as repo:
        return {s.name: s for s in repo.index.stages if s.cmd}


def test_dvc_stages_and_asset_graph_name_the_same_steps_and_dependencies():
    stages = stage_graph(PROJECT)
    assert {step_for_stage(s).asset for s in stages} == set(CHAIN)
    assert len(stages) == len(CHAIN)
    graph = defs.resolve_asset_graph()
    for stage, upstream in stages.items():
        asset = dg.AssetKey(step_for_stage(stage).asset)
        parents = {k.to_user_string() for k in graph.get(asset).parent_keys}
        assert parents == {step_for_stage(u).asset for u in upstream}, stage


def test_dvc_stages_write_under_the_root_param_what_the_assets_write():
    root = read_params(PROJECT / "params.yaml")["root"]
    assert "outputs/tiny" not in (PROJECT / "dvc.yaml").read_text()  # only through ${root}
    for name, stage in _stages().items():
        assert [o.def_path for o in stage.outs] == [f"{root}/{step_for_stage(name).output}"]


def test_dvc_stages_read_the_params_keys_and_code_of_their_steps():
    for name, stage in _stages().items():
        step = step_for_stage(name)
        params = {p for dep in stage.deps if hasattr(dep, "params") for p in dep.params}
        files = {d.def_path for d in stage.deps if not hasattr(d, "params")}
        assert params == set(step.params), name
        assert set(step.code) <= files, name
    stages = _stages()
    code = lambda n: {d.def_path for d in stages[n].deps if not hasattr(d, "params")}  # noqa: E731
    # the generator's params keys and the presets its profile selects
    assert {"profile", "fr_teacher", "generator"} == set(CHAIN["fmae_generator"].params)
    assert "vec2face/presets" in code("fmae_generator") and "vec2face/generator" in code(
        "fmae_generator"
    )
    # the models loaded from the zoo depend on the zoo (its weights and manifests)
    for name in ("fr_teacher", "fr_judge", "attribute_estimator", "fmae_generator"):
        assert "vec2face/zoo" in code(name), name
    assert all((PROJECT / "vec2face/zoo/weights" / f"{n}.safetensors").is_file() for n in ZOO_NAMES)
    # code a step does not import is not its dependency
    assert "vec2face/generator" not in code("webface_subset")
    assert "vec2face/reports" not in code("fr_model")


def test_weekly_schedule_is_off_by_default_and_requests_the_first_phase():
    assert weekly_regeneration.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly_regeneration.cron_schedule == "0 3 * * 1"
    assert weekly_regeneration.job_name == "prepare_generation"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)
    )
    requests = weekly_regeneration.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].job_name in (None, "prepare_generation")
    # a data refresh warm-starts the generator from the registry's champion
    assert requests[0].tags[GENERATOR_INIT_TAG] == "registry"
    assert defs.resolve_job_def("rebuild_from_webface_source").tags[GENERATOR_INIT_TAG] == (
        "registry"
    )
    # the first build (the main job's phase) takes params' generator.init
    assert GENERATOR_INIT_TAG not in defs.resolve_job_def("prepare_generation").tags


def test_chain_sensors_are_on_and_the_source_sensor_off_by_default():
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"webface_source_changed", "shards_after_phase", "evaluate_after_shards"}
    assert sensors["webface_source_changed"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["shards_after_phase"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["evaluate_after_shards"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["evaluate_after_shards"].job_name == "evaluate_hsface"


def test_sources_decide_whether_the_chain_trains_a_model_and_renders_its_pool(tmp_path):
    zoo_graph = CHAIN
    assert "teacher_pool" not in zoo_graph and "judge_pool" not in zoo_graph
    assert zoo_graph["fr_teacher"].upstream == ()
    assert zoo_graph["attribute_estimator"].upstream == ()
    params = read_params(PROJECT / "params.yaml")
    params["sources"] = {"teacher": "train", "judge": "zoo", "attributes": "train"}
    trained = chain_steps(params)
    assert trained["fr_teacher"].upstream == ("teacher_pool", "benchmark_sets")
    assert trained["attribute_estimator"].upstream == ("judge_pool",)
    assert trained["fr_judge"].upstream == ()
    assert {"teacher_pool", "judge_pool"} <= set(trained)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    graph = make_definitions(str(tmp_path / "out"), str(tmp_path / "params.yaml"))
    graph = graph.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("fr_teacher")).parent_keys}
    assert parents == {"teacher_pool", "benchmark_sets"}
