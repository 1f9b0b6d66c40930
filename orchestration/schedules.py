"""Schedules: periodic regeneration, off until an operator turns it on."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import REGISTRY_WARM_START, prepare_generation

#: Mondays 03:00 UTC: the first phase; the chain sensors request the shards and the
#: evaluation after it. The generator warm-starts from the registry's champion (the
#: evaluation moves that alias only to a generator whose HSFace trains a better FR model),
#: so the generator is fine-tuned again only after a promotion or a data change; every
#: other unchanged step is reused (data versions) and costs only its checks.
weekly_regeneration = dg.ScheduleDefinition(
    name="weekly_regeneration",
    job=prepare_generation,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    tags=dict([REGISTRY_WARM_START]),
    description="Regenerate the pipeline weekly, the generator warm-started from the "
    "registry's vec2face-generator champion (stopped by default; start it in the UI).",
)

all_schedules = [weekly_regeneration]
