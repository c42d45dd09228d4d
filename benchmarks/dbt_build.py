"""`dbt build` on a large generated dataset: full, then incremental after 1,000 new events.

Starts a temporary embedded Postgres, migrates it, and generates in SQL 1,000,000 bookings
for 20,000 clients (10 studios, 200 trainers, two years of weekly sessions with a realistic
outcome mix, some moved), their contacts, 200,000 messages and goals with entries. Then
times, with the production CLI arguments (`dbt_build_args`, data tests included):
- dbt's fixed start-up cost: a build that selects one trivial view;
- a full build (`--full-refresh`);
- after each of three batches of 1,000 new events (800 late outcomes of existing bookings,
  200 new bookings) applied through the production last-write-wins path: the routine run
  Dagster's automation launches (the models downstream of the appointment tables, data
  tests on recently loaded rows), an incremental build of the whole project, and the
  nightly build (incremental, every row tested).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

from benchmarks.support import save_results, start_database, stop_database
from tests.dbt_harness import dbt
from trainu_dagster.assets.dbt import dbt_build_args
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.payloads import EntityChange
from trainu_dagster.ingest.apply import apply_changes

NOW = datetime.now(UTC).replace(microsecond=0)
PARTIAL_PARSE = "partial_parse.msgpack"
APPOINTMENT_DOWNSTREAM = ["source:raw.ghl_appointments+", "source:raw.ghl_appointment_start_times+"]

GENERATE = Template("""
INSERT INTO app.locations (location_id, name, timezone)
SELECT 'loc-' || l, 'Studio ' || l,
       (ARRAY['America/New_York', 'Europe/London', 'Australia/Sydney', 'America/Denver'])[1 + l % 4]
FROM generate_series(1, 10) l;

INSERT INTO app.trainers (location_id, ghl_user_id, name)
SELECT 'loc-' || (1 + t % 10), 'user-' || t, 'Trainer ' || t FROM generate_series(1, 200) t;

INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name)
SELECT tr.location_id, 'contact-' || c, tr.id, 'Client ' || c
FROM generate_series(1, $clients) c
JOIN app.trainers tr ON tr.ghl_user_id = 'user-' || (1 + c % 200);

-- History landed as it happened (landed_at), as it would have in production.
INSERT INTO raw.ghl_contacts (location_id, contact_id, first_name, assigned_user_id,
                              date_added, source_updated_at, payload, source, landed_at)
SELECT 'loc-' || (1 + (1 + c % 200) % 10), 'contact-' || c, 'Client', 'user-' || (1 + c % 200),
       '$now'::timestamptz - interval '800 days', '$now'::timestamptz - interval '2 days',
       '{}', 'pull', '$now'::timestamptz - interval '2 days'
FROM generate_series(1, $clients) c;

-- b-th booking: client b % clients, one week apart per client, two years back to 8 weeks ahead.
INSERT INTO raw.ghl_appointments (location_id, appointment_id, calendar_id, contact_id,
    assigned_user_id, status, start_time, end_time, date_added, source_updated_at, payload,
    source, landed_at)
SELECT s.location_id, 'appt-' || s.b, 'cal-' || s.trainer, 'contact-' || s.client,
       'user-' || s.trainer,
       CASE WHEN s.start_at > '$now'::timestamptz THEN 'confirmed'
            WHEN s.r < 0.80 THEN 'showed' WHEN s.r < 0.88 THEN 'noshow'
            ELSE 'cancelled' END,
       s.start_at, s.start_at + interval '1 hour', s.start_at - interval '5 days',
       CASE WHEN s.start_at > '$now'::timestamptz THEN s.start_at - interval '5 days'
            WHEN s.r < 0.88 THEN s.start_at + interval '2 hours'
            WHEN s.r < 0.94 THEN s.start_at - interval '6 hours'
            ELSE s.start_at - interval '3 days' END,
       '{}', 'pull', least(s.start_at, '$now'::timestamptz) - interval '2 days'
FROM (
    SELECT b, 1 + b % $clients AS client, 1 + (1 + b % $clients) % 200 AS trainer,
           'loc-' || (1 + (1 + (1 + b % $clients) % 200) % 10) AS location_id,
           '$now'::timestamptz + interval '8 weeks'
               - (b / $clients) * interval '1 week'
               - ((b % 97) || ' hours')::interval AS start_at,
           random() AS r
    FROM generate_series(0, $bookings - 1) b
) s;

INSERT INTO raw.ghl_appointment_start_times (location_id, appointment_id, start_time,
                                             first_seen_at)
SELECT location_id, appointment_id, start_time, landed_at FROM raw.ghl_appointments
UNION ALL
SELECT location_id, appointment_id, start_time - interval '1 day', landed_at - interval '1 day'
FROM raw.ghl_appointments WHERE random() < 0.05;

INSERT INTO raw.ghl_messages (location_id, message_id, conversation_id, contact_id, direction,
    message_type, status, date_added, source_updated_at, payload, source, landed_at)
SELECT 'loc-' || (1 + (1 + (1 + m % $clients) % 200) % 10), 'msg-' || m,
       'conv-' || (1 + m % $clients), 'contact-' || (1 + m % $clients),
       CASE WHEN m % 3 = 0 THEN 'inbound' ELSE 'outbound' END, 'SMS', 'delivered',
       '$now'::timestamptz - (m % 700) * interval '1 day',
       '$now'::timestamptz - (m % 700) * interval '1 day', '{}', 'pull',
       '$now'::timestamptz - (m % 700) * interval '1 day' - interval '2 days'
FROM generate_series(1, $messages) m;

INSERT INTO app.goals (location_id, client_id, goal_type, title, unit, direction,
    baseline_value, target_value, start_date, target_date)
SELECT location_id, id, 'body_weight', 'Lose 6 kg', 'kg', 'decrease', 80, 74,
       ('$now'::timestamptz - interval '60 days')::date,
       ('$now'::timestamptz + interval '60 days')::date
FROM app.clients;

INSERT INTO app.goal_entries (location_id, goal_id, client_id, value, recorded_at)
SELECT g.location_id, g.id, g.client_id, 80 - w * 0.4 + random(),
       '$now'::timestamptz - interval '60 days' + w * interval '1 week'
FROM app.goals g, generate_series(0, 8) w;
ANALYZE;
""")


def generate(database: Database, *, bookings: int, clients: int, messages: int) -> float:
    """GENERATE in one transaction (10 studios, 200 trainers); returns the seconds taken."""
    print(f"generating {bookings:,} bookings for {clients:,} clients...", flush=True)
    started = time.monotonic()
    with database.connect() as conn, conn.transaction():
        # whole numbers and our own timestamp: safe to inline
        conn.execute(GENERATE.substitute(bookings=int(bookings), clients=int(clients),
                                         messages=int(messages), now=NOW.isoformat()))  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"  generated in {elapsed:.1f} s", flush=True)
    return elapsed


def parse(database: Database, work: Path) -> None:
    """The manifest, as `make manifest` builds it at deploy; `timed_dbt` starts from it."""
    dbt(database, work, "parse")
    shutil.copy(work / "target" / PARTIAL_PARSE, work / PARTIAL_PARSE)


def timed_dbt(database: Database, work: Path, *args: str) -> float:
    # As dagster-dbt does for each run: start from the deploy-time parse (`make manifest`)
    shutil.copy(work / PARTIAL_PARSE, work / "target" / PARTIAL_PARSE)
    started = time.monotonic()
    result = dbt(database, work, *args)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed:\n{result.stdout[-4000:]}")
    print(f"  {result.stdout.strip().splitlines()[-1]}", flush=True)
    run_results = work / "target" / "run_results.json"
    if args[0] == "build" and run_results.exists():
        nodes = json.loads(run_results.read_text())["results"]
        slowest = sorted(nodes, key=lambda n: -n["execution_time"])[:6]
        print("  slowest: " + ", ".join(
            f"{n['unique_id'].split('.')[-1][:40]} {n['execution_time']:.1f} s" for n in slowest
        ))  # fmt: skip
    return elapsed


def new_events(
    count: int, clients: int, updated_at: datetime, first: int = 0
) -> list[EntityChange]:
    """80% late outcomes for bookings of the last weeks (as generated), 20% new bookings."""
    changes = []
    for i in range(first, first + count):
        if i % 5:  # booking b as GENERATE made it: its client, trainer, studio and start
            b = 10 * clients + i * 37
            client, status = 1 + b % clients, "noshow"
            start = NOW + timedelta(weeks=8 - b // clients, hours=-(b % 97))
            appointment = f"appt-{b}"
        else:
            client, status = 1 + i, "confirmed"
            start = NOW + timedelta(days=1 + i % 14)
            appointment = f"appt-new-{i}"
        trainer = 1 + client % 200
        columns = {
            "contact_id": f"contact-{client}",
            "assigned_user_id": f"user-{trainer}",
            "status": status,
            "start_time": start,
            "end_time": start + timedelta(hours=1),
        }
        changes.append(
            EntityChange("appointment", f"loc-{1 + trainer % 10}", appointment, updated_at,
                         False, columns, {"id": appointment})
        )  # fmt: skip
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000)
    args = parser.parse_args()

    database, work = start_database("dbt")
    generate(database, bookings=args.bookings, clients=args.clients, messages=args.messages)

    results: dict[str, object] = {"started": NOW.isoformat(), **vars(args)}
    parse(database, work)
    print("dbt start-up (one trivial view)...", flush=True)
    results["startup_s"] = timed_dbt(database, work, "run", "--select", "stg_app__locations")
    print("full build (--full-refresh, data tests included)...", flush=True)
    results["full_build_s"] = timed_dbt(database, work, *dbt_build_args(full_refresh=True))
    with database.connect(autocommit=True) as conn:
        # what autovacuum does within a minute of a build that wrote millions of rows; the
        # runs below are then timed in the steady state, not with the planner guessing
        conn.execute("VACUUM ANALYZE")
    runs = {
        # what Dagster's automation launches after appointments land: the models
        # downstream of the raw tables written, with their data tests on recent rows
        "routine_s": [*dbt_build_args(), "--select", *APPOINTMENT_DOWNSTREAM],
        "whole_project_s": dbt_build_args(),
        "nightly_s": dbt_build_args(test_all_rows=True),
    }
    for batch, (name, dbt_args) in enumerate(runs.items()):
        with database.connect() as conn, conn.transaction():
            changes = new_events(
                args.events, args.clients, NOW + timedelta(minutes=1 + batch), batch * args.events
            )
            applied = apply_changes(conn, changes, source="webhook")
        print(f"{name[:-2]} build after {args.events} events ({applied.applied} applied)...")
        results[name] = timed_dbt(database, work, *dbt_args)
    stop_database(work)

    out = save_results("dbt", results)
    startup = results["startup_s"]
    for name in ("full_build_s", *runs):
        after = results[name] - startup
        print(f"{name[:-2]:<16} {results[name]:5.1f} s  ({after:5.1f} s after start-up)")
    print(f"start-up         {startup:5.1f} s\nresults    {out}")


if __name__ == "__main__":
    main()
