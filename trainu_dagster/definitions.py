"""The one Dagster code location: every asset, job, sensor and resource is wired here."""

from dagster import Definitions

from sensors import all_sensors
from trainu_dagster.resources.postgres import PostgresResource

defs = Definitions(
    sensors=all_sensors,
    resources={"database": PostgresResource()},
)
