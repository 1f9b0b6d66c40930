"""Schedules: periodic regeneration, off until an operator turns it on."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import materialize_all

#: Mondays 03:00 UTC; unchanged steps are reused (data versions), so a quiet week costs
#: only the checks.
weekly_regeneration = dg.ScheduleDefinition(
    name="weekly_regeneration",
    job=materialize_all,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Regenerate the pipeline weekly (stopped by default; start it in the UI).",
)

all_schedules = [weekly_regeneration]
