"""The one path from parsed GHL changes into the raw tables, shared by webhooks and pulls.

Deliveries are at-least-once and unordered, so every write is an upsert that only wins
when it is newer than the stored row. "Newer" compares (source time, deleted, payload
hash): the last two break ties between different states stamped with the same time the
same way whatever order they arrive in, so replaying any shuffle of a stream ends in one
state. A delete is a tombstone (`deleted_at`), and a newer update brings the row back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import groupby
from typing import Any, Literal
from uuid import UUID

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.webhook_payloads import Entity, EntityChange, OptOut

# entity -> (table in schema raw, its key column, the typed columns a change may set)
TABLES: dict[Entity, tuple[str, str, frozenset[str]]] = {
    "contact": (
        "ghl_contacts",
        "contact_id",
        frozenset(
            {
                "first_name",
                "last_name",
                "email",
                "phone",
                "timezone",
                "assigned_user_id",
                "dnd",
                "tags",
                "date_added",
            }
        ),
    ),
    "appointment": (
        "ghl_appointments",
        "appointment_id",
        frozenset(
            {
                "calendar_id",
                "contact_id",
                "assigned_user_id",
                "status",
                "title",
                "start_time",
                "end_time",
                "date_added",
            }
        ),
    ),
    "message": (
        "ghl_messages",
        "message_id",
        frozenset(
            {"conversation_id", "contact_id", "direction", "message_type", "status", "date_added"}
        ),
    ),
    "opportunity": (
        "ghl_opportunities",
        "opportunity_id",
        frozenset(
            {
                "contact_id",
                "pipeline_id",
                "pipeline_stage_id",
                "status",
                "monetary_value",
                "assigned_to",
            }
        ),
    ),
    "note": ("ghl_notes", "note_id", frozenset({"contact_id", "date_added"})),
    "task": (
        "ghl_tasks",
        "task_id",
        frozenset({"contact_id", "assigned_to", "title", "due_date", "completed"}),
    ),
}
LANDING = (
    "source_updated_at",
    "deleted_at",
    "payload",
    "source",
    "webhook_event_id",
    "correlation_id",
)

LOG_START_TIMES = """
INSERT INTO raw.ghl_appointment_start_times (location_id, appointment_id, start_time)
SELECT DISTINCT location_id, appointment_id, start_time
FROM jsonb_populate_recordset(NULL::raw.ghl_appointments, %s)
WHERE start_time IS NOT NULL
ON CONFLICT DO NOTHING
"""

RECORD_OPT_OUT = """
INSERT INTO raw.ghl_opt_outs (location_id, contact_id, reason, channel, occurred_at,
                              webhook_event_id, correlation_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (location_id, contact_id, reason, channel, occurred_at) DO NOTHING
"""


@dataclass(frozen=True)
class ApplyResult:
    applied: int
    stale: int


def apply_changes(
    conn: psycopg.Connection,
    changes: Iterable[EntityChange],
    *,
    source: Literal["webhook", "pull"],
    webhook_event_id: int | None = None,
    correlation_id: UUID | None = None,
) -> ApplyResult:
    """Upsert each change with last-write-wins; the caller owns the transaction."""
    applied = total = 0
    with conn.cursor() as cur:
        # Each run of changes that share one statement is one set-based upsert, in order.
        for (entity, columns), run in groupby(changes, key=_statement_key):
            rows = [_row(c, columns, source, webhook_event_id, correlation_id) for c in run]
            batch = Jsonb(rows, dumps=_dumps)
            cur.execute(_upsert(entity, columns), (batch,))
            applied += cur.rowcount
            total += len(rows)
            if entity == "appointment" and "start_time" in columns:
                cur.execute(LOG_START_TIMES, (batch,))  # older versions too: moves are facts
    return ApplyResult(applied=applied, stale=total - applied)


def record_opt_outs(
    conn: psycopg.Connection,
    opt_outs: Iterable[OptOut],
    *,
    webhook_event_id: int | None = None,
    correlation_id: UUID | None = None,
) -> int:
    """Record opt-outs not seen before; returns how many were new. Replays add nothing."""
    rows = [
        (
            o.location_id,
            o.contact_id,
            o.reason,
            o.channel,
            o.occurred_at,
            webhook_event_id,
            correlation_id,
        )
        for o in opt_outs
    ]
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(RECORD_OPT_OUT, rows)
        return cur.rowcount


def _statement_key(change: EntityChange) -> tuple[Entity, tuple[str, ...]]:
    columns = tuple(sorted(change.columns))
    unknown = set(columns) - TABLES[change.entity][2]
    if unknown:
        raise ValueError(f"{change.entity} change sets unknown columns {sorted(unknown)}")
    return change.entity, columns


def _row(
    change: EntityChange,
    columns: Sequence[str],
    source: str,
    webhook_event_id: int | None,
    correlation_id: UUID | None,
) -> dict[str, Any]:
    _, key, _ = TABLES[change.entity]
    return {
        "location_id": change.location_id,
        key: change.entity_id,
        **{c: change.columns[c] for c in columns},
        "source_updated_at": change.source_updated_at,
        "deleted_at": change.source_updated_at if change.deleted else None,
        "payload": change.payload,
        "source": source,
        "webhook_event_id": webhook_event_id,
        "correlation_id": correlation_id,
    }


def _dumps(rows: Any) -> bytes:
    """orjson writes datetimes and UUIDs as Postgres reads them; amounts stay exact."""
    return orjson.dumps(rows, default=_exact_decimal)


def _exact_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a raw row")


@cache
def _upsert(entity: Entity, columns: tuple[str, ...]) -> sql.Composed:
    """One statement per batch: rows typed by the table's own row type, the newest of any
    duplicates kept (one statement may not update a row twice), then last-write-wins
    against the stored row. Only the columns a change carries are written, so a partial
    change (a workflow webhook's few contact fields) never blanks the rest of the row.
    Order-independence holds for full snapshots, which marketplace events and pulls are."""
    table, key, _ = TABLES[entity]
    names = sql.SQL(", ").join(map(sql.Identifier, ("location_id", key, *columns, *LANDING)))
    return sql.SQL(
        "INSERT INTO {table} AS t ({names}) "
        "SELECT DISTINCT ON (r.location_id, r.{key}) {names} "
        "FROM jsonb_populate_recordset(NULL::{table}, %s) AS r "
        "ORDER BY r.location_id, r.{key}, {newest_first} "
        "ON CONFLICT (location_id, {key}) DO UPDATE SET {sets}, landed_at = now() "
        "WHERE ({excluded}) > ({stored})"
    ).format(
        table=sql.Identifier("raw", table),
        names=names,
        key=sql.Identifier(key),
        newest_first=sql.SQL(", ".join(f"{term} DESC" for term in _newness("r"))),
        sets=sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in (*columns, *LANDING)
        ),
        excluded=sql.SQL(", ".join(_newness("excluded"))),
        stored=sql.SQL(", ".join(_newness("t"))),
    )


def _newness(row: str) -> list[str]:
    """What "newer" compares, for the row named `row`."""
    return [
        f"{row}.source_updated_at",
        f"{row}.deleted_at IS NOT NULL",
        f"md5({row}.payload::text)",
    ]
