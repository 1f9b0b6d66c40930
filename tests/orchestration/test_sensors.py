"""Sensors: the source-changed sensor requests the downstream chain only for versions Dagster
did not make; a finished phase before the shards requests one run per shard."""

from __future__ import annotations

import dagster as dg

from assets_defs import build_assets
from orchestration.definitions import make_resources
from orchestration.jobs import MAIN_JOB_TAG
from orchestration.sensors import (
    make_evaluate_after_shards,
    make_shards_after_phase,
    webface_source_changed,
)
from vec2face.config import read_params


def _evaluate(instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return webface_source_changed.evaluate_tick(context)


def test_sensor_follows_the_dvc_hash_of_the_webface_source(micro_project):
    out = micro_project / "outputs" / "tiny"
    resources = make_resources(str(out), str(micro_project / "params.yaml"), str(micro_project))
    instance = dg.DagsterInstance.ephemeral()

    untracked = _evaluate(instance, resources)
    assert not untracked.run_requests and "not tracked" in untracked.skip_message

    pool = [
        a
        for a in build_assets(read_params(micro_project / "params.yaml"))
        if a.key == dg.AssetKey("webface_pool")
    ]
    assert dg.materialize(pool, resources=resources, instance=instance).success
    own = _evaluate(instance, resources)
    recorded = resources["dvc"].recorded_hash(out / "world" / "webface")
    assert not own.run_requests and own.cursor == recorded  # Dagster made this version

    assert not _evaluate(instance, resources, cursor=recorded).run_requests

    # a new version of the source arrives outside Dagster (e.g. `dvc add` of new data)
    (out / "world" / "webface" / "00000" / "999.jpg").write_bytes(
        (out / "world" / "webface" / "00000" / "000.jpg").read_bytes()
    )
    changed = resources["dvc"].record(out / "world" / "webface")
    result = _evaluate(instance, resources, cursor=recorded)
    assert changed != recorded and result.cursor == changed
    assert [r.run_key for r in result.run_requests] == [f"webface-source-{changed}"]
    assert result.run_requests[0].tags["vec2face/source_dvc_md5"] == changed


def _finished_phase(instance: dg.DagsterInstance, tags: dict[str, str] | None = None):
    """A successful run of a job named like the first phase: (its result, the sensor context
    that a run-status sensor gets for it)."""

    @dg.op
    def done() -> None:
        """Stands for the phase's steps."""

    @dg.job(name="prepare_generation")
    def phase():
        done()

    result = phase.execute_in_process(instance=instance, tags=tags)
    (success,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS]
    context = dg.build_run_status_sensor_context(
        sensor_name="shards_after_phase",
        dagster_event=success,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    return result, context


def test_a_successful_phase_requests_every_shard_once():
    result, context = _finished_phase(dg.DagsterInstance.ephemeral())
    requests = make_shards_after_phase(["00000", "00001"])(context)
    assert [r.partition_key for r in requests] == ["00000", "00001"]
    assert [r.run_key for r in requests] == [
        f"{result.run_id}-shard-00000",
        f"{result.run_id}-shard-00001",
    ]
    assert all(r.tags["vec2face/after_run"] == result.run_id for r in requests)


def test_the_chain_sensors_leave_the_main_jobs_runs_to_it():
    """A ``dagster dev`` opened on the main job's DAGSTER_HOME queues nothing of its own."""

    instance = dg.DagsterInstance.ephemeral()
    _, context = _finished_phase(instance, dict([MAIN_JOB_TAG]))
    skipped = make_shards_after_phase(["00000"])(context)
    assert isinstance(skipped, dg.SkipReason) and "main job" in skipped.skip_message

    # shards materialized by main-job runs: the evaluation sensor skips them and moves its
    # cursor on; a shard materialized by another run afterwards is evaluated
    @dg.asset(name="hsface_dataset", partitions_def=dg.StaticPartitionsDefinition(["00000"]))
    def shard() -> None:
        """Stands for a shard."""

    dg.materialize([shard], partition_key="00000", instance=instance, tags=dict([MAIN_JOB_TAG]))
    sensor = make_evaluate_after_shards(["00000"])
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not first.run_requests and "main job" in first.skip_message and first.cursor
    dg.materialize([shard], partition_key="00000", instance=instance)
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert len(second.run_requests) == 1
