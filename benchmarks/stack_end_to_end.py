"""The whole platform as a newcomer runs it: a fresh clone, `make up`, then a studio's
bookings flowing through it.

1. **fresh clone → every service answering**: `git clone` of this repository into a
   temporary directory and `make up` there (free ports; state in the clone's `.trainu`),
   until the Dagster UI has the code location loaded, Streamlit answers its health check,
   the receiver is ready with its database and the GHL simulator answers. The package
   cache is uv's own (warm on a developer's machine); `--cold` gives uv an empty cache, so
   every package is downloaded from the registry (goal ≤ 3 min warm).
2. **webhook → draft in the inbox**: once the simulated studio's history has landed, N
   signed AppointmentCreate deliveries for its clients, a few seconds apart, each timed
   from its POST to the receiver until its confirmation is `pending_approval` in
   `app.messages` (what the inbox lists) (goal p95 ≤ 20 s). The first booking and the
   first approval start the stack's first ingest and send runs: they are reported on their
   own ("first"), the percentiles are the rest.
3. **approval → sent**: each of those drafts approved through the inbox's own `approve`,
   timed until the outbox has sent it to the simulator (goal p95 ≤ 15 s).

Then Ctrl-C (SIGINT), and the stack must exit cleanly.

    uv run python benchmarks/stack_end_to_end.py [--cold] [--bookings 10]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from benchmarks.support import save_results
from tests.receiver_harness import free_port
from trainu_dagster import accounts
from trainu_dagster.db import embedded
from trainu_dagster.ghl.signatures import ED25519_HEADER, sign_ed25519
from trainu_dagster.ghl.simulator.webhooks import load_or_create_signing_key
from trainu_dagster.inbox import decisions
from trainu_dagster.settings import PROJECT_ROOT

LOCATION = "sim-studio"
LOADED = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def wait(check: Callable[[], bool], what: str, proc: subprocess.Popen, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"`make up` exited ({proc.returncode}) before {what}")
        try:
            if check():
                return time.monotonic() - began
        except (httpx.HTTPError, psycopg.Error, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"no {what} within {timeout:.0f} s")


def services_answer(ports: dict[str, int]) -> bool:
    answer = httpx.post(f"http://127.0.0.1:{ports['DAGSTER']}/graphql", json={"query": LOADED},
                        timeout=5).json()  # fmt: skip
    dagster = answer["data"]["workspaceOrError"]["locationEntries"]
    return (
        [(e["name"], e["loadStatus"]) for e in dagster] == [("trainu", "LOADED")]
        and httpx.get(f"http://127.0.0.1:{ports['STREAMLIT']}/_stcore/health").text == "ok"
        and httpx.get(f"http://127.0.0.1:{ports['RECEIVER']}/readyz").status_code == 200
        and httpx.get(f"http://127.0.0.1:{ports['SIMULATOR']}/_sim/stats").status_code == 200
    )


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    at = lambda share: ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": round(at(0.5), 2), "p95": round(at(0.95), 2), "max": round(ordered[-1], 2)}


def booking(conn: psycopg.Connection, client: tuple[str, str]) -> dict[str, Any]:
    contact_id, trainer = client
    start = datetime.now(UTC) + timedelta(days=3, hours=random.randint(0, 48))  # noqa: S311
    calendar = conn.execute("SELECT max(calendar_id) FROM raw.ghl_appointments").fetchone()[0]
    return {"type": "AppointmentCreate", "locationId": LOCATION, "webhookId": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat(), "appointment": {
                "id": f"bench-{uuid.uuid4().hex[:12]}", "calendarId": calendar,
                "contactId": contact_id, "appointmentStatus": "confirmed",
                "assignedUserId": trainer, "title": "PT session", "startTime": start.isoformat(),
                "endTime": (start + timedelta(hours=1)).isoformat(),
                "dateUpdated": datetime.now(UTC).isoformat()}}  # fmt: skip


def flow(clone: Path, ports: dict[str, int], bookings: int) -> dict[str, Any]:
    key = load_or_create_signing_key(clone / ".trainu" / "simulator" / "ed25519.pem")
    url = embedded.status(clone / ".trainu" / "pgdata").url("trainu")
    with psycopg.connect(url, autocommit=True) as conn:
        owner = accounts.User(*conn.execute(
            "SELECT id, location_id, email, role, display_name FROM app.users "
            "WHERE role = 'owner' AND location_id = %s", (LOCATION,)).fetchone())  # fmt: skip
        clients = conn.execute(
            """SELECT c.ghl_contact_id, t.ghl_user_id FROM app.clients c
               JOIN app.trainers t ON t.id = c.trainer_id
               WHERE c.location_id = %s AND c.phone IS NOT NULL AND c.opted_out_at IS NULL
                 AND NOT EXISTS (SELECT FROM app.messages m WHERE m.client_id = c.id
                                 AND m.status IN ('pending_approval', 'approved', 'queued'))
               ORDER BY random() LIMIT %s""",
            (LOCATION, bookings),
        ).fetchall()
        to_draft, to_send, skipped = [], [], []
        for client in clients:
            body = orjson.dumps(booking(conn, client))
            appointment = orjson.loads(body)["appointment"]["id"]
            posted = time.monotonic()
            httpx.post(f"http://127.0.0.1:{ports['RECEIVER']}/webhooks/ghl", content=body,
                       headers={ED25519_HEADER: sign_ed25519(body, key),
                                "content-type": "application/json"}).raise_for_status()  # fmt: skip
            draft = None
            while draft is None and time.monotonic() - posted < 120:
                draft = conn.execute(
                    """SELECT id, body, updated_at, status FROM app.messages
                       WHERE trigger->>'appointment_id' = %s""",
                    (appointment,),
                ).fetchone()
                time.sleep(0.05)
            if draft is None or draft[3] != "pending_approval":  # e.g. needs_manual, or none
                skipped.append(draft[3] if draft else "no draft within 120 s")
                continue
            to_draft.append(time.monotonic() - posted)
            with conn.transaction():
                done = decisions.approve(conn, owner, decisions.Loaded(draft[0], draft[2]),
                                         draft[1], now=datetime.now(UTC))  # fmt: skip
            assert done.ok, done.detail
            approved = time.monotonic()
            while conn.execute("SELECT status FROM app.messages WHERE id = %s",
                               (draft[0],)).fetchone()[0] not in ("sent", "delivered"):  # fmt: skip
                if time.monotonic() - approved > 120:
                    raise SystemExit(f"{draft[0]} not sent within 120 s")
                time.sleep(0.05)
            to_send.append(time.monotonic() - approved)
            time.sleep(random.uniform(2, 6))  # noqa: S311 - a studio's pace
    # the first of each waited for its run to start (nothing was in flight yet): reported
    # on its own, the rest are what a studio sees while the stack is up
    return {"bookings": len(to_draft), "skipped": skipped,
            "first_webhook_to_draft_s": round(to_draft[0], 2),
            "first_approval_to_sent_s": round(to_send[0], 2),
            "webhook_to_draft_s": percentiles(to_draft[1:]),
            "approval_to_sent_s": percentiles(to_send[1:])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="uv with an empty package cache")
    parser.add_argument("--bookings", type=int, default=21, help="the first one, then 20")
    args = parser.parse_args()
    results: dict[str, Any] = {"cold": args.cold}
    with tempfile.TemporaryDirectory(prefix="trainu-fresh-clone-") as work:
        clone = Path(work) / "trainu"
        ports = {name: free_port() for name in ("DAGSTER", "STREAMLIT", "RECEIVER", "SIMULATOR")}
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TRAINU_", "DAGSTER_", "VIRTUAL_ENV"))}  # fmt: skip
        env |= {f"TRAINU_{name}_PORT": str(port) for name, port in ports.items()}
        if args.cold:
            env["UV_CACHE_DIR"] = str(Path(work) / "uv-cache")
        began = time.monotonic()
        subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
        log = (Path(work) / "make-up.log").open("wb")
        proc = subprocess.Popen(["make", "up"], cwd=clone, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait(lambda: services_answer(ports), "every service answering", proc, 900)
            results["clone_to_every_service_s"] = round(time.monotonic() - began, 1)
            print(f"fresh clone → every service answering: {results['clone_to_every_service_s']} s")
            url = lambda: embedded.status(clone / ".trainu" / "pgdata").url("trainu")  # noqa: E731

            def history_landed() -> bool:
                with psycopg.connect(url()) as conn:
                    return conn.execute("SELECT count(*) FROM app.clients").fetchone()[0] > 0

            wait(history_landed, "the simulated studio's clients", proc, 600)
            results["clone_to_history_s"] = round(time.monotonic() - began, 1)
            results |= flow(clone, ports, args.bookings)
            print(f"webhook → draft {results['webhook_to_draft_s']}; approval → sent "
                  f"{results['approval_to_sent_s']}")  # fmt: skip
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            results["stopped_rc"] = proc.wait(timeout=120)
    results["load"] = os.getloadavg()
    print(f"results {save_results('stack-end-to-end', results)}")


if __name__ == "__main__":
    main()
