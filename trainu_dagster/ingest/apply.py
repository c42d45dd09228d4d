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
from functools import cache
from itertools import groupby
from typing import Any, Literal
from uuid import UUID

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
        # Runs of changes that share one statement go in one pipelined batch, in order.
        for (entity, columns), run in groupby(changes, key=_statement_key):
            rows = [_row(c, columns, source, webhook_event_id, correlation_id) for c in run]
            cur.executemany(_upsert(entity, columns), rows)
            applied += cur.rowcount
            total += len(rows)
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
) -> list[Any]:
    deleted_at = change.source_updated_at if change.deleted else None
    return [
        change.location_id,
        change.entity_id,
        *(change.columns[c] for c in columns),
        change.source_updated_at,
        deleted_at,
        Jsonb(dict(change.payload)),
        source,
        webhook_event_id,
        correlation_id,
    ]


@cache
def _upsert(entity: Entity, columns: tuple[str, ...]) -> sql.Composed:
    """Only the columns a change carries are written, so a partial change (a workflow
    webhook's few contact fields) never blanks the rest of the row. Order-independence holds
    for full snapshots, which marketplace events and pulls are."""
    table, key, _ = TABLES[entity]
    names = ("location_id", key, *columns, *LANDING)
    updates = [*columns, *LANDING]
    newer = sql.SQL(
        "(excluded.source_updated_at, excluded.deleted_at IS NOT NULL, md5(excluded.payload::text))"
        " > (t.source_updated_at, t.deleted_at IS NOT NULL, md5(t.payload::text))"
    )
    return sql.SQL(
        "INSERT INTO {table} AS t ({names}) VALUES ({values}) "
        "ON CONFLICT (location_id, {key}) DO UPDATE SET {sets}, landed_at = now() "
        "WHERE {newer}"
    ).format(
        table=sql.Identifier("raw", table),
        names=sql.SQL(", ").join(map(sql.Identifier, names)),
        values=sql.SQL(", ").join([sql.Placeholder()] * len(names)),
        key=sql.Identifier(key),
        sets=sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in updates
        ),
        newer=newer,
    )
