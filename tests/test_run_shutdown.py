"""A long-lived run told to stop ends its pass and succeeds, instead of failing as
"interrupted": `trainu up`'s Ctrl-C and every deploy stop the ingest and send runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from trainu_dagster.db.server import Database
from trainu_dagster.settings import PROJECT_ROOT

LISTENING = {"ingest": "LISTEN trainu_webhook_events", "send": "LISTEN trainu_outbox"}


def waiting_for_work(database: Database, job: str) -> bool:
    """The run sleeps on its notification channel: its listener's last statement."""
    with database.connect() as conn:
        return conn.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = %s AND query = %s)",
            (database.name, LISTENING[job]),
        ).fetchone()[0]


@pytest.mark.parametrize("job", ["ingest", "send"])
def test_a_run_told_to_stop_while_it_waits_ends_at_once_as_a_success(
    database: Database, job: str
) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.stopped_run", job, database.url(), "http://127.0.0.1:9"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not waiting_for_work(database, job):
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "the run never started waiting"
            time.sleep(0.1)
        asked = time.monotonic()
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
        stopped_after = time.monotonic() - asked
    finally:
        run.kill()
    assert run.returncode == 0, output
    assert "success=True" in output, output
    assert stopped_after < 5  # well within `trainu up`'s grace before SIGKILL
