"""The simulated studio's TrainU-side data, written into the app tables.

Goals and goal entries are recorded in TrainU, not GHL, so no pull or webhook brings them
in; this writes them (with the studio, its trainers and clients they hang off) the way the
app would have, so dbt marts can be built and compared with the simulator's truth.
Every write is keyed on the studio's own ids, so re-running converges on the same rows.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ghl_simulator.studio import Studio

# The registry's name is the operator's (`trainu locations add`, the stack's registration),
# so an existing studio keeps it; the timezone follows the simulated studio.
UPSERT_LOCATION = """
INSERT INTO app.locations (location_id, name, timezone) VALUES (%s, %s, %s)
ON CONFLICT (location_id) DO UPDATE SET timezone = excluded.timezone
WHERE app.locations.timezone IS DISTINCT FROM excluded.timezone
"""

UPSERT_TRAINERS = """
INSERT INTO app.trainers AS t (location_id, ghl_user_id, name, email, timezone)
SELECT %s, r.ghl_user_id, r.name, r.email, %s
FROM unnest(%s::text[], %s::text[], %s::text[]) AS r (ghl_user_id, name, email)
ON CONFLICT (location_id, ghl_user_id) DO UPDATE
SET name = excluded.name, email = excluded.email, timezone = excluded.timezone
WHERE (t.name, t.email, t.timezone) IS DISTINCT FROM
      (excluded.name, excluded.email, excluded.timezone)
"""

UPSERT_CLIENTS = """
INSERT INTO app.clients AS c
    (location_id, ghl_contact_id, trainer_id, name, email, phone, timezone, opted_out_at)
SELECT %(location)s, r.ghl_contact_id, t.id, r.name, r.email, r.phone, r.timezone,
       r.opted_out_at
FROM unnest(%(contact_ids)s::text[], %(assigned)s::text[], %(names)s::text[],
            %(emails)s::text[], %(phones)s::text[], %(timezones)s::text[],
            %(opted_out)s::timestamptz[])
     AS r (ghl_contact_id, assigned_to, name, email, phone, timezone, opted_out_at)
LEFT JOIN app.trainers t ON t.location_id = %(location)s AND t.ghl_user_id = r.assigned_to
ON CONFLICT (location_id, ghl_contact_id) DO UPDATE
SET trainer_id = excluded.trainer_id, name = excluded.name, email = excluded.email,
    phone = excluded.phone, timezone = excluded.timezone,
    opted_out_at = excluded.opted_out_at, updated_at = now()
WHERE (c.trainer_id, c.name, c.email, c.phone, c.timezone, c.opted_out_at) IS DISTINCT FROM
      (excluded.trainer_id, excluded.name, excluded.email, excluded.phone, excluded.timezone,
       excluded.opted_out_at)
"""

UPSERT_GOALS = """
INSERT INTO app.goals AS g
    (id, location_id, client_id, goal_type, title, unit, direction, baseline_value,
     target_value, start_date, target_date, status)
SELECT r.id, %(location)s, c.id, r.goal_type, r.title, r.unit, r.direction, r.baseline_value,
       r.target_value, r.start_date, r.target_date, r.status
FROM unnest(%(ids)s::uuid[], %(contact_ids)s::text[], %(types)s::text[], %(titles)s::text[],
            %(units)s::text[], %(directions)s::text[], %(baselines)s::numeric[],
            %(targets)s::numeric[], %(starts)s::date[], %(ends)s::date[], %(statuses)s::text[])
     AS r (id, contact_id, goal_type, title, unit, direction, baseline_value, target_value,
           start_date, target_date, status)
JOIN app.clients c ON c.location_id = %(location)s AND c.ghl_contact_id = r.contact_id
ON CONFLICT (id) DO UPDATE
SET goal_type = excluded.goal_type, title = excluded.title, unit = excluded.unit,
    direction = excluded.direction, baseline_value = excluded.baseline_value,
    target_value = excluded.target_value, start_date = excluded.start_date,
    target_date = excluded.target_date, status = excluded.status, updated_at = now()
WHERE (g.goal_type, g.title, g.unit, g.direction, g.baseline_value, g.target_value,
       g.start_date, g.target_date, g.status) IS DISTINCT FROM
      (excluded.goal_type, excluded.title, excluded.unit, excluded.direction,
       excluded.baseline_value, excluded.target_value, excluded.start_date,
       excluded.target_date, excluded.status)
"""

DELETE_ENTRIES = "DELETE FROM app.goal_entries WHERE goal_id = ANY(%s::uuid[])"

INSERT_ENTRIES = """
INSERT INTO app.goal_entries (id, location_id, goal_id, client_id, value, recorded_at)
SELECT r.id, g.location_id, g.id, g.client_id, r.value, r.recorded_at
FROM unnest(%s::uuid[], %s::uuid[], %s::numeric[], %s::timestamptz[])
     AS r (id, goal_id, value, recorded_at)
JOIN app.goals g ON g.id = r.goal_id AND g.location_id = %s
ON CONFLICT (id) DO UPDATE
SET goal_id = excluded.goal_id, client_id = excluded.client_id, value = excluded.value,
    recorded_at = excluded.recorded_at
"""


def write_app_data(conn: psycopg.Connection, studio: Studio) -> dict[str, int]:
    """Upsert the studio, its trainers, clients (contacts with a profile, not deleted) and
    their goals, and replace those goals' entries; returns how many of each the studio has.
    Set-based statements, so 20,000 clients take seconds. The caller owns the transaction."""
    with studio.lock:
        location = dict(studio.location)
        users = list(studio.users.values())
        clients = [
            studio.contacts[contact_id]
            for contact_id in studio.profiles
            if not studio.contacts[contact_id]["deleted"]
        ]
        written = {c["id"] for c in clients}
        goals = [g for g in studio.goals.values() if g["contact_id"] in written]
        goal_ids = {g["id"] for g in goals}
        entries = [e for e in studio.goal_entries.values() if e["goal_id"] in goal_ids]
        rows = _client_rows(clients)
    location_id, timezone = location["id"], location["timezone"]
    with conn.cursor() as cur:
        cur.execute(UPSERT_LOCATION, (location_id, location["name"], timezone))
        cur.execute(
            UPSERT_TRAINERS,
            (
                location_id,
                timezone,
                [u["id"] for u in users],
                [u["name"] for u in users],
                [u["email"] for u in users],
            ),
        )
        cur.execute(UPSERT_CLIENTS, {"location": location_id, **rows})
        cur.execute(UPSERT_GOALS, {"location": location_id, **_goal_rows(goals)})
        cur.execute(DELETE_ENTRIES, ([g["id"] for g in goals],))
        cur.execute(
            INSERT_ENTRIES,
            (
                [e["id"] for e in entries],
                [e["goal_id"] for e in entries],
                [e["value"] for e in entries],
                [e["recorded_at"] for e in entries],
                location_id,
            ),
        )
        inserted_entries = cur.rowcount
    return {
        "locations": 1,
        "trainers": len(users),
        "clients": len(clients),
        "goals": len(goals),
        "goal_entries": inserted_entries,
    }


def _client_rows(clients: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column arrays; a contact under DND opted out when it last changed."""
    return {
        "contact_ids": [c["id"] for c in clients],
        "assigned": [c["assignedTo"] for c in clients],
        "names": [f"{c['firstName']} {c['lastName']}" for c in clients],
        "emails": [c["email"] for c in clients],
        "phones": [c["phone"] for c in clients],
        "timezones": [c["timezone"] for c in clients],
        "opted_out": [c["dateUpdated"] if c["dnd"] else None for c in clients],
    }


def _goal_rows(goals: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns = {
        "ids": "id",
        "contact_ids": "contact_id",
        "types": "goal_type",
        "titles": "title",
        "units": "unit",
        "directions": "direction",
        "baselines": "baseline_value",
        "targets": "target_value",
        "starts": "start_date",
        "ends": "target_date",
        "statuses": "status",
    }
    return {name: [g[key] for g in goals] for name, key in columns.items()}
