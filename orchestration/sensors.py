"""Sensors: the WebFace source changed under DVC -> rebuild what depends on it."""

import dagster as dg

from assets_defs.steps import STEPS
from orchestration.jobs import rebuild_from_webface_source
from orchestration.resources import DvcResource, PipelinePaths

SOURCE = STEPS["webface_pool"]


@dg.sensor(job=rebuild_from_webface_source, minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.STOPPED)
def webface_source_changed(context: dg.SensorEvaluationContext, paths: PipelinePaths,
                           dvc: DvcResource) -> dg.SensorResult | dg.SkipReason:
    """Request the downstream chain when the DVC hash recorded for the WebFace source
    (``dvc.lock`` or its ``.dvc`` file) differs from the last one seen, unless Dagster
    itself produced that version (then its downstream run already followed)."""
    current = dvc.recorded_hash(paths.output(SOURCE.output))
    if current is None:
        return dg.SkipReason(f"{paths.output(SOURCE.output)} is not tracked by DVC yet")
    if current == context.cursor:
        return dg.SkipReason(f"source unchanged (DVC md5 {current})")
    record = context.instance.get_latest_data_version_record(dg.AssetKey(SOURCE.asset))
    own = record is not None and (record.asset_materialization.tags or {}).get("dagster/data_version") == current
    if own:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"DVC md5 {current} was materialized by Dagster"),
                               cursor=current)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"webface-source-{current}",
                                    tags={"vec2face/source_dvc_md5": current})],
        cursor=current,
    )


all_sensors = [webface_source_changed]
