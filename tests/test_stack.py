"""The README's quick start (`make up`) on a fresh state directory: everything comes up, a
newcomer signs in with the printed account and a booking's approved confirmation reaches
the simulator; Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from playwright.sync_api import expect

from tests import stack_flow
from tests.browser_harness import chromium, new_page, wait_for_run
from trainu_dagster.db import embedded
from trainu_dagster.settings import PROJECT_ROOT

pytestmark = pytest.mark.stack

TRAINU = str(Path(sys.executable).parent / "trainu")
DEMO_OWNER = re.compile(r"\|\s+owner\s+(\S+@\S+)\s+(\S+)\s+\((.+)\)$", re.M)
LONG_LIVED = ("ingest_webhook_events", "send_messages")
WORKSPACE_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    check: Callable[[], bool], what: str, proc: subprocess.Popen, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`trainu up` exited early while waiting for {what}"
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.dagster_port, self.streamlit_port = free_port(), free_port()
        self.receiver_port, self.simulator_port = free_port(), free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("TRAINU_DATABASE_URL", "TRAINU_GHL_TOKEN")
        }
        self.env = env | {
            "TRAINU_STATE_DIR": str(state_dir),
            "TRAINU_DAGSTER_PORT": str(self.dagster_port),
            "TRAINU_STREAMLIT_PORT": str(self.streamlit_port),
            "TRAINU_RECEIVER_PORT": str(self.receiver_port),
            "TRAINU_SIMULATOR_PORT": str(self.simulator_port),
        }
        self.log = state_dir.parent / f"up-{time.time_ns()}.log"

    def start(self) -> subprocess.Popen:
        with open(self.log, "w") as log:
            return subprocess.Popen(
                quick_start_command(),
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_ready(self, proc: subprocess.Popen) -> None:
        def dagster_loaded() -> bool:
            response = httpx.post(
                f"http://127.0.0.1:{self.dagster_port}/graphql",
                json={"query": WORKSPACE_QUERY},
                timeout=5,
            )
            entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
            return [(e["name"], e["loadStatus"]) for e in entries] == [("trainu", "LOADED")]

        def streamlit_healthy() -> bool:
            response = httpx.get(
                f"http://127.0.0.1:{self.streamlit_port}/_stcore/health", timeout=5
            )
            return response.text == "ok"

        def receiver_ready() -> bool:
            url = f"http://127.0.0.1:{self.receiver_port}/readyz"
            return httpx.get(url, timeout=5).json() == {"status": "ready"}

        wait_for(dagster_loaded, "the Dagster UI with the trainu code location", proc)
        wait_for(streamlit_healthy, "Streamlit", proc)
        wait_for(receiver_ready, "the webhook receiver, ready with its database", proc)

        def simulated_webhooks_landed() -> bool:
            with psycopg.connect(self.database_url()) as conn:
                return (
                    conn.execute(
                        "SELECT count(*) FROM raw.webhook_events WHERE location_id = 'sim-studio'"
                    ).fetchone()[0]
                    > 0
                )

        # Without a GHL token the stack runs the simulator, whose signed webhooks the
        # receiver must accept with the key the stack configured.
        wait_for(simulated_webhooks_landed, "signed webhooks from the GHL simulator", proc)

    def database_url(self, database: str = "trainu") -> str:
        return embedded.status(self.state_dir / "pgdata").url(database)

    def runs(self, *, status: str | None = None, ids: list[str] | None = None) -> dict[str, str]:
        """The long-lived runs (ingest, send) in Dagster's run storage: id → status."""
        with psycopg.connect(self.database_url("trainu_dagster")) as conn:
            return dict(conn.execute(
                """SELECT run_id, status FROM runs
                   WHERE pipeline_name = ANY(%s) AND (%s::text IS NULL OR status = %s)
                     AND (%s::text[] IS NULL OR run_id = ANY(%s))""",
                (list(LONG_LIVED), status, status, ids, ids),
            ).fetchall())  # fmt: skip


def quick_start_command() -> list[str]:
    """The command the README's quick start runs in the clone (after `git clone`, `cd`)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```\n(.*?)```", readme, re.S)
    assert block, "the README has no quick start"
    commands = block.group(1).strip().splitlines()
    assert commands[0].startswith("git clone ") and commands[1].startswith("cd ")
    assert commands[2:] == ["make up"], commands
    return commands[2].split()


def stop_with_ctrl_c(stack: Stack, proc: subprocess.Popen) -> list[psutil.Process]:
    """Ctrl-C in the terminal: SIGINT to the foreground process group (make, uv, trainu)."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 5  # webserver, daemon, streamlit, receiver, simulator (+ helpers)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) in (0, -signal.SIGINT)  # make dies of the SIGINT it got
    log = stack.log.read_text()
    assert "] Error" not in log and "Traceback" not in log, log[-3000:]  # trainu up ended 0
    return tree


def sign_in_with_the_printed_demo_owner(stack: Stack) -> None:
    """What a newcomer does first: the owner account the console printed, in a browser."""
    printed = DEMO_OWNER.search(stack.log.read_text())
    assert printed, f"no demo owner account on the console:\n{stack.log.read_text()[-3000:]}"
    email, password, name = printed.groups()
    with chromium() as browser, new_page(browser) as page:
        page.goto(f"http://127.0.0.1:{stack.streamlit_port}/")
        page.get_by_role("textbox", name="Email").fill(email)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=f"Welcome, {name}")).to_be_visible()
        wait_for_run(page)
        expect(page.get_by_role("link", name="Dashboard")).to_be_visible()


def a_booking_is_confirmed_in_the_inbox_and_sent_to_the_simulator_once(
    stack: Stack, proc: subprocess.Popen
) -> None:
    """What a newcomer does next: a booking's confirmation waits in the inbox; approved, it
    goes to the simulator (GHL) by the stack's own sensor and send run, and the console
    shows it arrive, once."""
    with psycopg.connect(stack.database_url(), autocommit=True) as conn:
        stack_flow.sending_at_any_hour(conn)
        receiver = f"http://127.0.0.1:{stack.receiver_port}"
        for _ in range(3):  # the live studio's own webhooks may opt the client out meanwhile
            [client] = stack_flow.reachable_clients(conn, 1)
            booked = stack_flow.book(conn, client, receiver, stack.state_dir)
            draft = stack_flow.draft_for(conn, booked, timeout=90)
            if draft is not None or not stack_flow.opted_out(conn, client[0]):
                break
        assert draft is not None and draft[3] == "pending_approval", draft
        stack_flow.approve(conn, draft)
        ghl_id = stack_flow.sent(conn, draft[0], timeout=120)
    assert ghl_id, "the approved confirmation was not sent"

    def arrivals() -> list[str]:
        return [line for line in stack.log.read_text().splitlines()
                if "message_sent_through_api" in line]  # fmt: skip

    wait_for(lambda: bool(arrivals()), "the simulator's console line", proc, timeout=30)
    assert len(arrivals()) == 1 and f"message_id={ghl_id}" in arrivals()[0], arrivals()


def test_stack_runs_stops_cleanly_and_restarts_on_the_same_data(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "state")
    serving: dict[str, str] = {}
    for attempt in (1, 2):
        proc = stack.start()
        try:
            stack.wait_until_ready(proc)
            with psycopg.connect(stack.database_url()) as conn:
                if attempt == 1:
                    conn.execute(
                        "INSERT INTO app.locations (location_id, name) VALUES ('L1', 'Kept')"
                    )
                else:
                    rows = conn.execute("SELECT name FROM app.locations ORDER BY 1").fetchall()
                    assert rows == [("Kept",), ("Simulated studio",)], (
                        "data written by the first run must survive"
                    )
                    # the simulator resumed its studio, as GHL keeps one: no second world
                    console = stack.log.read_text()
                    assert "simulator_resumed" in console
                    assert "simulator_generated" not in console
            if attempt == 1:
                sign_in_with_the_printed_demo_owner(stack)
                a_booking_is_confirmed_in_the_inbox_and_sent_to_the_simulator_once(stack, proc)
                # the simulator's webhooks keep an ingest run serving: Ctrl-C stops it
                wait_for(lambda: bool(stack.runs(status="STARTED")), "a serving run", proc)
                serving = stack.runs(status="STARTED")
                second = subprocess.run(
                    [TRAINU, "up"], env=stack.env, capture_output=True, text=True, timeout=60
                )
                assert second.returncode == 1
                assert "already running" in second.stderr
            else:  # ...and it ended its pass and succeeded, instead of failing interrupted
                assert set(stack.runs(ids=list(serving)).values()) == {"SUCCESS"}
        finally:
            if proc.poll() is None:
                tree = stop_with_ctrl_c(stack, proc)
        leftovers = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert leftovers == [], f"orphans after Ctrl-C: {leftovers}\n{stack.log.read_text()}"
        assert not embedded.status(stack.state_dir / "pgdata").running
        strays = [
            p
            for p in psutil.process_iter(["cmdline"])
            if str(stack.state_dir) in " ".join(p.info["cmdline"] or [])
        ]
        assert strays == []
        assert "embedded database stopped" in stack.log.read_text()
    # the console is for people; each service's whole output is in its log file
    console, daemon_log = stack.log.read_text(), stack.state_dir / "logs" / "dagster-daemon.log"
    assert "Checking for new runs for sensor" in daemon_log.read_text()
    assert "Checking for new runs for sensor" not in console
    assert '"level":' not in console  # no raw JSON records
    assert "| INFO    simulator_activity changes=" in console  # a JSON record, made a line
    assert "BetaWarning" not in console
