"""The whole platform as a newcomer runs it: a fresh clone, `make up`, then a studio's
bookings flowing through it.

1. **fresh clone → every service answering**: `git clone` of this repository into a
   temporary directory and `make up` there (free ports; state in the clone's `.trainu`),
   until the Dagster UI has the code location loaded, Streamlit answers its health check,
   the receiver is ready with its database and the GHL simulator answers. The package
   cache is uv's own (warm on a developer's machine); `--cold` gives uv an empty cache, so
   every package is downloaded from the registry (goal ≤ 3 min warm).
2. **first run populated**: seconds from `make up` until what a newcomer looks at first
   holds the simulated studio's history: every mart the owner's dashboard reads, the
   clients' risk insights, and drafts pending approval (goal ≤ 3 min).
3. **webhook → draft in the inbox**: once the simulated studio's history has landed, N
   signed AppointmentCreate deliveries for its clients, a few seconds apart, each timed
   from its POST to the receiver until its confirmation is `pending_approval` in
   `app.messages` (what the inbox lists) (goal p95 ≤ 20 s). The first booking and the
   first approval start the stack's first ingest and send runs: they are reported on their
   own ("first"), the percentiles are the rest.
4. **approval → sent**: each of those drafts approved through the inbox's own `approve`,
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from benchmarks.support import save_results
from ghl_simulator import SIMULATED_LOCATION as LOCATION
from tests import stack_flow
from tests.receiver_harness import free_port
from trainu_dagster.db import embedded
from trainu_dagster.settings import PROJECT_ROOT

# What the owner's dashboard reads (trainu_dagster/reporting/dashboards.py), then insights
# and the inbox: each must hold rows of the simulated studio.
DASHBOARD_MARTS = ("show_rate_by_location_weekly", "show_rate_by_trainer_weekly", "bookings",
                   "risk_bands_daily", "message_funnel", "client_retention")  # fmt: skip
FIRST_LOOK = {
    "dashboards": [sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE location_id = %s)").format(
        sql.Identifier("marts", mart)) for mart in DASHBOARD_MARTS],
    "insights": [sql.SQL("SELECT EXISTS (SELECT FROM app.insights WHERE location_id = %s)")],
    "pending_drafts": [sql.SQL("SELECT EXISTS (SELECT FROM app.messages WHERE location_id = %s "
                               "AND status = 'pending_approval')")],
}  # fmt: skip
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


def populated(url: str, checks: list[sql.Composable]) -> bool:
    with psycopg.connect(url) as conn:
        return all(conn.execute(check, (LOCATION,)).fetchone()[0] for check in checks)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    at = lambda share: ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": round(at(0.5), 2), "p95": round(at(0.95), 2), "max": round(ordered[-1], 2)}


def flow(clone: Path, ports: dict[str, int], bookings: int) -> dict[str, Any]:
    receiver = f"http://127.0.0.1:{ports['RECEIVER']}"
    url = embedded.status(clone / ".trainu" / "pgdata").url("trainu")
    with psycopg.connect(url, autocommit=True) as conn:
        stack_flow.sending_at_any_hour(conn)  # measured at any hour, not held until 08:00
        to_draft, to_send, skipped, unsent = [], [], [], []
        booked: list[str] = []
        for _ in range(bookings):
            # chosen just before booking: the live studio keeps changing (deletes, DND,
            # bookings of its own that take the client's one open confirmation)
            [client] = stack_flow.reachable_clients(conn, 1, excluding=booked)
            booked.append(client[0])
            posted = time.monotonic()
            appointment = stack_flow.book(conn, client, receiver, clone / ".trainu")
            draft = stack_flow.draft_for(conn, appointment, timeout=120)
            if draft is None and stack_flow.opted_out(conn, client[0]):
                skipped.append("client opted out meanwhile")  # by the live studio's webhooks
                continue
            if draft is None or draft[3] != "pending_approval":  # e.g. needs_manual, or none
                skipped.append(draft[3] if draft else "no draft within 120 s")
                continue
            to_draft.append(time.monotonic() - posted)
            stack_flow.approve(conn, draft)
            approved = time.monotonic()
            if stack_flow.sent(conn, draft[0], timeout=120) is None:
                unsent.append(conn.execute(
                    """SELECT status, held_until, held_reason, suppressed_reason, failed_reason
                       FROM app.messages WHERE id = %s""", (draft[0],)).fetchone())  # fmt: skip
                continue
            to_send.append(time.monotonic() - approved)
            time.sleep(random.uniform(2, 6))  # noqa: S311 - a studio's pace
    # the first of each waited for its run to start (nothing was in flight yet): reported
    # on its own, the rest are what a studio sees while the stack is up
    return {"bookings": len(to_draft), "skipped": skipped, "unsent": [repr(u) for u in unsent],
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
        up_started = time.monotonic()
        proc = subprocess.Popen(["make", "up"], cwd=clone, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait(lambda: services_answer(ports), "every service answering", proc, 900)
            results["clone_to_every_service_s"] = round(time.monotonic() - began, 1)
            results["up_to_every_service_s"] = round(time.monotonic() - up_started, 1)
            print(f"fresh clone → every service answering: {results['clone_to_every_service_s']} s")
            url = lambda: embedded.status(clone / ".trainu" / "pgdata").url("trainu")  # noqa: E731

            def history_landed() -> bool:
                with psycopg.connect(url()) as conn:
                    return conn.execute("SELECT count(*) FROM app.clients").fetchone()[0] > 0

            wait(history_landed, "the simulated studio's clients", proc, 600)
            results["clone_to_history_s"] = round(time.monotonic() - began, 1)
            for what, checks in FIRST_LOOK.items():
                wait(lambda checks=checks: populated(url(), checks), what, proc, 600)
                results[f"up_to_{what}_s"] = round(time.monotonic() - up_started, 1)
                print(f"make up → {what}: {results[f'up_to_{what}_s']} s")
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
