"""The Definitions load; jobs, schedule and executor are as documented; dvc.yaml agrees."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets_defs import all_asset_checks
from assets_defs.steps import STEPS, step_for_stage
from orchestration.definitions import defs
from orchestration.resources import DvcResource, MlflowResource, PipelinePaths, stage_graph
from orchestration.schedules import weekly_regeneration
from tests.orchestration.conftest import PROJECT


def test_definitions_load_with_every_step_resource_and_blocking_check():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(STEPS)
    for name, step in STEPS.items():
        assert graph.get(dg.AssetKey(name)).code_version == step.code_version
    checks = {k.name: k for k in graph.asset_check_keys}
    assert set(checks) == {"webface_subset_expectations", "benchmark_sets_expectations"}
    specs = [spec for checks_def in all_asset_checks for spec in checks_def.check_specs]
    assert specs and all(spec.blocking for spec in specs)
    assert isinstance(defs.resources["paths"], PipelinePaths)
    assert isinstance(defs.resources["mlflow"], MlflowResource)
    assert isinstance(defs.resources["dvc"], DvcResource)
    assert defs.executor is dg.multiprocess_executor
    job = defs.resolve_job_def("materialize_all")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == set(STEPS)
    rebuild = defs.resolve_job_def("rebuild_from_webface_source")
    assert {k.to_user_string() for k in rebuild.asset_layer.selected_asset_keys} == {"webface_subset"}


def test_dvc_stages_and_asset_graph_name_the_same_steps_and_dependencies():
    stages = stage_graph(PROJECT)
    assert {step_for_stage(s).asset for s in stages} == set(STEPS)
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


def test_weekly_schedule_is_off_by_default_and_requests_the_whole_chain():
    assert weekly_regeneration.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly_regeneration.cron_schedule == "0 3 * * 1"
    assert weekly_regeneration.job_name == "materialize_all"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC))
    requests = weekly_regeneration.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].job_name in (None, "materialize_all")
