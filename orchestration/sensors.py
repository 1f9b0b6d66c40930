"""Sensors: the WebFace source changed under DVC -> rebuild what depends on it; and the
chain between the phases (see :mod:`orchestration.jobs`): a successful phase before the
shards requests every shard, and a new set of shards requests the evaluation.

The main job runs its three phases itself; the chain sensors skip the runs it launched
(tagged :data:`~orchestration.jobs.MAIN_JOB_TAG`), so a ``dagster dev`` opened on the same
``DAGSTER_HOME`` during or after it queues no work of its own."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from assets_defs.resources import DvcResource, PipelinePaths
from assets_defs.steps import STEPS
from orchestration.jobs import (
    BEFORE_SHARDS,
    MAIN_JOB_TAG,
    evaluate_hsface,
    generate_hsface_shards,
    rebuild_from_webface_source,
)

SOURCE = STEPS["webface_pool"]
HSFACE_KEY = dg.AssetKey(STEPS["hsface_dataset"].asset)


@dg.sensor(
    job=rebuild_from_webface_source,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def webface_source_changed(
    context: dg.SensorEvaluationContext, paths: PipelinePaths, dvc: DvcResource
) -> dg.SensorResult | dg.SkipReason:
    """Request the downstream chain when the DVC hash recorded for the WebFace source
    (``dvc.lock`` or its ``.dvc`` file) differs from the last one seen, unless Dagster
    itself produced that version (then its downstream run already followed)."""
    current = dvc.recorded_hash(paths.output(SOURCE.output))
    if current is None:
        return dg.SkipReason(f"{paths.output(SOURCE.output)} is not tracked by DVC yet")
    if current == context.cursor:
        return dg.SkipReason(f"source unchanged (DVC md5 {current})")
    record = context.instance.get_latest_data_version_record(dg.AssetKey(SOURCE.asset))
    own = (
        record is not None
        and (record.asset_materialization.tags or {}).get("dagster/data_version") == current
    )
    if own:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"DVC md5 {current} was materialized by Dagster"),
            cursor=current,
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"webface-source-{current}", tags={"vec2face/source_dvc_md5": current}
            )
        ],
        cursor=current,
    )


def make_shards_after_phase(shard_keys: Sequence[str]) -> dg.RunStatusSensorDefinition:
    """After a successful phase before the shards, one run per shard (run keys tie them to
    the phase's run, so a sensor restart never requests them twice)."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="shards_after_phase",
        monitored_jobs=list(BEFORE_SHARDS),
        request_job=generate_hsface_shards,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def shards_after_phase(context: dg.RunStatusSensorContext):
        run_id = context.dagster_run.run_id
        if _by_main_job(context.dagster_run):
            return dg.SkipReason(f"run {run_id} belongs to the main job, which runs the shards")
        return [
            dg.RunRequest(
                run_key=f"{run_id}-shard-{key}",
                partition_key=key,
                tags={"vec2face/after_run": run_id},
            )
            for key in shard_keys
        ]

    return shards_after_phase


def make_evaluate_after_shards(shard_keys: Sequence[str]) -> dg.SensorDefinition:
    """Request the evaluation once every shard is materialized, no shard run is pending,
    and a shard was materialized since the last request (the cursor: its event id)."""

    @dg.sensor(
        job=evaluate_hsface,
        name="evaluate_after_shards",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def evaluate_after_shards(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        done = instance.get_materialized_partitions(HSFACE_KEY)
        missing = [k for k in shard_keys if k not in done]
        if missing:
            return dg.SkipReason(f"shards not materialized yet: {', '.join(missing)}")
        pending = instance.get_run_records(
            dg.RunsFilter(
                job_name=generate_hsface_shards.name,
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ],
            )
        )
        if pending:
            return dg.SkipReason(f"{len(pending)} shard run(s) still pending")
        record = instance.fetch_materializations(HSFACE_KEY, limit=1).records[0]
        latest = record.storage_id
        if context.cursor and int(context.cursor) >= latest:
            return dg.SkipReason("no shard materialized since the last evaluation request")
        if _by_main_job(instance.get_run_by_id(record.run_id)):
            return dg.SensorResult(
                skip_reason=dg.SkipReason("the main job made these shards and evaluates them"),
                cursor=str(latest),
            )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"shards-{latest}")], cursor=str(latest)
        )

    return evaluate_after_shards


def _by_main_job(run: dg.DagsterRun | None) -> bool:
    key, value = MAIN_JOB_TAG
    return run is not None and run.tags.get(key) == value


def make_sensors(shard_keys: Sequence[str]) -> list[dg.SensorDefinition]:
    """Every sensor; the chain sensors need the shards' partition keys."""
    return [
        webface_source_changed,
        make_shards_after_phase(shard_keys),
        make_evaluate_after_shards(shard_keys),
    ]
