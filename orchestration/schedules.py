"""Schedules: periodic regeneration, off until an operator turns it on."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import prepare_generation

#: Mondays 03:00 UTC: the first phase; the chain sensors request the shards and the
#: evaluation after it. Unchanged steps are reused (data versions), so a quiet week costs
#: only the checks.
weekly_regeneration = dg.ScheduleDefinition(
    name="weekly_regeneration",
    job=prepare_generation,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Regenerate the pipeline weekly (stopped by default; start it in the UI).",
)

all_schedules = [weekly_regeneration]
