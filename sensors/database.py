"""Sensors when TrainU's database is not running.

Dagster's own tools load the code location without the stack (`dagster dev -w
workspace.yaml` from a fresh clone): there the embedded database is not started, and a
sensor that reads it would log the same traceback every tick. It skips instead, saying
why and what starts it. A configured server that cannot be reached is an outage, not a
setup step: that still fails the tick, loudly.
"""

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from dagster import SkipReason

from trainu_dagster.db.server import DatabaseNotRunning
from trainu_dagster.resources.postgres import PostgresResource

Context = TypeVar("Context")
Result = TypeVar("Result")


def skip_without_database(
    evaluate: Callable[[Context, PostgresResource], Result],
) -> Callable[[Context, PostgresResource], Result | SkipReason]:
    """`evaluate` (a sensor function) skips its tick while the embedded database is down."""

    @wraps(evaluate)
    def guarded(context: Context, database: PostgresResource) -> Result | SkipReason:
        try:
            return evaluate(context, database)
        except DatabaseNotRunning as down:
            return SkipReason(f"TrainU's database is not running ({down}); `make up` runs it")

    return guarded
