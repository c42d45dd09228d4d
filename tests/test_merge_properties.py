"""Property: whatever GHL delivers about one contact, in any order, with duplicates, full
and partial, dated and undated, deletes included, the stored row holds each field's newest
known value. Deliveries are generated as GHL's own bodies, landed in `raw.webhook_events`
and applied by the real ingest path in batches of random size."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingest_helpers import land
from trainu_dagster.db.server import Database
from trainu_dagster.ingest.process import process_pending

LOCATION = "loc-merge"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Few instants and few values, so ties (two values stamped with one time) come up often.
TIMES = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 3)]
VALUES: dict[str, list[Any]] = {
    "first_name": ["Ann", "Bea"],
    "email": ["a@x.io", "b@x.io"],
    "phone": ["+15550001", "+15550002"],
    "tags": [["a"], ["a", "b"]],
    "dnd": [True, False],
}
EMPTY: dict[str, Any] = {"first_name": None, "email": None, "phone": None, "tags": [], "dnd": False}
BODY_KEYS = {"first_name": "firstName", "email": "email", "phone": "phone", "tags": "tags",
             "dnd": "dnd"}  # fmt: skip
WORKFLOW_FIELDS = ("first_name", "email", "phone", "tags")  # a workflow body carries no DND


@dataclass(frozen=True)
class Delivery:
    kind: str  # full (ContactUpdate), dnd, tags, delete (ContactDelete), workflow
    at: datetime | None  # None: no time at all
    fields: tuple[tuple[str, Any], ...]

    @property
    def deleted(self) -> bool:
        return self.kind == "delete"


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    kind = draw(st.sampled_from(["full", "dnd", "tags", "delete", "workflow"]))
    workflow = draw(st.sets(st.sampled_from(WORKFLOW_FIELDS), min_size=1))
    names = {"full": list(VALUES), "delete": list(VALUES), "dnd": ["dnd"], "tags": ["tags"],
             "workflow": workflow}[kind]  # fmt: skip
    fields = tuple((name, draw(st.sampled_from(VALUES[name]))) for name in sorted(names))
    # A delete always carries GHL's signed timestamp; anything else may come without one.
    at = draw(st.sampled_from(TIMES) if kind == "delete" else st.sampled_from([None, *TIMES]))
    return Delivery(kind, at, fields)


def body(delivery: Delivery, contact_id: str) -> tuple[dict[str, Any], str]:
    """The delivery as GHL sends it, and its route."""
    if delivery.kind == "workflow":  # each run of the workflow differs in its custom data
        custom: dict[str, Any] = {"run": str(uuid.uuid4())}
        if delivery.at is not None:
            custom["timestamp"] = delivery.at.isoformat()
        payload = {"contact_id": contact_id, "location": {"id": LOCATION}, "customData": custom}
        for name, value in delivery.fields:
            payload[name] = ",".join(value) if name == "tags" else value
        return payload, "workflow"
    event = {"full": "ContactUpdate", "dnd": "ContactDndUpdate", "tags": "ContactTagUpdate",
             "delete": "ContactDelete"}[delivery.kind]  # fmt: skip
    payload = {"type": event, "locationId": LOCATION, "id": contact_id,
               "webhookId": str(uuid.uuid4())}  # fmt: skip
    payload |= {BODY_KEYS[name]: value for name, value in delivery.fields}
    if delivery.at is not None:
        payload["timestamp"] = delivery.at.isoformat()
    return payload, "marketplace"


def pg_text(value: Any) -> str:
    """How Postgres writes the value as text: the tie-break hashes that."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "{" + ",".join(value) + "}"
    return value


def expected_row(landed: list[Delivery]) -> dict[str, Any]:
    """Each field's newest known value: the dated delivery with the greatest (time, value
    hash) among those carrying it; failing any dated one, one of the undated values (the
    first to land fills the gap). Deleted while a delete is the newest thing known."""
    row: dict[str, Any] = {}
    for name in VALUES:
        carrying = [(d.at, dict(d.fields)[name]) for d in landed if name in dict(d.fields)]
        dated = [(at, value) for at, value in carrying if at is not None]
        if dated:
            row[name] = max(
                dated, key=lambda c: (c[0], hashlib.md5(pg_text(c[1]).encode()).hexdigest())
            )[1]  # noqa: E501, S324
        elif carrying:
            row[name] = {"undated": [value for _, value in carrying]}
        else:
            row[name] = EMPTY[name]
    times = [d.at for d in landed if d.at is not None]
    deletes = [d.at for d in landed if d.deleted]
    others = [d.at for d in landed if not d.deleted and d.at is not None]
    newest_delete = max(deletes, default=None)
    row["deleted_at"] = (
        newest_delete
        if newest_delete is not None and newest_delete >= max(others, default=newest_delete)
        else None
    )
    row["source_updated_at"] = max(times, default=None)
    return row


@pytest.fixture(scope="module")
def conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect() as connection:
        connection.execute(
            "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Merge') "
            "ON CONFLICT DO NOTHING",
            (LOCATION,),
        )
        connection.commit()
        yield connection


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    unique=st.lists(deliveries(), min_size=1, max_size=8),
    data=st.data(),
)
def test_the_stored_row_is_the_field_wise_newest_known_value(
    conn: psycopg.Connection, unique: list[Delivery], data: st.DataObject
) -> None:
    redelivered = data.draw(st.lists(st.sampled_from(unique), max_size=4), label="duplicates")
    landed = data.draw(st.permutations(unique + redelivered), label="arrival order")
    batch_sizes = data.draw(st.lists(st.integers(1, 5), min_size=len(landed),
                                     max_size=len(landed)), label="batches")  # fmt: skip
    contact_id = f"c-{uuid.uuid4().hex[:10]}"
    with conn.transaction(force_rollback=True):
        for delivery in landed:
            payload, route = body(delivery, contact_id)
            land(conn, payload, route=route)
        processed = 0
        for size in batch_sizes:  # the ingest run claims batches of its own size
            summary = process_pending(conn, limit=size)
            assert summary.failed == 0
            processed += summary.claimed
            if processed == len(landed):
                break
        assert processed == len(landed)
        stored = conn.execute(
            """SELECT first_name, email, phone, tags, dnd, deleted_at, source_updated_at
               FROM raw.ghl_contacts WHERE location_id = %s AND contact_id = %s""",
            (LOCATION, contact_id),
        ).fetchone()
    assert stored is not None
    actual = dict(zip([*VALUES, "deleted_at", "source_updated_at"], stored, strict=True))
    for name, value in expected_row(landed).items():
        if isinstance(value, dict):  # set only by undated deliveries
            assert actual[name] in value["undated"], name
        else:
            assert actual[name] == value, name


def test_the_first_undated_value_to_land_fills_the_gap(conn: psycopg.Connection) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:10]}"
    with conn.transaction(force_rollback=True):
        for email in ("first@x.io", "second@x.io"):
            payload, route = body(Delivery("workflow", None, (("email", email),)), contact_id)
            land(conn, payload, route=route)
            process_pending(conn)
        stored = conn.execute(
            "SELECT email FROM raw.ghl_contacts WHERE contact_id = %s", (contact_id,)
        ).fetchone()
    assert stored == ("first@x.io",)
