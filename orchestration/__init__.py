"""Dagster wiring: Definitions, resources, jobs, schedules, sensors, instance settings."""
