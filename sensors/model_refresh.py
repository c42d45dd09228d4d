"""Ingested raw tables → the dbt models below them, via their automation conditions."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

# Evaluates the conditions set in trainu_dagster/assets/dbt.py; on by default.
refresh_models_after_ingest = AutomationConditionSensorDefinition(
    "refresh_models_after_ingest",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
