"""Dagster sensors: what makes TrainU react without a human pressing a button."""

from sensors.dlq_retry import dlq_retry_sensor
from sensors.model_refresh import refresh_models_after_ingest
from sensors.outbox import outbox_sensor
from sensors.run_failure import record_run_failure
from sensors.studio_backfill import studio_backfill_sensor
from sensors.webhook_events import webhook_events_sensor

all_sensors = [
    webhook_events_sensor,
    studio_backfill_sensor,
    dlq_retry_sensor,
    record_run_failure,
    refresh_models_after_ingest,
    outbox_sensor,
]
