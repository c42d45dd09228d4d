"""Dagster sensors: what makes TrainU react without a human pressing a button."""

from sensors.run_failure import record_run_failure

all_sensors = [record_run_failure]
