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
        assert node.code_version == step.code_version
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


def test_dvc_stages_and_asset_graph_name_the_same_steps_and_dependencies():
    stages = stage_graph(PROJECT)
    assert {step_for_stage(s).asset for s in stages} == set(CHAIN)
    assert len(stages) == len(CHAIN)
    graph = defs.resolve_asset_graph()
    for stage, upstream in stages.items():
        asset = dg.AssetKey(step_for_stage(stage).asset)
        parents = {k.to_user_string() for k in graph.get(asset).parent_keys}
        assert parents == {step_for_stage(u).asset for u in upstream}, stage


def test_dvc_stage_outputs_are_the_asset_output_folders():
    from dvc.repo import Repo

    with Repo(str(PROJECT), uninitialized=True) as repo:
        outs = {s.name: [o.def_path for o in s.outs] for s in repo.index.stages if s.cmd}
    for stage, paths in outs.items():
        assert paths == [f"outputs/tiny/{step_for_stage(stage).output}"]


def test_dvc_stages_read_the_params_sections_of_their_steps():
    from dvc.repo import Repo

    with Repo(str(PROJECT), uninitialized=True) as repo:
        params = {
            s.name: {p for dep in s.deps if hasattr(dep, "params") for p in dep.params}
            for s in repo.index.stages
            if s.cmd
        }
    assert params["fr_teacher"] == {"sources.teacher"}
    assert params["fr_judge"] == {"sources.judge"}
    assert params["attribute_estimator"] == {"sources.attributes"}
    assert params["fr_model"] == {"profile", "fr_train"}
    assert params["fmae_generator"] == {"profile", "fr_teacher", "generator"}
    # the generate stages load the teacher from fr_teacher when the hsface settings run AttrOP
    assert params["hsface_dataset"] == {"hsface", "fr_teacher"}
    assert params["gaussian_ablation"] == {
        "identities",
        "hsface",
        "fr_teacher",
        "gaussian_ablation",
    }


def test_dvc_stages_that_load_the_zoo_depend_on_its_files():
    from dvc.repo import Repo

    with Repo(str(PROJECT), uninitialized=True) as repo:
        deps = {s.name: {d.def_path for d in s.deps if not hasattr(d, "params")}
                for s in repo.index.stages if s.cmd}
    for stage, name in (("fr_teacher", "teacher"), ("fr_judge", "judge"),
                        ("attribute_estimator", "attributes"), ("fmae_generator", "generator")):
        files = {f"vec2face/zoo/weights/{name}.safetensors", f"vec2face/zoo/weights/{name}.json"}
        assert files <= deps[stage], stage
        assert all((PROJECT / f).is_file() for f in files)


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
