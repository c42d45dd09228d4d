"""The GHL webhook receiver (Starlette, served by uvicorn).

GHL retries a delivery only when it gets HTTP 429; every other answer is final. So a
delivery is answered 2xx only after it is committed, 429 whenever it could not be
(database down, rate limited), and 4xx only when retrying could never help (bad
signature, stale, malformed, too large). It never answers 5xx.
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import psycopg
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from trainu_dagster.db.server import connect_database
from trainu_dagster.ghl.payloads import Route, envelope
from trainu_dagster.ghl.signatures import (
    SignatureRejected,
    WebhookKeys,
    load_ed25519_public_key,
    load_rsa_public_key,
    verify_marketplace,
    verify_workflow,
)
from trainu_dagster.ingest.deferrals import DeferralLog
from trainu_dagster.ingest.landing import Delivery, Lander, LandingUnavailable
from trainu_dagster.observability.analytics import ProductAnalytics
from trainu_dagster.observability.logging import configure_logging, get_logger
from trainu_dagster.settings import Settings, get_settings

log = get_logger(__name__)

RETRY_AFTER_SECONDS = "10"
STORED_HEADERS = frozenset(
    ("content-type", "user-agent", "x-forwarded-for", "x-ghl-signature", "x-wh-signature")
)


class BodyTooLarge(Exception):
    pass


def _correlation_id() -> UUID:
    """A random version-4 UUID from the process PRNG: it labels log lines and needs no
    secrecy, and `uuid4()`'s system call per request showed up in the benchmark profile."""
    return UUID(int=random.getrandbits(128), version=4)


def webhook_keys(settings: Settings) -> WebhookKeys:
    ed = settings.webhook_ed25519_public_key
    secret = settings.workflow_webhook_secret
    return WebhookKeys(
        ed25519=load_ed25519_public_key(ed) if ed else None,
        rsa=load_rsa_public_key(settings.webhook_rsa_public_key_path),
        hmac_secret=secret.get_secret_value().encode() if secret else None,
    )


def delivery_time(payload: Mapping[str, Any]) -> datetime | None:
    """The signed body's `timestamp` (ISO-8601 or epoch seconds/milliseconds)."""
    value = payload.get("timestamp")
    if value is None and isinstance(payload.get("customData"), Mapping):
        value = payload["customData"].get("timestamp")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class FixedWindowLimiter:
    """Requests per (route, sender) per minute, counted in process memory.

    Hand-written on purpose: the `limits` package's memory storage starts a timer thread
    every 10 ms, and on an asyncio server that thread's GIL hand-offs cost more latency
    than the counting itself.
    """

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._window = -1
        self._counts: Counter[tuple[str, str]] = Counter()

    def allow(self, key: tuple[str, str], now: float) -> bool:
        window = int(now // 60)
        if window != self._window:
            self._window, self._counts = window, Counter()
        self._counts[key] += 1
        return self._counts[key] <= self._per_minute


Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, object]
    headers: Headers = field(default_factory=list)

    @classmethod
    def retry_later(cls, message: str) -> Answer:
        """429 is the one answer GHL redelivers; Retry-After says when to come back."""
        return cls(429, {"error": message}, [(b"retry-after", RETRY_AFTER_SECONDS.encode())])


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class WebhookFrontDoor:
    """ASGI entry point: answers the webhook routes itself and hands the rest to Starlette.

    The webhook routes are the hot path. Starlette's middleware stack, router and Request
    objects cost about a fifth of a delivery's CPU, so these routes skip them; the health
    routes and the lifespan stay in Starlette. A bug in the handler answers 429, never 5xx:
    GHL treats a 5xx as final, a 429 makes it deliver again once the bug is fixed.
    """

    def __init__(
        self,
        routes: Mapping[str, Callable[[Scope, Receive], Awaitable[Answer]]],
        app: ASGIApp,
        deferred: Callable[[datetime], None],
    ) -> None:
        self._routes = routes
        self._app = app
        self._deferred = deferred  # told of each 429 it answers itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self._app(scope, receive, send)
            return
        if scope["method"] != "POST":
            answer = Answer(
                405, {"error": "webhooks are delivered with POST"}, [(b"allow", b"POST")]
            )
        else:
            try:
                answer = await handler(scope, receive)
            except Exception:
                log.exception("webhook_handler_failed", path=scope["path"])
                self._deferred(datetime.now(UTC))
                answer = Answer.retry_later("internal error; retry")
        body = orjson.dumps(answer.body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    keys = webhook_keys(settings)
    dsn = connect_database(settings, start_embedded=False).url()
    lander = Lander(dsn, analytics=ProductAnalytics.from_settings(settings))
    limiter = FixedWindowLimiter(settings.webhook_rate_limit_per_minute)
    window = timedelta(seconds=settings.webhook_replay_window_seconds)
    deferrals = DeferralLog(dsn, slack=window)

    def reject(route: Route, status: int, reason: str, message: str) -> Answer:
        lander.count_rejection(route, reason)
        log.info("webhook_rejected", route=route, reason=reason, status=status)
        if status == 429:
            deferrals.note(datetime.now(UTC))
            return Answer.retry_later(message)
        return Answer(status, {"error": message})

    async def fresh_or_redelivered(sent_at: datetime, received_at: datetime) -> bool | None:
        """Within the replay window, or old but sent while a receiver answered 429 (GHL's
        redelivery); None when that cannot be looked up now."""
        if abs(received_at - sent_at) <= window:
            return True
        if sent_at > received_at:  # from the future: never a redelivery
            return False
        try:
            return await deferrals.covers(sent_at)
        except (psycopg.Error, OSError):
            return None

    async def receive(scope: Scope, receive_message: Receive, route: Route) -> Answer:
        received_at = datetime.now(UTC)
        sender = scope["client"][0] if scope.get("client") else "unknown"
        if not limiter.allow((route, sender), time.monotonic()):
            return reject(route, 429, "rate_limited", "rate limit exceeded")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await _read_body(
                receive_message, headers.get("content-length"), settings.webhook_max_body_bytes
            )
        except BodyTooLarge:
            return reject(
                route, 413, "too_large", f"body exceeds {settings.webhook_max_body_bytes} bytes"
            )
        except ClientDisconnect:
            return Answer(400, {"error": "client disconnected"})
        verify = verify_marketplace if route == "marketplace" else verify_workflow
        try:
            scheme = verify(body, headers, keys)
        except SignatureRejected as rejected:
            return reject(route, 401, rejected.reason, f"signature rejected: {rejected.reason}")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return reject(route, 400, "malformed_json", f"malformed JSON: {exc}")
        if not isinstance(payload, dict):
            return reject(route, 400, "not_an_object", "expected a JSON object")

        sent_at = delivery_time(payload)
        if sent_at is None and route == "marketplace":
            return reject(route, 401, "missing_timestamp", "signed body has no valid timestamp")
        if sent_at is not None:
            timely = await fresh_or_redelivered(sent_at, received_at)
            if timely is None:
                deferrals.note(received_at)
                return Answer.retry_later("temporarily unable to check the delivery; retry")
            if not timely:
                return reject(
                    route,
                    401,
                    "stale_timestamp",
                    f"timestamp outside the {window.seconds} s replay window",
                )

        correlation_id = _correlation_id()
        delivery = Delivery(
            envelope=envelope(payload, body, route),
            route=route,
            scheme=scheme,
            body=body,
            headers={k: v for k, v in headers.items() if k in STORED_HEADERS},
            correlation_id=correlation_id,
            received_at=received_at,
        )
        try:
            landed = await lander.land(delivery)
        except LandingUnavailable:
            lander.count_deferred()
            deferrals.note(received_at)
            log.warning(
                "webhook_deferred",
                route=route,
                reason="database unavailable",
                correlation_id=str(correlation_id),
            )
            return Answer.retry_later("temporarily unable to store the event; retry")
        status = "duplicate" if landed.duplicate else "accepted"
        return Answer(200, {"status": status, "correlation_id": correlation_id})

    def webhook_route(route: Route) -> Callable[[Scope, Receive], Awaitable[Answer]]:
        return lambda scope, receive_message: receive(scope, receive_message, route)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=2) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, OSError):
            return JSONResponse({"error": "database unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Everything imported so far lives as long as the process: keep it out of the
        # collector's way, so collections only walk what requests allocate.
        gc.collect()
        gc.freeze()
        await lander.start()
        await deferrals.start()
        try:
            yield
        finally:
            await lander.stop()
            await deferrals.stop()

    health = Starlette(
        routes=[
            HttpRoute("/healthz", healthz, methods=["GET"]),
            HttpRoute("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    return WebhookFrontDoor(
        {"/webhooks/ghl": webhook_route("marketplace"),
         "/webhooks/ghl/workflow": webhook_route("workflow")},
        health,
        deferrals.note,
    )  # fmt: skip
