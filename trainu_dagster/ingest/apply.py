"""The one path from parsed GHL changes into the raw tables, shared by webhooks and pulls.

Deliveries are at-least-once, unordered and often partial, so every write merges field by
field: each typed column keeps the value of the newest delivery that carried it, and
`field_times` records how new that is. Ties between different values stamped with one time
are broken by a hash of the value, the same way whatever order they arrive in, so replaying
any shuffle of a stream ends in one state. An undated delivery (a workflow body) only fills
a field nobody has set yet; the scheduled pulls reconcile it. A delete is a tombstone
(`deleted_at`) while it is the newest thing known, and a newer update brings the row back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal
from uuid import UUID

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.payloads import Entity, EntityChange, OptOut

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
    "field_times",
    "source_updated_at",
    "deleted_at",
    "payload",
    "source",
    "webhook_event_id",
    "correlation_id",
)
PROVENANCE = ("source", "webhook_event_id", "correlation_id")

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


@dataclass(frozen=True, slots=True)
class Origin:
    """The delivery a change came from (nothing, for a pull): kept on the rows it changes."""

    webhook_event_id: int | None = None
    correlation_id: UUID | None = None


def apply_changes(
    conn: psycopg.Connection,
    changes: Iterable[EntityChange],
    *,
    source: Literal["webhook", "pull"],
    webhook_event_id: int | None = None,
    correlation_id: UUID | None = None,
) -> ApplyResult:
    """Merge changes that share one origin (a delivery, a pulled page)."""
    origin = Origin(webhook_event_id, correlation_id)
    return apply_delivered(conn, ((change, origin) for change in changes), source=source)


def apply_delivered(
    conn: psycopg.Connection,
    delivered: Iterable[tuple[EntityChange, Origin]],
    *,
    source: Literal["webhook", "pull"],
) -> ApplyResult:
    """Merge each change into its row; the caller owns the transaction.

    Changes that carry the same columns share one set-based statement. A statement may not
    touch a row twice, so several changes to one record go in successive rounds, merged one
    after the other exactly as separate deliveries would be.
    """
    groups: dict[tuple[Entity, tuple[str, ...]], list[tuple[EntityChange, Origin]]]
    groups = defaultdict(list)
    for change, origin in delivered:
        groups[_statement_key(change)].append((change, origin))
    applied = total = 0
    with conn.cursor() as cur:
        for (entity, columns), group in groups.items():
            for round_ in _rounds(group):
                rows = [_row(change, columns, source, origin) for change, origin in round_]
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
    origin = Origin(webhook_event_id, correlation_id)
    return record_delivered_opt_outs(conn, ((opt_out, origin) for opt_out in opt_outs))


def record_delivered_opt_outs(
    conn: psycopg.Connection, delivered: Iterable[tuple[OptOut, Origin]]
) -> int:
    """Record opt-outs not seen before; returns how many were new. Replays add nothing."""
    rows = [
        (
            o.location_id,
            o.contact_id,
            o.reason,
            o.channel,
            o.occurred_at,
            origin.webhook_event_id,
            origin.correlation_id,
        )
        for o, origin in delivered
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


def _rounds(
    group: list[tuple[EntityChange, Origin]],
) -> list[list[tuple[EntityChange, Origin]]]:
    """The n-th change to each record goes in round n."""
    rounds: list[list[tuple[EntityChange, Origin]]] = []
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for item in group:
        record = (item[0].location_id, item[0].entity_id)
        n = seen[record]
        seen[record] += 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    return rounds


def _row(
    change: EntityChange, columns: Sequence[str], source: str, origin: Origin
) -> dict[str, Any]:
    _, key, _ = TABLES[change.entity]
    at = change.source_updated_at
    return {
        "location_id": change.location_id,
        key: change.entity_id,
        **{c: change.columns[c] for c in columns},
        "field_times": {c: at for c in columns},
        "source_updated_at": at,
        "deleted_at": at if change.deleted else None,
        "payload": change.payload,
        "source": source,
        "webhook_event_id": origin.webhook_event_id,
        "correlation_id": origin.correlation_id,
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
    """One statement per round: rows typed by the table's own row type, each merged into
    the stored row field by field (`_wins`). The row is rewritten only when something in it
    changes, so a redelivery is counted stale and `landed_at` keeps meaning "changed"."""
    table, key, _ = TABLES[entity]
    names = sql.SQL(", ").join(map(sql.Identifier, ("location_id", key, *columns, *LANDING)))
    wins = {c: _wins(c) for c in columns}
    merged = [
        sql.SQL("{0} = CASE WHEN {1} THEN excluded.{0} ELSE t.{0} END").format(
            sql.Identifier(c), wins[c]
        )
        for c in columns
    ]
    times = sql.SQL(", ").join(
        sql.SQL(
            "{0}, CASE WHEN {1} THEN excluded.field_times -> {0} ELSE t.field_times -> {0} END"
        ).format(sql.Literal(c), wins[c])
        for c in columns
    )
    provenance = [sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in PROVENANCE]
    changed = sql.SQL(" OR ").join(
        [*wins.values(), sql.SQL("t.deleted_at IS DISTINCT FROM ({})").format(DELETED_AT), NEWER]
    )
    return sql.SQL(
        "INSERT INTO {table} AS t ({names}) SELECT {names} "
        "FROM jsonb_populate_recordset(NULL::{table}, %s) "
        "ON CONFLICT (location_id, {key}) DO UPDATE SET {sets} WHERE {changed}"
    ).format(
        table=sql.Identifier("raw", table),
        names=names,
        key=sql.Identifier(key),
        sets=sql.SQL(", ").join(
            [
                *merged,
                sql.SQL("field_times = t.field_times || jsonb_build_object({})").format(times)
                if columns
                else sql.SQL("field_times = t.field_times"),
                sql.SQL("deleted_at = {}").format(DELETED_AT),
                sql.SQL(
                    "source_updated_at = GREATEST(t.source_updated_at, excluded.source_updated_at)"
                ),
                sql.SQL(
                    "payload = CASE WHEN {} THEN t.payload || excluded.payload "
                    "ELSE excluded.payload || t.payload END"
                ).format(AT_LEAST_AS_NEW),
                *provenance,
                sql.SQL("landed_at = now()"),
            ]
        ),
        changed=changed,
    )


def _wins(column: str) -> sql.Composable:
    """Does the incoming value of `column` replace the stored one? Yes if nobody has set the
    field yet; if the stored value is undated, for any dated delivery; else when the incoming
    (time, value hash) is greater. An undated delivery never beats a set field."""
    name, key = sql.Identifier(column), sql.Literal(column)
    return sql.SQL(
        "((t.field_times ->> {key} IS NULL"
        " AND (excluded.source_updated_at IS NOT NULL OR NOT t.field_times ? {key}))"
        " OR (excluded.source_updated_at, coalesce(md5(excluded.{name}::text), ''))"
        " > ((t.field_times ->> {key})::timestamptz, coalesce(md5(t.{name}::text), '')))"
    ).format(key=key, name=name)


# A delete stands while nothing newer is known (at one instant the delete wins); a newer
# dated update brings the row back.
DELETED_AT = sql.SQL(
    "CASE WHEN excluded.deleted_at >= coalesce(t.source_updated_at, '-infinity') "
    "THEN excluded.deleted_at "
    "WHEN excluded.deleted_at IS NULL AND excluded.source_updated_at > t.deleted_at THEN NULL "
    "ELSE t.deleted_at END"
)
NEWER = sql.SQL("excluded.source_updated_at > coalesce(t.source_updated_at, '-infinity')")
AT_LEAST_AS_NEW = sql.SQL(
    "excluded.source_updated_at >= coalesce(t.source_updated_at, '-infinity')"
)
