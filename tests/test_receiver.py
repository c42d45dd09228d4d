"""The webhook receiver over real HTTP against the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.receiver_harness import (
    Signer,
    delivery,
    post,
    receiver_settings,
    running_receiver,
)
from trainu_dagster.db.server import Database
from trainu_dagster.ingest.landing import LANDED_CHANNEL
from trainu_dagster.ingest.receiver import Answer, WebhookFrontDoor

CONTACT = {
    "type": "ContactCreate",
    "locationId": "loc-1",
    "id": "contact-1",
    "firstName": "Jane",
    "email": "jane@example.com",
}


def rows(database: Database, sql: str, *params: object) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(sql, params).fetchall()


def rejections(database: Database) -> dict[str, int]:
    return dict(
        rows(database, "SELECT reason, sum(count)::int FROM ops.webhook_rejections GROUP BY reason")
    )


def test_health_and_readiness(receiver_url: str) -> None:
    assert httpx.get(receiver_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(receiver_url + "/readyz").json() == {"status": "ready"}


@pytest.mark.parametrize("scheme", ["ed25519", "rsa-sha256"])
def test_signed_delivery_is_committed_before_the_answer(
    receiver_url: str, signer: Signer, database: Database, scheme: str
) -> None:
    body = delivery(CONTACT)
    response = post(receiver_url, body, signer.headers(body, scheme))
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    stored = rows(
        database,
        """SELECT body, payload->>'id', signature_scheme, correlation_id::text,
                                      location_id, event_type, entity_id, status
                               FROM raw.webhook_events WHERE correlation_id = %s""",
        response.json()["correlation_id"],
    )
    assert stored == [
        (
            body,
            "contact-1",
            scheme,
            response.json()["correlation_id"],
            "loc-1",
            "ContactCreate",
            "contact-1",
            "pending",
        )
    ]


def test_the_ingest_run_is_woken_once_a_delivery_is_stored(
    receiver_url: str, signer: Signer, database: Database
) -> None:
    """The receiver notifies after the landing commit, not inside it (migration 0023)."""
    with database.connect(autocommit=True) as listener:
        listener.execute(f"LISTEN {LANDED_CHANNEL}")
        body = delivery(CONTACT | {"id": "contact-wake"})
        assert post(receiver_url, body, signer.headers(body)).status_code == 200
        woken = [n.channel for n in listener.notifies(timeout=10, stop_after=1)]
        stored = listener.execute(
            "SELECT count(*) FROM raw.webhook_events WHERE entity_id = 'contact-wake'"
        ).fetchone()
    assert woken == [LANDED_CHANNEL]
    assert stored == (1,)


def test_the_same_delivery_five_times_is_one_row(
    receiver_url: str, signer: Signer, database: Database
) -> None:
    body = delivery(CONTACT | {"id": "contact-dup"})
    statuses = [post(receiver_url, body, signer.headers(body)).json()["status"] for _ in range(5)]
    assert statuses == ["accepted"] + ["duplicate"] * 4
    assert rows(
        database, "SELECT count(*) FROM raw.webhook_events WHERE entity_id = 'contact-dup'"
    ) == [(1,)]


def test_concurrent_duplicates_in_one_batch_are_one_row(
    receiver_url: str, signer: Signer, database: Database
) -> None:
    body = delivery(CONTACT | {"id": "contact-burst"})
    headers = {"content-type": "application/json", **signer.headers(body)}

    async def burst() -> list[str]:
        async with httpx.AsyncClient(base_url=receiver_url) as client:
            answers = await asyncio.gather(
                *(client.post("/webhooks/ghl", content=body, headers=headers) for _ in range(20))
            )
        return [a.json()["status"] for a in answers]

    statuses = asyncio.run(burst())
    assert sorted(statuses) == ["accepted"] + ["duplicate"] * 19
    assert rows(
        database, "SELECT count(*) FROM raw.webhook_events WHERE entity_id = 'contact-burst'"
    ) == [(1,)]


def test_without_webhook_id_the_body_hash_deduplicates(
    receiver_url: str, signer: Signer, database: Database
) -> None:
    stamp = datetime.now(UTC).isoformat()
    body = orjson.dumps(CONTACT | {"id": "contact-nohook", "timestamp": stamp})
    first = post(receiver_url, body, signer.headers(body)).json()["status"]
    second = post(receiver_url, body, signer.headers(body)).json()["status"]
    assert (first, second) == ("accepted", "duplicate")
    keys = rows(
        database,
        "SELECT idempotency_key FROM raw.webhook_events WHERE entity_id = 'contact-nohook'",
    )
    assert len(keys) == 1 and keys[0][0].startswith("h:")


@pytest.mark.parametrize(
    ("make", "status", "reason"),
    [
        (lambda s, b: {}, 401, "missing signature"),
        (lambda s, b: Signer().headers(b), 401, "bad ed25519 signature"),
        (lambda s, b: s.headers(b + b" "), 401, "bad ed25519 signature"),
        (lambda s, b: s.headers(b, "hmac-sha256"), 401, "missing signature"),
    ],
)
def test_unsigned_or_badly_signed_requests_are_refused_and_counted(
    receiver_url: str, signer: Signer, database: Database, make, status: int, reason: str
) -> None:
    body = delivery(CONTACT | {"id": "contact-forged"})
    before = rejections(database).get(reason, 0)
    response = post(receiver_url, body, make(signer, body))
    assert response.status_code == status
    assert reason in response.json()["error"]
    flush = delivery(CONTACT | {"id": "contact-flush"})  # counts are flushed with the next batch
    assert post(receiver_url, flush, signer.headers(flush)).status_code == 200
    assert rejections(database)[reason] == before + 1
    assert rows(
        database, "SELECT count(*) FROM raw.webhook_events WHERE entity_id = 'contact-forged'"
    ) == [(0,)]


@pytest.mark.parametrize("age", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_stale_or_future_timestamps_are_refused(
    receiver_url: str, signer: Signer, age: timedelta
) -> None:
    stamp = (datetime.now(UTC) - age).isoformat()
    body = orjson.dumps(CONTACT | {"webhookId": "wh-stale", "timestamp": stamp})
    response = post(receiver_url, body, signer.headers(body))
    assert response.status_code == 401
    assert "replay window" in response.json()["error"]


def test_signed_body_without_timestamp_is_refused(receiver_url: str, signer: Signer) -> None:
    body = orjson.dumps(CONTACT)
    response = post(receiver_url, body, signer.headers(body))
    assert response.status_code == 401
    assert response.json()["error"] == "signed body has no valid timestamp"


@pytest.mark.parametrize(
    ("body", "message"),
    [(b'{"type": "ContactCreate",', "malformed JSON"), (b"[1, 2]", "expected a JSON object")],
)
def test_malformed_signed_bodies_get_a_clear_400(
    receiver_url: str, signer: Signer, body: bytes, message: str
) -> None:
    response = post(receiver_url, body, signer.headers(body))
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_oversized_bodies_get_413(receiver_url: str, signer: Signer) -> None:
    body = delivery(CONTACT | {"notes": "x" * (1024 * 1024)})
    response = post(receiver_url, body, signer.headers(body))
    assert response.status_code == 413


def test_workflow_webhooks_need_the_hmac(
    receiver_url: str, signer: Signer, database: Database
) -> None:
    payload = {
        "contact_id": "wf-contact",
        "first_name": "Ann",
        "location": {"id": "loc-1"},
        "customData": {"timestamp": datetime.now(UTC).isoformat()},
    }
    body = orjson.dumps(payload)
    path = "/webhooks/ghl/workflow"
    assert post(receiver_url, body, signer.headers(body), path).status_code == 401
    accepted = post(receiver_url, body, signer.headers(body, "hmac-sha256"), path)
    assert accepted.status_code == 200, accepted.text
    assert rows(
        database,
        "SELECT route, signature_scheme FROM raw.webhook_events WHERE correlation_id = %s",
        accepted.json()["correlation_id"],
    ) == [("workflow", "hmac-sha256")]


def test_rate_limit_answers_429_so_ghl_retries(
    database: Database, signer: Signer, tmp_path: Path
) -> None:
    settings = receiver_settings(database.url(), signer, tmp_path, webhook_rate_limit_per_minute=3)
    with running_receiver(settings) as url:
        answers = []
        for i in range(4):
            body = delivery(CONTACT | {"id": f"contact-rate-{i}"})
            answers.append(post(url, body, signer.headers(body)))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "10"


def test_nothing_is_answered_with_5xx_for_garbage(receiver_url: str, signer: Signer) -> None:
    for body in (b"", b"\xff\xfe", b"null", b'"string"'):
        response = post(receiver_url, body, signer.headers(body))
        assert 400 <= response.status_code < 500, (body, response.status_code)


def test_a_bug_in_the_webhook_handler_answers_429_not_5xx() -> None:
    """GHL treats a 5xx as final: a crash must make it deliver again, once fixed (and
    then believe the redelivery's old timestamp: the 429 is noted)."""

    async def broken_handler(scope: object, receive: object) -> Answer:
        raise KeyError("a parser bug")

    async def fallback(scope: dict, receive: object, send: object) -> None:
        raise AssertionError("the webhook route must not reach the fallback app")

    deferred: list[datetime] = []
    app = WebhookFrontDoor({"/webhooks/ghl": broken_handler}, fallback, deferred.append)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/webhooks/ghl", content=b"{}")

    response = asyncio.run(call())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "10"
    assert response.json() == {"error": "internal error; retry"}
    assert len(deferred) == 1


def test_wrong_methods_and_unknown_paths_are_clear_4xx(receiver_url: str) -> None:
    wrong_method = httpx.get(receiver_url + "/webhooks/ghl")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert httpx.get(receiver_url + "/nowhere").status_code == 404
