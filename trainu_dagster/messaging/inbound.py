"""What GHL tells us about messages, onto the client's thread in `app.messages`.

Run on each applied batch of webhook deliveries (after ingest wrote `raw.ghl_messages`):
- a client's message lands as a `received` row with its conversation and what it asks
  for (confirm, cancel, reschedule, a question: `trigger.intent`);
- a status update of a message we sent moves it `sent` → `delivered` or `failed`. The
  update may land before the send run has recorded GHL's message id: `apply_landed_status`
  then applies it when the send is recorded, so neither order loses it.
A pull of the messages stream does the same for each page (`record_pulled`), so what a lost
webhook would have brought still reaches the thread, a STOP found this way included.
Messages a trainer sent from GHL's own app stay in `raw.ghl_messages`: they show on the
thread (`reporting.threads`) and count toward the caps (`outbox`) from there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import psycopg
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.payloads import ParsedEvent
from trainu_dagster.ingest.clients import ensure_clients
from trainu_dagster.ingest.process import WebhookEvent
from trainu_dagster.messaging.classify import classify_inbound
from trainu_dagster.messaging.drafts_store import opt_out
from trainu_dagster.observability.product_events import record_event

DELIVERED = ("delivered", "read", "opened")
FAILED = ("failed", "undelivered")
ANSWERABLE = ("SMS", "Email")  # the channels TrainU can answer on
ACTOR = "system:inbound"


def record_delivered(
    conn: psycopg.Connection, delivered: Iterable[tuple[WebhookEvent, ParsedEvent]]
) -> int:
    """Thread rows and status moves for the messages in a batch; returns how many."""
    by_location: dict[str, dict[str, UUID]] = defaultdict(dict)
    for event, parsed in delivered:
        for change in parsed.changes:
            if change.entity == "message":
                by_location[change.location_id].setdefault(change.entity_id, event.correlation_id)
    return sum(_apply(conn, location, messages) for location, messages in by_location.items())


def record_pulled(conn: psycopg.Connection, location_id: str, message_ids: Iterable[str]) -> int:
    """Thread rows and status moves for the messages of a pulled page (each gets its own
    correlation id: no delivery started it); a client's STOP-family message among them opts
    the client out and suppresses what waits for them, as its webhook would have."""
    ids = sorted(set(message_ids))
    changed = _apply(conn, location_id, {message_id: uuid4() for message_id in ids})
    stopped = conn.execute(
        """SELECT DISTINCT c.ghl_contact_id, c.id FROM app.messages m
           JOIN app.clients c ON c.id = m.client_id
           WHERE m.location_id = %s AND m.ghl_message_id = ANY(%s)
             AND m.trigger->>'intent' = 'opt_out' AND c.opted_out_at IS NULL""",
        (location_id, ids),
    ).fetchall()
    for contact_id, client_id in stopped:
        opt_out(conn, location_id, contact_id, client_id, "STOP reply")
    return changed


def _apply(conn: psycopg.Connection, location_id: str, correlations: dict[str, UUID]) -> int:
    """The messages as `raw.ghl_messages` now holds them, a few statements for the lot
    (a pulled page brings a hundred): clients' messages onto their threads, reports on
    ours moving their status."""
    rows = conn.execute(
        """SELECT message_id, contact_id, conversation_id, direction, message_type,
                  coalesce(payload->>'body', ''), date_added
           FROM raw.ghl_messages WHERE location_id = %s AND message_id = ANY(%s)""",
        (location_id, list(correlations)),
    ).fetchall()
    received, ours = [], []
    for message_id, contact_id, conversation_id, direction, channel, body, added in rows:
        if direction == "outbound":
            ours.append(message_id)
        elif direction == "inbound" and contact_id and channel in ANSWERABLE and body.strip():
            received.append(Received(message_id, contact_id, conversation_id, channel, body,
                                     added, correlations[message_id]))  # fmt: skip
    return _received(conn, location_id, received) + apply_landed_status(conn, location_id, ours)


@dataclass(frozen=True)
class Received:
    """A client's message (on a channel TrainU answers, with text) as GHL holds it."""

    message_id: str
    contact_id: str
    conversation_id: str | None
    channel: str
    body: str
    added: datetime | None
    correlation: UUID


def _received(conn: psycopg.Connection, location_id: str, messages: list[Received]) -> int:
    """The clients' messages on their threads, with what each asks for (`trigger.intent`)."""
    if not messages:
        return 0
    ensure_clients(conn, location_id, (m.contact_id for m in messages))
    verdicts = [classify_inbound(m.body) for m in messages]
    intents = [Jsonb({"intent": "opt_out" if v.opt_out else v.intent}) for v in verdicts]
    inserted = conn.execute(
        """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
               status, body, trigger, ghl_message_id, ghl_conversation_id, sent_at,
               correlation_id)
           SELECT c.location_id, c.id, c.trainer_id, 'inbound', r.channel, 'received', r.body,
                  r.trigger, r.message_id, r.conversation_id, r.added, r.correlation
           FROM unnest(%s::text[], %s::text[], %s::jsonb[], %s::text[], %s::text[],
                       %s::timestamptz[], %s::uuid[], %s::text[])
                AS r (channel, body, trigger, message_id, conversation_id, added, correlation,
                      contact_id)
           JOIN app.clients c ON c.location_id = %s AND c.ghl_contact_id = r.contact_id
           ON CONFLICT (location_id, ghl_message_id) DO NOTHING
           RETURNING id, channel, trigger->>'intent', correlation_id""",
        ([m.channel for m in messages], [m.body for m in messages], intents,
         [m.message_id for m in messages], [m.conversation_id for m in messages],
         [m.added for m in messages], [m.correlation for m in messages],
         [m.contact_id for m in messages], location_id),
    ).fetchall()  # fmt: skip
    for message_id, channel, intent, correlation in inserted:
        record_event(conn, "message_received", actor=ACTOR, location_id=location_id,
                     entity_type="message", entity_id=str(message_id), correlation_id=correlation,
                     properties={"channel": channel, "intent": intent})  # fmt: skip
    return len(inserted)


def apply_landed_status(
    conn: psycopg.Connection, location_id: str, ghl_message_ids: Sequence[str]
) -> int:
    """`sent` → `delivered` or `failed` from the status GHL last reported for each of the
    messages; returns how many moved."""
    if not ghl_message_ids:
        return 0
    moved = conn.execute(
        """UPDATE app.messages m SET
               status = CASE WHEN r.status = ANY(%(delivered)s) THEN 'delivered' ELSE 'failed' END,
               delivered_at = CASE WHEN r.status = ANY(%(delivered)s)
                                   THEN coalesce(r.source_updated_at, now()) END,
               failed_reason = CASE WHEN r.status = ANY(%(failed)s)
                                    THEN 'GHL: ' || coalesce(r.payload->>'error', r.status) END,
               updated_at = now()
           FROM raw.ghl_messages r
           WHERE r.location_id = %(location)s AND r.message_id = ANY(%(messages)s)
             AND m.location_id = r.location_id AND m.ghl_message_id = r.message_id
             AND m.status = 'sent' AND r.status = ANY(%(either)s)
           RETURNING m.id, m.status, m.correlation_id, m.ghl_message_id""",
        {"delivered": list(DELIVERED), "failed": list(FAILED), "either": [*DELIVERED, *FAILED],
         "location": location_id, "messages": list(ghl_message_ids)},
    ).fetchall()  # fmt: skip
    for message_id, status, correlation, ghl_message_id in moved:
        record_event(conn, f"message_{status}", actor=ACTOR, location_id=location_id,
                     entity_type="message", entity_id=str(message_id),
                     correlation_id=correlation,
                     properties={"ghl_message_id": ghl_message_id})  # fmt: skip
    return len(moved)
