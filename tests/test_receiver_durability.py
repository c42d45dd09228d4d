"""Database stopped mid-stream: 429 while down, nothing acknowledged is lost, redeliveries
land exactly once. Uses a Postgres server of its own so it can be stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url

from tests.receiver_harness import Signer, delivery, post, receiver_settings, running_receiver
from trainu_dagster.db import embedded, migrate
from trainu_dagster.db.server import Database, ensure_database_exists


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, Database]]:
    pgdata = tmp_path / "pg"
    status = embedded.start(pgdata)
    database = Database(make_url(status.url("trainu")), "trainu_dagster", {})
    ensure_database_exists(database, "trainu")
    migrate.upgrade(database)
    yield pgdata, database
    embedded.stop(pgdata)


def webhook_ids(database: Database) -> list[str]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute("SELECT payload->>'webhookId' FROM raw.webhook_events")]


def test_database_down_mid_stream_loses_nothing(own_server, tmp_path: Path) -> None:
    pgdata, database = own_server
    signer = Signer()
    settings = receiver_settings(database.url(), signer, tmp_path)
    bodies = [
        delivery({"type": "ContactUpdate", "locationId": "loc-1", "id": f"c-{i}"})
        for i in range(60)
    ]
    acked, deferred = [], []
    with running_receiver(settings) as base:
        for i, body in enumerate(bodies):
            if i == 20:
                embedded.stop(pgdata)
                assert httpx.get(base + "/readyz").status_code == 503
            if i == 40:
                embedded.start(pgdata)
            response = post(base, body, signer.headers(body))
            assert response.status_code in (200, 429), response.text
            (acked if response.status_code == 200 else deferred).append(body)
            if response.status_code == 429:
                assert response.headers["retry-after"]
        assert len(deferred) >= 20, "every delivery while the database was down must be deferred"
        assert httpx.get(base + "/readyz").status_code == 200

        # Nothing acknowledged is missing after the restart.
        stored = set(webhook_ids(database))
        assert {orjson.loads(b)["webhookId"] for b in acked} <= stored

        # GHL redelivers each 429'd delivery; redelivered and re-sent events land once.
        for body in deferred + acked[:5]:
            assert post(base, body, signer.headers(body)).status_code == 200
    ids = webhook_ids(database)
    assert sorted(ids) == sorted(orjson.loads(b)["webhookId"] for b in bodies)
    with database.connect() as conn:
        retry_events = conn.execute(
            "SELECT sum((properties->>'deferred_deliveries')::int) FROM app.events "
            "WHERE event_type = 'sync_retry'"
        ).fetchone()[0]
    assert retry_events == len(deferred)


def deferral_periods(database: Database) -> list[tuple[int]]:
    with database.connect() as conn:
        return conn.execute("SELECT deliveries FROM ops.webhook_deferrals").fetchall()


def wait_until(check, timeout: float = 20) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_deferred_delivery_may_come_back_after_the_replay_window_to_any_receiver(
    own_server, tmp_path: Path
) -> None:
    """GHL redelivers a 429'd body as it was, old timestamp and all: this receiver, another
    replica and a restarted one accept it; an old body never deferred is still a replay."""
    pgdata, database = own_server
    signer = Signer()
    settings = receiver_settings(database.url(), signer, tmp_path, webhook_replay_window_seconds=2)
    replayed = delivery({"type": "ContactUpdate", "locationId": "loc-1", "id": "replayed"})
    time.sleep(5)  # sent well before the outage
    deferred = [delivery({"type": "ContactUpdate", "locationId": "loc-1", "id": f"late-{i}"})
                for i in range(2)]  # fmt: skip
    with running_receiver(settings) as base:
        embedded.stop(pgdata)
        for body in deferred:
            assert post(base, body, signer.headers(body)).status_code == 429
        embedded.start(pgdata)
        time.sleep(2.5)  # every body is now older than the window
        assert post(base, deferred[0], signer.headers(deferred[0])).status_code == 200
        assert post(base, replayed, signer.headers(replayed)).status_code == 401
        wait_until(lambda: deferral_periods(database) == [(2,)])  # one period, two 429s
    with running_receiver(settings) as another:  # another replica, or this one restarted
        assert post(another, deferred[1], signer.headers(deferred[1])).status_code == 200
        assert post(another, replayed, signer.headers(replayed)).status_code == 401
    assert sorted(webhook_ids(database)) == sorted(orjson.loads(b)["webhookId"] for b in deferred)


def test_a_delivery_refused_by_the_rate_limit_is_taken_when_ghl_redelivers_it(
    own_server, tmp_path: Path
) -> None:
    _, database = own_server
    signer = Signer()
    settings = receiver_settings(database.url(), signer, tmp_path, webhook_replay_window_seconds=2,
                                 webhook_rate_limit_per_minute=3)  # fmt: skip
    bodies = [delivery({"type": "ContactUpdate", "locationId": "loc-1", "id": f"burst-{i}"})
              for i in range(5)]  # fmt: skip
    with running_receiver(settings) as base:
        answers = [post(base, body, signer.headers(body)).status_code for body in bodies]
        assert answers == [200, 200, 200, 429, 429]
        wait_until(lambda: deferral_periods(database) == [(2,)])
    time.sleep(2.5)  # GHL comes back later (here: past the window), to any replica
    with running_receiver(settings) as another:
        for body in bodies[3:]:
            assert post(another, body, signer.headers(body)).status_code == 200
    assert sorted(webhook_ids(database)) == sorted(orjson.loads(b)["webhookId"] for b in bodies)
