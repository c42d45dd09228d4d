"""GHL contacts who train become TrainU clients (`app.clients`), on first need.

A studio connected to real GHL has contacts, not clients: the first time TrainU acts for a
contact (a booking to confirm, a reply to answer) it gets a client row from what GHL says
about it (name, email, phone, timezone, assigned trainer), matched on the GHL contact id;
rows that exist are left as they are (the app and the simulator's data own them). A
contact under DND in GHL is recorded as opted out, which no draft ever overrides.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

ENSURE_CLIENTS = """
INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name, email, phone, timezone,
                         opted_out_at, opt_out_reason)
SELECT c.location_id, c.contact_id, t.id,
       coalesce(nullif(trim(concat_ws(' ', c.first_name, c.last_name)), ''), 'Client'),
       c.email, c.phone, c.timezone,
       CASE WHEN c.dnd THEN now() END, CASE WHEN c.dnd THEN 'GHL DND' END
FROM raw.ghl_contacts c
LEFT JOIN app.trainers t ON t.location_id = c.location_id AND t.ghl_user_id = c.assigned_user_id
JOIN app.locations l ON l.location_id = c.location_id  -- a studio TrainU serves
WHERE c.location_id = %s AND c.contact_id = ANY(%s) AND c.deleted_at IS NULL
ON CONFLICT (location_id, ghl_contact_id) DO NOTHING
"""

RECORD_OPT_OUTS = """
UPDATE app.clients SET opted_out_at = now(), opt_out_reason = %s, updated_at = now()
WHERE location_id = %s AND ghl_contact_id = ANY(%s) AND opted_out_at IS NULL
RETURNING id
"""


def ensure_clients(conn: psycopg.Connection, location_id: str, contact_ids: Iterable[str]) -> None:
    """Give each landed contact without one a client row; the caller owns the transaction."""
    ids = sorted(set(contact_ids))
    if ids:
        conn.execute(ENSURE_CLIENTS, (location_id, ids))


def record_opt_outs(
    conn: psycopg.Connection, location_id: str, contact_ids: Iterable[str], reason: str
) -> list[str]:
    """Mark clients opted out (the first time only); returns the client ids newly marked."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    return [str(row[0]) for row in conn.execute(RECORD_OPT_OUTS, (reason, location_id, ids))]
