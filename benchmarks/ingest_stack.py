"""Ingest on the running stack: does TrainU keep up with live GHL traffic?

Starts the whole stack exactly as `make up` does (`trainu up`: embedded Postgres, the GHL
simulator with its live activity and signed webhooks, the receiver, the Dagster daemon and
UI, Streamlit), in a temporary state directory on free ports, and measures:

1. first start: how long until the simulated studio's history has landed and every mart
   is populated (the bookings mart against the simulator's ground truth);
2. the live phase, at the simulator's live rate: webhook received → applied to
   `raw.ghl_*` latency (p50/p95/p99/max), webhook received → its draft in the inbox
   (confirmations, no-show check-ins, replies...), ingest runs launched, the most waiting;
3. a burst of 5,000 signed deliveries posted at once: time until all are applied;
4. throughout: the CPU each service uses, of this machine's cores.

    make bench-ingest            # or: uv run python benchmarks/ingest_stack.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psutil
import psycopg

from benchmarks.support import save_results
from benchmarks.webhooks import open_loop
from ghl_simulator import generate_studio, load_or_create_signing_key, webhook_body
from trainu_dagster.db import embedded
from trainu_dagster.ghl.signatures import sign_ed25519
from trainu_dagster.stack import SIMULATED_LOCATION

TRAINU = str(Path(sys.executable).parent / "trainu")
MARTS = ("bookings", "messages", "show_rate_by_location_weekly", "show_rate_by_trainer_monthly",
         "goal_progress", "client_activity", "message_metrics")  # fmt: skip
WAITING = ("QUEUED", "NOT_STARTED", "STARTING")
# A process's service, by what its command line says.
SERVICES = (
    ("spawn_main", "dagster run workers"),  # code servers start runs by multiprocessing spawn
    ("dagster api execute_run", "dagster run workers"),
    ("dbt", "dbt"),
    ("dagster-daemon", "dagster daemon"),
    ("dagster-webserver", "dagster webserver"),
    ("dagster api grpc", "dagster code servers"),
    ("receive", "receiver"),
    ("ghl-simulator", "ghl simulator"),
    ("streamlit", "streamlit"),
    ("postgres", "postgres"),
    ("trainu up", "stack supervisor (relays every service's log)"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_of(proc: psutil.Process) -> str:
    try:
        line = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    return next((name for marker, name in SERVICES if marker in line), "other")


class Sampler(threading.Thread):
    """Every `interval` s: CPU seconds per service, and the ingest runs waiting/in flight."""

    def __init__(self, root: psutil.Process, pgdata: Path, dagster_url: str) -> None:
        super().__init__(daemon=True)
        self.root, self.pgdata, self.dagster_url = root, pgdata, dagster_url
        self.stop = threading.Event()
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (service, cpu seconds so far)
        self.waiting_max = 0
        self.waiting_series: list[tuple[float, int, int]] = []  # (time, waiting, running)
        self.lock = threading.Lock()

    def processes(self) -> list[psutil.Process]:
        """The stack's process tree and the embedded Postgres's (which daemonizes)."""
        roots = [self.root] + [
            p
            for p in psutil.process_iter(["cmdline"])
            if str(self.pgdata) in " ".join(p.info["cmdline"] or ())
        ]
        found = []
        for root in roots:
            with suppress(psutil.NoSuchProcess):  # processes come and go as we look
                found += [root, *root.children(recursive=True)]
        return found

    def first_sample(self) -> bool:
        """Once Dagster has created its storage (the daemon does, at start)."""
        with psycopg.connect(self.dagster_url, autocommit=True) as conn:
            self.sample(conn)
        return True

    def run(self) -> None:
        with psycopg.connect(self.dagster_url, autocommit=True) as conn:
            while not self.stop.wait(1.0):
                self.sample(conn)

    def sample(self, conn: psycopg.Connection) -> None:
        with self.lock:
            for proc in self.processes():
                with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    times = proc.cpu_times()
                    used = times.user + times.system
                    known = self.cpu.get(proc.pid)
                    self.cpu[proc.pid] = (known[0] if known else service_of(proc), used)
        rows = conn.execute(
            "SELECT status, count(*) FROM runs WHERE pipeline_name = 'ingest_webhook_events' "
            "GROUP BY status"
        ).fetchall()
        counts = dict(rows)
        waiting = sum(counts.get(s, 0) for s in WAITING)
        self.waiting_max = max(self.waiting_max, waiting)
        self.waiting_series.append((time.monotonic(), waiting, counts.get("STARTED", 0)))

    def cpu_by_service(self) -> dict[str, float]:
        if not self.is_alive():
            raise SystemExit("the sampler stopped: its figures would be wrong")
        with self.lock:
            totals: dict[str, float] = defaultdict(float)
            for service, used in self.cpu.values():
                totals[service] += used
            return dict(totals)


def running(pgdata: Path) -> embedded.EmbeddedStatus | None:
    status = embedded.status(pgdata)
    return status if status.running else None


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    used = {k: round((after.get(k, 0) - before.get(k, 0)) / seconds, 3) for k in after}
    return {"total": round(sum(used.values()), 3), **dict(sorted(used.items()))}


def wait_for(what: str, check, timeout: float, every: float = 1.0):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if (value := check()) is not None:
                return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def marts_populated(conn: psycopg.Connection, truth: dict) -> dict | None:
    """Every mart has rows and the bookings mart holds the studio's whole history."""
    for mart in MARTS:
        if conn.execute("SELECT to_regclass(%s)", (f"marts.{mart}",)).fetchone()[0] is None:
            return None
        if not conn.execute(f"SELECT EXISTS (SELECT FROM marts.{mart})").fetchone()[0]:  # noqa: S608
            return None
    counted = dict(conn.execute(
        "SELECT status, count(*) FROM marts.bookings WHERE location_id = %s AND NOT is_deleted "
        "GROUP BY status", (SIMULATED_LOCATION,),
    ).fetchall())  # fmt: skip
    expected = truth["liveAppointmentStatus"]
    landed = sum(counted.values()) / max(1, sum(expected.values()))
    if landed < 0.99:  # live activity keeps moving the truth: within a refresh of it
        return None
    return {"bookings": counted, "truth": expected, "share_landed": round(landed, 4)}


def latencies(conn: psycopg.Connection, since: datetime, until: datetime, marker: str) -> dict:
    rows = conn.execute(
        """SELECT extract(epoch FROM processed_at - received_at) FROM raw.webhook_events
           WHERE received_at BETWEEN %s AND %s AND processed_at IS NOT NULL
             AND idempotency_key NOT LIKE %s ORDER BY 1""",
        (since, until, marker),
    ).fetchall()
    pending = conn.execute(
        "SELECT count(*) FROM raw.webhook_events WHERE received_at BETWEEN %s AND %s "
        "AND status = 'pending'", (since, until),
    ).fetchone()[0]  # fmt: skip
    return {"still_pending": pending, **spread("deliveries", [float(r[0]) for r in rows])}


def draft_latencies(conn: psycopg.Connection, since: datetime, until: datetime) -> dict:
    """Webhook received → its draft in the inbox (the draft carries the delivery's
    correlation id), for deliveries received in the window; by purpose too."""
    rows = conn.execute(
        """SELECT m.purpose, extract(epoch FROM m.created_at - w.received_at)
           FROM app.messages m JOIN raw.webhook_events w ON w.correlation_id = m.correlation_id
           WHERE w.received_at BETWEEN %s AND %s AND m.direction = 'outbound'
             AND m.draft_body IS NOT NULL ORDER BY 2""",
        (since, until),
    ).fetchall()
    purposes = Counter(purpose for purpose, _ in rows)
    return {"by_purpose": dict(purposes), **spread("drafts", [float(r[1]) for r in rows])}


def spread(what: str, seconds: list[float]) -> dict:
    """How many, and the latency percentiles of, sorted `seconds`."""
    if len(seconds) < 2:
        return {what: len(seconds)}
    cuts = statistics.quantiles(seconds, n=100)
    return {
        what: len(seconds),
        "p50_s": round(cuts[49], 3),
        "p95_s": round(cuts[94], 3),
        "p99_s": round(cuts[98], 3),
        "max_s": round(seconds[-1], 3),
    }


def burst_bodies(count: int) -> list[bytes]:
    """`count` deliveries GHL would send for a busy studio's changes (contacts, bookings,
    messages, deals), each with its own webhookId, stamped now."""
    now = datetime.now(UTC)
    studio = generate_studio(SIMULATED_LOCATION, clients=400, days=30, seed=777, now=now)
    rng = random.Random(5)  # noqa: S311 - simulated activity, not secrets
    changes = studio.advance(rng, now + timedelta(minutes=30), events=count * 2)
    changes = [c for c in changes if c.entity != "conversation"][:count]
    return [
        orjson.dumps(webhook_body(c, studio, webhook_id=f"bench-burst-{i}", timestamp=now))
        for i, c in enumerate(changes)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--live-seconds", type=float, default=300.0)
    parser.add_argument("--burst", type=int, default=5_000)
    parser.add_argument("--first-start-timeout", type=float, default=600.0)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="trainu-bench-stack-"))
    ports = {name: free_port() for name in ("DAGSTER", "RECEIVER", "STREAMLIT", "SIMULATOR")}
    env = {**os.environ, "TRAINU_STATE_DIR": str(state),
           **{f"TRAINU_{name}_PORT": str(port) for name, port in ports.items()}}  # fmt: skip
    env.pop("TRAINU_DATABASE_URL", None)
    env.pop("TRAINU_GHL_TOKEN", None)
    log = open(state / "stack.log", "wb")  # noqa: SIM115 - open for the stack's whole life
    started_wall, started = datetime.now(UTC), time.monotonic()
    stack = subprocess.Popen([TRAINU, "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    simulator = f"http://127.0.0.1:{ports['SIMULATOR']}"
    receiver = f"http://127.0.0.1:{ports['RECEIVER']}"
    results: dict[str, object] = {"started": started_wall.isoformat(), "cores": psutil.cpu_count()}
    try:
        pgdata = state / "pgdata"
        status = wait_for("the database", lambda: running(pgdata), 120)
        app_url, dagster_url = status.url("trainu"), status.url("trainu_dagster")
        wait_for("the simulator", lambda: httpx.get(simulator + "/_sim/truth").json(), 180)
        sampler = Sampler(psutil.Process(stack.pid), pgdata, dagster_url)
        wait_for("Dagster's storage", sampler.first_sample, 180)
        sampler.start()
        print(f"stack up: {state}", flush=True)

        # 1. first start
        with psycopg.connect(app_url, autocommit=True) as conn:
            populated = wait_for(
                "every mart populated",
                lambda: marts_populated(conn, httpx.get(simulator + "/_sim/truth").json()),
                args.first_start_timeout,
                every=2.0,
            )
        first_start = round(time.monotonic() - started, 1)
        with psycopg.connect(app_url) as conn:
            early = latencies(conn, started_wall, datetime.now(UTC), "wh:bench-burst-%")
        results["first_start"] = {
            "marts_populated_after_s": first_start,
            **populated,
            "webhooks_received_to_applied": early,  # the first ingest run starts meanwhile
        }
        print(f"every mart populated {first_start} s after `trainu up`", flush=True)

        # 2. the live phase
        cpu_before, live_from = sampler.cpu_by_service(), datetime.now(UTC)
        waiting_before = sampler.waiting_max
        time.sleep(args.live_seconds)
        live_until = datetime.now(UTC)
        time.sleep(3)  # let the last deliveries of the phase be applied
        with psycopg.connect(app_url) as conn:
            live = latencies(conn, live_from, live_until, "wh:bench-burst-%")
            drafts = draft_latencies(conn, live_from, live_until)
        with psycopg.connect(dagster_url) as conn:
            runs = dict(conn.execute(
                "SELECT status, count(*) FROM runs WHERE pipeline_name = 'ingest_webhook_events' "
                "AND create_timestamp >= %s GROUP BY status", (live_from.replace(tzinfo=None),),
            ).fetchall())  # fmt: skip
        results["live"] = {
            "seconds": args.live_seconds,
            "webhooks_received_to_applied": live,
            "webhook_received_to_draft": drafts,
            "ingest_runs_created": runs,
            "ingest_runs_waiting_max": max(waiting_before, sampler.waiting_max),
            "cores_used": cores_used(cpu_before, sampler.cpu_by_service(), args.live_seconds),
        }
        print(f"live: {live}; drafts: {drafts}", flush=True)

        # 3. the burst
        key = load_or_create_signing_key(state / "simulator" / "ed25519.pem")
        bodies = burst_bodies(args.burst)
        signed = [(sign_ed25519(body, key), body) for body in bodies]
        cpu_before, burst_started = sampler.cpu_by_service(), time.monotonic()
        # as fast as 16 connections go (the webhook benchmark's client, an unreachable rate)
        posted = asyncio.run(open_loop(receiver, signed, rate=1_000_000, connections=16))
        posted_after = time.monotonic() - burst_started
        with psycopg.connect(app_url, autocommit=True) as conn:

            def all_applied() -> float | None:
                left = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) "
                    "FROM raw.webhook_events WHERE idempotency_key LIKE 'wh:bench-burst-%'"
                ).fetchone()
                return time.monotonic() - burst_started if left == (0, len(bodies)) else None

            applied_after = wait_for("the burst applied", all_applied, 600, every=0.5)
            span = conn.execute(
                "SELECT extract(epoch FROM max(processed_at) - min(received_at)), "
                "count(*) FILTER (WHERE status = 'failed') FROM raw.webhook_events "
                "WHERE idempotency_key LIKE 'wh:bench-burst-%'"
            ).fetchone()
        burst_seconds = time.monotonic() - burst_started
        results["burst"] = {
            "deliveries": len(bodies),
            "answers": posted["statuses"],
            "posted_in_s": round(posted_after, 1),
            "all_applied_after_s": round(applied_after, 1),
            "first_received_to_last_applied_s": round(float(span[0]), 1),
            "failed": span[1],
            "ingest_runs_waiting_max": sampler.waiting_max,
            "cores_used": cores_used(cpu_before, sampler.cpu_by_service(), burst_seconds),
        }
        print(f"burst: {results['burst']}", flush=True)
        sampler.stop.set()
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
        log.close()
    out = save_results("ingest-stack", results)
    print(f"results {out}")


if __name__ == "__main__":
    main()
