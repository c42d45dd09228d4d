"""Sending through GHL: the outbox against GHL's real limits, and approval → sent on the
stack's Dagster.

Starts an embedded Postgres (temporary) and, each in its own process as GHL would be, a
GHL simulator per studio (`ghl-simulator --app-data`, GHL's real limits: 100 requests
per 10 s per location; the studio's trainers and clients written into TrainU as the stack
does), pulls each studio's GHL data through the production client (so every send-time
check reads real facts: DND, recent messages, bookings), then:

(a) **burst**: 1,000 approved messages across 5 studios (200 each, one per client) drained
    by `outbox.drain` with the production budget shared through Postgres. It reports the
    drain time; per studio, the achieved rate against the 10 requests/s ceiling, as GHL's
    limit sees it (the simulator's own `dateAdded` of each message: 100 over the mean time
    between a message and the one 100 later, which the limit holds at ≥ 10 s, and the most
    in any 10 s); the 429s the simulator answered; and that every message is in GHL
    exactly once with the id TrainU recorded (the simulator's message export). Every
    send-time check is on, at the defaults (quiet hours, 1 a day and 3 a week per client,
    the burst brake at 200 per studio per 10 minutes): the studios are put in a timezone
    where it is daytime, and each message goes to a client TrainU has not written to in
    the past week.
    `--with-pull`: the same while another process (as a pull run is) pulls every stream of
    every studio over and over, with a budget object of its own on the same database;
    the most requests of any kind in 10 s per studio comes from the simulators' counts,
    sampled every 0.5 s.
(b) **latency**: a studio of its own (its own database, as a separate stack) and a real
    `dagster-daemon` with the stack's instance (`deploy/stack/dagster.yaml`, `workspace.yaml`, every
    sensor and schedule as `trainu up` runs them; the outbox sensor at its 2 s interval,
    the default run launcher). Approvals come one by one through the inbox's own
    `approve` at random intervals (2–12 s); approval → sent (`approved_at` → `sent_at`)
    p50/p95/max, and where the time goes: the sensor's tick (→ run created), the queue
    and the run's start (→ run started), the run itself (→ sent). While drafts wait, the
    send run is already up and waiting on the approval's notification, so for most
    approvals all of it is the run's; the first approval, sent by the first run the
    sensor starts, is the cold figure (`warm_up_s`).

    make bench-outbox            # or: uv run python benchmarks/outbox.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import psutil
import psycopg

from benchmarks.support import save_results, start_database, stop_database
from tests.ghl_simulator_harness import PerStudio
from tests.receiver_harness import free_port
from trainu_dagster import accounts
from trainu_dagster.connections.request_budget import PostgresRequestBudget
from trainu_dagster.db import embedded, migrate
from trainu_dagster.db.server import Database, ensure_database_exists
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.inbox import decisions
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.messaging import outbox
from trainu_dagster.messaging.inbound import record_pulled
from trainu_dagster.observability.logging import configure_logging
from trainu_dagster.settings import PROJECT_ROOT
from trainu_dagster.stack import install_instance_config

TOKEN = "bench-token"  # noqa: S105 - the local simulators' token
CEILING, WINDOW = 100, 10.0  # GHL: 100 requests per 10 s per location
EXPIRY, LEASE = timedelta(hours=48), timedelta(minutes=5)
BIN = Path(sys.executable).parent
ZONES = ["Pacific/Honolulu", "America/Los_Angeles", "America/New_York", "Europe/London",
         "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


def load() -> dict[str, Any]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"uptime": uptime, "loadavg": [round(x, 2) for x in os.getloadavg()]}


def daytime_zone() -> str:
    """A timezone where it is between 10:00 and 17:00 now, inside the default window."""
    now = datetime.now(UTC)
    return next(z for z in ZONES if 10 <= now.astimezone(ZoneInfo(z)).hour < 17)


@contextmanager
def simulators(
    seeds: dict[str, int], database: Database, work: Path, clients: int
) -> Iterator[dict[str, str]]:
    """`ghl-simulator --app-data` per studio, no live activity; yields their URLs."""
    processes, urls = [], {}
    env = {**os.environ, "TRAINU_GHL_TOKEN": TOKEN, "TRAINU_STATE_DIR": str(work),
           "TRAINU_DATABASE_URL": database.url(), "TRAINU_LOG_LEVEL": "WARNING"}  # fmt: skip
    try:
        for location_id, seed in seeds.items():
            port = free_port()
            command = [str(BIN / "ghl-simulator"), f"--location={location_id}",
                       "--trainers=3", f"--clients={clients}", "--days=30", f"--seed={seed}",
                       f"--port={port}", "--events-per-minute=0", "--app-data"]  # fmt: skip
            log = (work / f"simulator-{location_id}.log").open("wb")
            processes.append(subprocess.Popen(command, env=env, stdout=log,
                                              stderr=subprocess.STDOUT))  # fmt: skip
            urls[location_id] = f"http://127.0.0.1:{port}"
        for process, url in zip(processes, urls.values(), strict=True):
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"a simulator exited with {process.returncode}")
                try:
                    httpx.get(url + "/_sim/stats").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def prepare_studios(
    database: Database, clients: dict[str, GhlClient], zone: str
) -> dict[str, accounts.User]:
    """Pull each studio's GHL data into raw (what every send-time check reads), put it in
    daytime, give it an owner, and mark its history as backfilled."""
    since = datetime.now(UTC) - timedelta(days=31)
    owners = {}
    with database.connect(autocommit=True) as conn:
        for location_id, client in clients.items():
            for stream in STREAMS:
                pull_stream(conn, client, location_id, stream, options=PullOptions(since=since),
                            on_messages=record_pulled)  # fmt: skip
            conn.execute("UPDATE app.locations SET timezone = %s WHERE location_id = %s",
                         (zone, location_id))  # fmt: skip
            conn.execute("UPDATE app.clients SET timezone = %s WHERE location_id = %s",
                         (zone, location_id))  # fmt: skip
            conn.execute(
                """INSERT INTO raw.backfills (location_id, since, status, finished_at)
                   VALUES (%s, %s, 'succeeded', now()) ON CONFLICT DO NOTHING""",
                (location_id, since),
            )
            owners[location_id] = accounts.create_user(
                conn, location_id=location_id, email=f"owner@{location_id}.example",
                password="a long enough password",  # noqa: S106 - a throwaway database
                role="owner", display_name="Owner",
            )  # fmt: skip
    return owners


def reachable_clients(conn: psycopg.Connection, location_id: str) -> list[UUID]:
    """Clients a message may go to now: not opted out, no DND in GHL, a phone, and nothing
    sent to them in the past week (the caps would rightly hold a second message)."""
    return [row[0] for row in conn.execute(
        """SELECT c.id FROM app.clients c
           JOIN raw.ghl_contacts g ON g.location_id = c.location_id
                                  AND g.contact_id = c.ghl_contact_id
           WHERE c.location_id = %s AND c.opted_out_at IS NULL AND c.phone IS NOT NULL
             AND g.deleted_at IS NULL AND NOT g.dnd
             AND coalesce(g.payload->'dndSettings'->'SMS'->>'status', '') <> 'active'
             AND NOT EXISTS (SELECT 1 FROM raw.ghl_messages r
                             WHERE r.location_id = c.location_id
                               AND r.contact_id = c.ghl_contact_id
                               AND r.direction = 'outbound'
                               AND r.date_added > now() - interval '8 days')
           ORDER BY c.id""",
        (location_id,),
    )]  # fmt: skip


def exported(client: GhlClient, location_id: str, since: datetime) -> list[dict[str, Any]]:
    """GHL's own record of the location's messages since `since` (the message export)."""
    messages, cursor = [], None
    while True:
        page = client.messages(location_id, updated_since=since, cursor=cursor)
        messages.extend(page.records)
        if page.next_cursor is None:
            return messages
        cursor = page.next_cursor["cursor"]


def sim_stats(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {loc: httpx.get(url + "/_sim/stats").json() for loc, url in urls.items()}


def pace(times: list[float]) -> dict[str, Any]:
    """How one location's requests sat against GHL's limit: the rate, 100 over the mean
    time from a request to the one 100 later (the limit keeps that ≥ 10 s, so the rate
    is at most 10/s), and the most requests in any 10 s."""
    times = sorted(times)
    gaps = [b - a for a, b in zip(times, times[CEILING:], strict=False)]
    busiest = max(bisect_left(times, t + WINDOW) - i for i, t in enumerate(times))
    rate = CEILING / statistics.mean(gaps) if gaps else None
    return {
        "messages": len(times),
        "span_s": round(times[-1] - times[0], 2),
        "rate_per_s": round(rate, 2) if rate else None,
        "share_of_ceiling": round(rate / (CEILING / WINDOW), 3) if rate else None,
        "busiest_10s": busiest,
    }


def burst(args: argparse.Namespace, database: Database, work: Path) -> dict[str, Any]:
    studios = {f"bench-studio-{n}": n for n in range(1, args.studios + 1)}
    zone = daytime_zone()
    budget = PostgresRequestBudget(lambda: database.connect(autocommit=True))
    with ExitStack() as stack:
        urls = stack.enter_context(simulators(studios, database, work, args.clients))
        clients = {loc: stack.enter_context(GhlClient(TOKEN, base_url=url, budget=budget))
                   for loc, url in urls.items()}  # fmt: skip
        print(f"(a) {len(studios)} studios, simulators up; pulling their GHL data...", flush=True)
        owners = prepare_studios(database, clients, zone)
        texts: dict[UUID, tuple[str, str]] = {}
        with database.connect() as conn:
            for location_id in studios:
                chosen = reachable_clients(conn, location_id)
                if len(chosen) < args.per_studio:
                    raise SystemExit(f"{location_id}: only {len(chosen)} reachable clients; "
                                     "use a larger --clients")  # fmt: skip
                bodies = [f"Hi! We'd love to see you back at the studio this week. (ref "
                          f"{location_id[-1]}-{i})" for i in range(args.per_studio)]  # fmt: skip
                rows = conn.execute(
                    """INSERT INTO app.messages (location_id, client_id, direction, channel,
                           status, body, draft_body, generator, purpose, approved_body,
                           approved_by, approved_at)
                       SELECT %s, r.client, 'outbound', 'SMS', 'approved', r.text, r.text,
                              'template', 're_engagement', r.text, %s, now()
                       FROM unnest(%s::uuid[], %s::text[]) AS r (client, text)
                       RETURNING id, approved_body""",
                    (location_id, owners[location_id].id, chosen[: args.per_studio], bodies),
                ).fetchall()
                texts |= {row[0]: (location_id, row[1]) for row in rows}
        print(f"    waiting {WINDOW + 1:.0f} s for the pulls' requests to leave the window",
              flush=True)  # fmt: skip
        time.sleep(WINDOW + 1)
        if args.with_pull:
            puller = stack.enter_context(pull_process(database, urls, work))
        before, started_at, before_load = sim_stats(urls), datetime.now(UTC), load()
        print(f"    draining {len(texts)} approved messages"
              f"{' while another process pulls every studio' if args.with_pull else ''}...",
              flush=True)  # fmt: skip
        samples: list[tuple[float, dict[str, int]]] = []
        sampling = threading.Event()
        sampler = threading.Thread(target=sample, args=(urls, samples, sampling))
        sampler.start()
        with database.connect(autocommit=True) as conn:
            began = time.monotonic()
            report = outbox.drain(
                conn, PerStudio(clients), run_id="bench-burst", cap=10 * len(texts),  # type: ignore[arg-type]
                approval_expiry=EXPIRY, lease=LEASE,
                connect=lambda: database.connect(autocommit=True),
            )  # fmt: skip
            drained = time.monotonic() - began
        sampling.set()
        sampler.join()
        after, after_load = sim_stats(urls), load()
        if args.with_pull and puller.poll() is not None:
            raise SystemExit(f"the pull process exited with {puller.returncode}")
        # GHL's own record, through the API (paced by the same budget)
        in_ghl = {loc: exported(clients[loc], loc, started_at - timedelta(minutes=1))
                  for loc in studios}  # fmt: skip
    budget.close()

    with database.connect() as conn:
        recorded = dict(conn.execute(
            "SELECT id, (status, ghl_message_id) FROM app.messages WHERE id = ANY(%s)",
            (list(texts),),
        ).fetchall())  # fmt: skip
    problems, per_studio = [], {}
    for location_id in studios:
        ours = {text: mid for mid, (loc, text) in texts.items() if loc == location_id}
        found: dict[str, list[dict[str, Any]]] = {}
        for message in in_ghl[location_id]:
            if message.get("direction") == "outbound" and message.get("body") in ours:
                found.setdefault(message["body"], []).append(message)
        for text, message_id in ours.items():
            copies = found.get(text, [])
            status, ghl_id = recorded[message_id]
            if len(copies) != 1 or status != "sent" or ghl_id != copies[0]["id"]:
                problems.append({"message": str(message_id), "in_ghl": len(copies),
                                 "status": status})  # fmt: skip
        stamps = [datetime.fromisoformat(m["dateAdded"]).timestamp()
                  for copies in found.values() for m in copies]  # fmt: skip
        delta = {k: after[location_id][k] - before[location_id][k]
                 for k in ("total", "rateLimited", "failed")}  # fmt: skip
        per_studio[location_id] = pace(stamps) | {
            "requests": delta["total"], "answered_429": delta["rateLimited"],
            "failed": delta["failed"], "busiest_10s_all_requests": busiest(samples, location_id),
        }  # fmt: skip
    return {
        "with_pull": args.with_pull,
        "studios": len(studios),
        "messages": len(texts),
        "zone": zone,
        "drain_s": round(drained, 2),
        "report": {k: v for k, v in vars(report).items() if v},
        "answered_429": sum(s["answered_429"] for s in per_studio.values()),
        "exactly_once": not problems,
        "problems": problems[:20],
        "per_studio": per_studio,
        "load_before": before_load,
        "load_after": after_load,
    }


def sample(urls: dict[str, str], samples: list, stop: threading.Event) -> None:
    """Each simulator's request count, every 0.5 s."""
    with httpx.Client() as http:
        while not stop.is_set():
            at = time.monotonic()
            samples.append((at, {loc: http.get(url + "/_sim/stats").json()["total"]
                                 for loc, url in urls.items()}))  # fmt: skip
            stop.wait(0.5)


def busiest(samples: list[tuple[float, dict[str, int]]], location_id: str) -> int:
    """The most requests (sends and anything else) between two samples ≤ 10 s apart."""
    most = 0
    for i, (start, counts) in enumerate(samples):
        for end, later in samples[i + 1 :]:
            if end - start > WINDOW:
                break
            most = max(most, later[location_id] - counts[location_id])
    return most


@contextmanager
def pull_process(
    database: Database, urls: dict[str, str], work: Path
) -> Iterator[subprocess.Popen]:
    """(--with-pull) Another process, as a pull run is: every stream of every studio, full,
    over and over with a budget of its own on the same database, until the burst is sent."""
    log = (work / "pull-process.log").open("wb")
    command = [sys.executable, str(Path(__file__).resolve()), "--pull-process",
               json.dumps({"database": database.url(), "urls": urls})]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(2)  # under way before the burst starts
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def pull_forever(spec: str) -> None:
    config = json.loads(spec)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def connect() -> psycopg.Connection:
        return psycopg.connect(config["database"], autocommit=True)

    budget = PostgresRequestBudget(connect)
    options = PullOptions(since=datetime.now(UTC) - timedelta(days=31), full=True)
    clients = {loc: GhlClient(TOKEN, base_url=url, budget=budget)
               for loc, url in config["urls"].items()}  # fmt: skip
    with connect() as conn:
        while True:
            for location_id, client in clients.items():
                for stream in STREAMS:
                    pull_stream(conn, client, location_id, stream, options=options,
                                on_messages=record_pulled)  # fmt: skip


# --- (b) approval → sent on the stack's Dagster ----------------------------------------------


def dagster_home(work: Path) -> Path:
    return install_instance_config(work / "dagster_home")


@contextmanager
def dagster_daemon(env: dict[str, str], work: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` as `trainu up` starts it; on exit it and everything it started
    (code servers, run workers) are stopped."""
    log = (work / "dagster-daemon.log").open("wb")
    command = [str(BIN / "dagster-daemon"), "run", "--workspace",
               str(PROJECT_ROOT / "workspace.yaml")]  # fmt: skip
    daemon = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield daemon
    finally:
        tree = [daemon.pid]
        with suppress(psutil.NoSuchProcess):
            tree += [p.pid for p in psutil.Process(daemon.pid).children(recursive=True)]
        with suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        for pid in tree[1:]:  # anything that left the daemon's process group
            with suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()


def pending_drafts(
    conn: psycopg.Connection, location_id: str, clients: list[UUID], how_many: int
) -> list[tuple[UUID, str]]:
    drafts = []
    for i, client_id in enumerate(clients[:how_many]):
        text = (
            f"Hi! It has been a while: shall we book your next session? (ref L-{i}) "
            "Reply STOP to opt out."
        )
        message_id = conn.execute(
            """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                   body, draft_body, generator, purpose)
               VALUES (%s, %s, 'outbound', 'SMS', 'pending_approval', %s, %s, 'template',
                       're_engagement')
               RETURNING id""",
            (location_id, client_id, text, text),
        ).fetchone()[0]
        drafts.append((message_id, text))
    return drafts


def approve_now(
    conn: psycopg.Connection, owner: accounts.User, message_id: UUID, text: str
) -> None:
    """What the inbox does when the trainer clicks Approve on the draft it shows."""
    updated_at = conn.execute(
        "SELECT updated_at FROM app.messages WHERE id = %s", (message_id,)
    ).fetchone()[0]
    outcome = decisions.approve(conn, owner, decisions.Loaded(message_id, updated_at), text,
                                now=datetime.now(UTC))  # fmt: skip
    conn.commit()
    if not outcome.ok:
        raise SystemExit(f"approval refused: {outcome.detail}")


def wait_sent(conn: psycopg.Connection, ids: list[UUID], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = conn.execute(
            "SELECT count(*) FROM app.messages WHERE id = ANY(%s) AND status = 'sent'", (ids,)
        ).fetchone()[0]
        conn.commit()
        if done == len(ids):
            return
        time.sleep(0.2)
    raise SystemExit(f"not every approval was sent within {timeout:.0f} s")


def settle(instance: Any, quiet: float = 45, timeout: float = 600) -> float:  # noqa: ANN401
    """Wait until no run but the send run (up while drafts wait: what is measured) has been
    queued or in flight for `quiet` seconds (longer than the model automation's 30 s
    interval: the stack's first model build is over), seconds."""
    from dagster import DagsterRunStatus, RunsFilter

    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED]  # fmt: skip
    began = last_busy = time.monotonic()
    while time.monotonic() - last_busy < quiet:
        if time.monotonic() - began > timeout:
            raise SystemExit("runs still in flight after the warm-up")
        others = instance.get_runs_count(RunsFilter(statuses=busy)) - instance.get_runs_count(
            RunsFilter(statuses=busy, job_name="send_messages")
        )
        if others:
            last_busy = time.monotonic()
        time.sleep(1)
    return time.monotonic() - began


def run_steps(instance: Any, record: Any) -> dict[str, float]:  # noqa: ANN401
    """When a run was created, dequeued, launched and started (epoch seconds)."""
    from dagster import DagsterEventType

    marks = {"created": record.create_timestamp.timestamp()}
    names = {DagsterEventType.RUN_DEQUEUED: "dequeued", DagsterEventType.RUN_STARTING: "starting",
             DagsterEventType.RUN_START: "started"}  # fmt: skip
    for entry in instance.all_logs(record.dagster_run.run_id, of_type=set(names)):
        marks.setdefault(names[entry.dagster_event.event_type], entry.timestamp)
    return dict(sorted(marks.items(), key=lambda item: item[1]))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency(args: argparse.Namespace, server: Database, work: Path) -> dict[str, Any]:
    from dagster import DagsterInstance, RunsFilter

    database = replace(server, admin_url=server.admin_url.set(database="trainu_latency"),
                       dagster_database="trainu_latency_dagster")  # fmt: skip
    ensure_database_exists(database, database.name)
    ensure_database_exists(database, database.dagster_database)
    migrate.upgrade(database)
    location_id, zone = "bench-latency", daytime_zone()
    home = dagster_home(work)
    with ExitStack() as stack:
        urls = stack.enter_context(simulators({location_id: 11}, database, work, 120))
        budget = PostgresRequestBudget(lambda: database.connect(autocommit=True))
        client = stack.enter_context(GhlClient(TOKEN, base_url=urls[location_id], budget=budget))
        owner = prepare_studios(database, {location_id: client}, zone)[location_id]
        budget.close()
        with database.connect() as conn:
            drafts = pending_drafts(conn, location_id, reachable_clients(conn, location_id),
                                    args.approvals + 1)  # fmt: skip
        if len(drafts) < args.approvals + 1:
            raise SystemExit(f"only {len(drafts)} reachable clients for the latency studio")
        env = {**os.environ, "TRAINU_DATABASE_URL": database.url(),
               "TRAINU_DAGSTER_STORAGE_URL": database.dagster_storage_url(),
               "DAGSTER_HOME": str(home), "TRAINU_STATE_DIR": str(work),
               "TRAINU_GHL_BASE_URL": urls[location_id], "TRAINU_GHL_TOKEN": TOKEN,
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        print("(b) dagster-daemon starting; a first approval warms it up...", flush=True)
        os.environ["TRAINU_DAGSTER_STORAGE_URL"] = database.dagster_storage_url()
        instance = stack.enter_context(DagsterInstance.from_config(str(home)))
        with dagster_daemon(env, work), database.connect() as conn:
            began = time.monotonic()
            warm_id, warm_text = drafts[0]
            approve_now(conn, owner, warm_id, warm_text)
            wait_sent(conn, [warm_id], timeout=300)
            warm_up = time.monotonic() - began
            settled = settle(instance)  # the stack's first model build, before timing
            print(f"    first approval sent {warm_up:.1f} s after the daemon started; runs "
                  f"settled {settled:.0f} s later; now {args.approvals} approvals 2-12 s "
                  "apart...", flush=True)  # fmt: skip
            before_load, timed_from = load(), datetime.now(UTC)
            rng = random.Random(args.seed)  # noqa: S311 - a trainer's pace, not a secret
            for message_id, text in drafts[1:]:
                time.sleep(rng.uniform(2, 12))
                approve_now(conn, owner, message_id, text)
            wait_sent(conn, [m for m, _ in drafts[1:]], timeout=180)
            after_load = load()
        with database.connect() as conn:
            rows = conn.execute(
                """SELECT m.id, m.approved_at, m.sent_at,
                          (SELECT e.properties->>'run_id' FROM app.events e
                           WHERE e.entity_id = m.id::text AND e.event_type = 'message_queued'
                           ORDER BY e.id DESC LIMIT 1)
                   FROM app.messages m WHERE m.id = ANY(%s)""",
                ([m for m, _ in drafts[1:]],),
            ).fetchall()
        records = instance.get_run_records(RunsFilter(created_after=timed_from))
        steps = {r.dagster_run.run_id: run_steps(instance, r) for r in records}
    jobs: dict[str, int] = {}
    for record in records:  # what else ran meanwhile (a scheduled pull, a model refresh)
        run = record.dagster_run
        name = run.job_name
        if run.asset_selection:
            name += f" ({len(run.asset_selection)} assets)"
        jobs[name] = jobs.get(name, 0) + 1
    total: list[float] = []
    phases: dict[str, list[float]] = {}
    for _, approved_at, sent_at, run_id in rows:
        total.append((sent_at - approved_at).total_seconds())
        marks = steps.get(run_id)
        if marks is None:
            continue
        # each step from the later of the approval and the step before it
        at = approved_at.timestamp()
        for step, moment in [*marks.items(), ("sent", sent_at.timestamp())]:
            phases.setdefault(step, []).append(max(moment - at, 0.0))
            at = max(at, moment)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(values), 2),
            "p95": round(percentile(values, 0.95), 2),
            "max": round(max(values), 2),
        }

    return {
        "approvals": len(total),
        "warm_up_s": round(warm_up, 1),
        "approved_to_sent_s": summary(total),
        # approval → the sensor's run (created) → the queue lets it go (dequeued: the lane's
        # previous run over) → launched (starting) → its process has loaded the code
        # (started) → the message is sent
        "steps_s": {step: summary(values) for step, values in phases.items()},
        "send_runs": len({r for *_, r in rows}),
        "runs_by_job": jobs,
        "load_before": before_load,
        "load_after": after_load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--studios", type=int, default=5)
    parser.add_argument("--per-studio", type=int, default=200)
    parser.add_argument("--clients", type=int, default=400, help="generated per studio")
    parser.add_argument("--approvals", type=int, default=20, help="(b): timed approvals")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--with-pull", action="store_true",
                        help="(a) with another process pulling every studio meanwhile")  # fmt: skip
    parser.add_argument("--pull-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    if args.pull_process:
        pull_forever(args.pull_process)
        return

    database, work = start_database("outbox")
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "load": load()}
    finished = False
    try:
        if not args.skip_burst:
            results["burst"] = burst(args, database, work)
            b = results["burst"]
            print(
                f"    drained {b['messages']} in {b['drain_s']} s; 429s answered "
                f"{b['answered_429']}; exactly once: {b['exactly_once']}; {b['report']}"
            )
            for location_id, s in b["per_studio"].items():
                print(
                    f"    {location_id}: {s['messages']} in {s['span_s']} s, "
                    f"{s['rate_per_s']}/s = {s['share_of_ceiling']:.1%} of the ceiling, "
                    f"busiest 10 s {s['busiest_10s']} "
                    f"(all requests ~{s['busiest_10s_all_requests']}), "
                    f"requests {s['requests']}, "
                    f"429s {s['answered_429']}"
                )
        if not args.skip_latency:
            results["latency"] = latency(args, database, work)
            lat = results["latency"]
            print(f"    approval → sent over {lat['approvals']}: {lat['approved_to_sent_s']}; "
                  f"runs {lat['runs_by_job']}")  # fmt: skip
            for step, figures in lat["steps_s"].items():
                print(f"      → {step:9} {figures}")
        finished = True
    finally:
        if finished:
            stop_database(work)
        else:  # keep the simulators' and the daemon's logs
            embedded.stop(work / "pgdata")
            print(f"logs kept in {work}", file=sys.stderr)
    print(f"load       {load()['uptime']}")
    print(f"results    {save_results('outbox', results)}")


if __name__ == "__main__":
    main()
