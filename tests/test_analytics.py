"""Product events reach PostHog through the official client, redacted, and never at the
expense of `app.events`.

PostHog itself is off this machine, so a local server speaks its capture protocol the way
the installed client uses it: `POST {host}/batch/` with a JSON body (gzip-encoded when the
client compresses) of `{"api_key", "batch": [event, ...], "sent_at", ...}`; any 200 is
success, anything else an `APIError` the client retries and then hands to `on_error`.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trainu_dagster.db.server import Database
from trainu_dagster.observability.analytics import ProductAnalytics
from trainu_dagster.observability.product_events import emit_event
from trainu_dagster.settings import Settings


class FakePostHog:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.host = ""
        self._arrived = threading.Condition()
        self.app = Starlette(routes=[Route("/batch/", self._batch, methods=["POST"])])

    async def _batch(self, request: Request) -> JSONResponse:
        raw = await request.body()
        encoding = request.headers.get("content-encoding")
        body = json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)
        if not body.get("api_key"):
            return JSONResponse({"detail": "API key is missing"}, status_code=401)
        with self._arrived:
            self.requests.append({"encoding": encoding, "body": body})
            self._arrived.notify_all()
        return JSONResponse({"status": 1})

    def events(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        def received() -> list[dict[str, Any]]:
            return [event for request in self.requests for event in request["body"]["batch"]]

        with self._arrived:
            self._arrived.wait_for(lambda: len(received()) >= count, timeout)
            return received()


@pytest.fixture(scope="module")
def posthog_server() -> Iterator[FakePostHog]:
    fake = FakePostHog()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(fake.app, log_config=None, lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake PostHog did not start"
        time.sleep(0.01)
    fake.host = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield fake
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def posthog(posthog_server: FakePostHog) -> FakePostHog:
    posthog_server.requests.clear()
    return posthog_server


@pytest.fixture
def analytics(posthog: FakePostHog) -> Iterator[ProductAnalytics]:
    client = ProductAnalytics("phc_test_key", host=posthog.host)
    yield client
    client.shutdown()


@pytest.fixture
def posthog_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "POSTHOG_API_KEY",
        "TRAINU_POSTHOG_API_KEY",
        "POSTHOG_HOST",
        "TRAINU_POSTHOG_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_means_no_analytics(posthog_env: pytest.MonkeyPatch, key: str | None) -> None:
    if key is not None:
        posthog_env.setenv("POSTHOG_API_KEY", key)
    assert ProductAnalytics.from_settings(Settings(_env_file=None)) is None


def test_from_settings_sends_with_the_configured_key_and_host(
    posthog_env: pytest.MonkeyPatch, posthog: FakePostHog
) -> None:
    posthog_env.setenv("POSTHOG_API_KEY", "phc_from_env")
    posthog_env.setenv("POSTHOG_HOST", posthog.host)
    client = ProductAnalytics.from_settings(Settings(_env_file=None))
    assert client is not None
    client.capture("sync_ok", distinct_id="L1", properties={"n": 3})
    client.shutdown()
    [event] = posthog.events(1)
    assert posthog.requests[0]["body"]["api_key"] == "phc_from_env"
    assert (event["event"], event["distinct_id"], event["properties"]["n"]) == ("sync_ok", "L1", 3)


def test_capture_delivers_the_event_with_pii_redacted(
    analytics: ProductAnalytics, posthog: FakePostHog
) -> None:
    contact_id = str(uuid4())
    analytics.capture(
        "draft_sent",
        distinct_id="ve9EPM428h8vShlRW1KT",
        properties={
            "contact_id": contact_id,
            "channel": "sms",
            "latency_ms": 412,
            "sent_at": "2024-05-01T12:30:45Z",
            "note": "texted +1 (415) 555-0123, cc jane@example.com",
            "first_name": "Jane",
            "recipient": {"phones": ["415-555-0123"], "email": "jane@example.com"},
            "error": ValueError("bounced for jane@example.com"),
        },
    )
    analytics.flush()
    [event] = posthog.events(1)
    assert posthog.requests[0]["encoding"] == "gzip"
    assert posthog.requests[0]["body"]["api_key"] == "phc_test_key"
    assert event["event"] == "draft_sent"
    assert event["distinct_id"] == "ve9EPM428h8vShlRW1KT"
    assert {key: event["properties"][key] for key in ("contact_id", "channel", "latency_ms")} == {
        "contact_id": contact_id,
        "channel": "sms",
        "latency_ms": 412,
    }
    assert event["properties"]["sent_at"] == "2024-05-01T12:30:45Z"
    assert event["properties"]["note"] == "texted [phone], cc [email]"
    assert event["properties"]["first_name"] == "[redacted]"
    assert event["properties"]["recipient"] == {"phones": ["[phone]"], "email": "[redacted]"}
    assert event["properties"]["error"] == "bounced for [email]"
    assert "jane" not in json.dumps(posthog.requests[0]["body"]).lower()


@pytest.fixture(scope="module")
def db(database: Database) -> Database:
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name) VALUES ('L1', 'Lift Lab')")
    return database


def stored(db: Database, event_id: int) -> tuple[Any, ...]:
    with db.connect() as conn:
        row = conn.execute(
            """SELECT event_type, actor, location_id, actor_user_id, entity_type, entity_id,
                      correlation_id, properties
               FROM app.events WHERE id = %s""",
            (event_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_emit_event_records_the_row_and_forwards_it(
    db: Database, analytics: ProductAnalytics, posthog: FakePostHog
) -> None:
    user_id, correlation_id = uuid4(), uuid4()
    with db.connect() as conn:
        event_id = emit_event(
            conn,
            "draft_approved",
            actor="user:owner",
            analytics=analytics,
            location_id="L1",
            actor_user_id=user_id,
            entity_type="message_draft",
            entity_id="d-42",
            correlation_id=correlation_id,
            properties={"edited": True, "to": "+14155550123"},
        )
    assert stored(db, event_id) == (
        "draft_approved",
        "user:owner",
        "L1",
        user_id,
        "message_draft",
        "d-42",
        correlation_id,
        {"edited": True, "to": "+14155550123"},
    )
    analytics.flush()
    [event] = posthog.events(1)
    assert event["event"] == "draft_approved"
    assert event["distinct_id"] == "L1"
    properties = event["properties"]
    assert {key: properties[key] for key in ("edited", "to")} == {"edited": True, "to": "[phone]"}
    assert properties["event_id"] == event_id
    assert properties["actor"] == "user:owner"
    assert properties["actor_user_id"] == str(user_id)
    assert (properties["entity_type"], properties["entity_id"]) == ("message_draft", "d-42")
    assert properties["correlation_id"] == str(correlation_id)


def test_events_without_a_location_are_attributed_to_the_actor(
    db: Database, analytics: ProductAnalytics, posthog: FakePostHog
) -> None:
    with db.connect() as conn:
        event_id = emit_event(conn, "run_failed", actor="system:dagster", analytics=analytics)
    analytics.flush()
    [event] = posthog.events(1)
    assert (event["event"], event["distinct_id"]) == ("run_failed", "system:dagster")
    assert event["properties"]["event_id"] == event_id
    assert "location_id" not in event["properties"]
    assert "correlation_id" not in event["properties"]


def test_emit_event_without_analytics_only_records(db: Database, posthog: FakePostHog) -> None:
    with db.connect() as conn:
        event_id = emit_event(conn, "sync_ok", actor="system:ingest", location_id="L1")
    assert stored(db, event_id)[:3] == ("sync_ok", "system:ingest", "L1")
    assert posthog.events(1, timeout=0.5) == []


def test_posthog_down_never_reaches_the_caller_and_the_row_still_lands(
    db: Database, stderr_lines: Any
) -> None:
    down = ProductAnalytics("phc_test_key", host=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    with db.connect() as conn:
        event_id = emit_event(
            conn, "sync_ok", actor="system:ingest", analytics=down, location_id="L1"
        )
    down.flush()
    down.shutdown()
    assert stored(db, event_id)[:3] == ("sync_ok", "system:ingest", "L1")
    failures = [
        line for line in stderr_lines() if line["event"] == "product analytics upload failed"
    ]
    assert len(failures) == 1
    assert failures[0]["level"] == "warning"
    assert failures[0]["events"] == 1
