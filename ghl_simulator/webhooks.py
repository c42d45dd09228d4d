"""Marketplace webhooks as GHL sends them: its body shapes, its signatures, its delivery habits.

GHL delivers at least once and unordered, retries only after a 429, and treats every other
answer as final. The sender reproduces exactly that (plus duplicates, late deliveries and
bursts) so the receiver's idempotency, ordering and back-pressure are exercised for real.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ghl_simulator.studio import (
    MESSAGE_TYPES,
    Change,
    Studio,
    iso_utc,
    public,
)
from trainu_dagster.ghl.signatures import (
    ED25519_HEADER,
    RSA_HEADER,
    sign_ed25519,
    sign_rsa,
)
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)
SHORT_MESSAGE_TYPES = {long: short for short, (long, _) in MESSAGE_TYPES.items()}
# Contact events carry the contact flat, without the REST-only keys (GHL's examples have no
# dateUpdated).
CONTACT_WEBHOOK_OMITS = frozenset({"dateUpdated", "contactName", "type"})
OPPORTUNITY_KEYS = (
    "id",
    "assignedTo",
    "contactId",
    "monetaryValue",
    "name",
    "pipelineId",
    "pipelineStageId",
    "source",
    "status",
)
MESSAGE_KEYS = (
    "attachments",
    "body",
    "contactId",
    "contentType",
    "conversationId",
    "dateAdded",
    "direction",
    "status",
)


def webhook_body(
    change: Change, studio: Studio, *, webhook_id: str, timestamp: datetime
) -> dict[str, Any]:
    """GHL's Marketplace event for one change, from the entity as it was at that moment."""
    record = public(change.record)
    entity: dict[str, Any]
    if change.entity == "contact":
        entity = {k: v for k, v in record.items() if k not in CONTACT_WEBHOOK_OMITS}
    elif change.entity == "appointment":
        tz = studio.tz
        appointment = {k: v for k, v in record.items() if k != "locationId"}
        for key in ("dateAdded", "dateUpdated"):  # GHL sends these with the location's offset
            moment = datetime.fromisoformat(record[key]).astimezone(tz)
            appointment[key] = moment.isoformat(timespec="milliseconds")
        entity = {"appointment": {**appointment, "source": "booking_widget"}}
    elif change.entity == "message":
        entity = {k: record[k] for k in MESSAGE_KEYS}
        entity.update(
            messageType=SHORT_MESSAGE_TYPES[record["messageType"]], messageId=record["id"]
        )
        entity.update({k: record[k] for k in ("userId", "source") if k in record})
    elif change.entity == "opportunity":
        entity = {k: record[k] for k in OPPORTUNITY_KEYS}
        entity["dateAdded"] = record["createdAt"]
    else:
        raise ValueError(f"no webhook for {change.entity} changes")
    return {
        "type": change.event_type,
        "locationId": studio.location_id,
        **entity,
        "webhookId": webhook_id,
        "timestamp": iso_utc(timestamp),
    }


def delivery_bytes(change: Change, studio: Studio) -> bytes:
    """A fresh delivery: new webhookId, stamped now (the receiver checks the timestamp)."""
    body = webhook_body(change, studio, webhook_id=str(uuid.uuid4()), timestamp=datetime.now(UTC))
    return orjson.dumps(body)


@dataclass
class Delivery:
    body: bytes
    attempts: int = 0
    due: float = 0.0  # monotonic time before which a deferred delivery is not retried


class WebhookSender:
    """Posts signed deliveries like GHL: duplicates, reorders, bursts; retries only 429s.

    `counts`: `sent` (HTTP posts), `acknowledged` (2xx), `deferred` (429, retried later),
    `rejected` (any other answer: final), `duplicated`, `reordered`, `dropped` (429 too often).
    """

    def __init__(
        self,
        url: str,
        key: Ed25519PrivateKey,
        *,
        rsa_key: RSAPrivateKey | None = None,
        duplicate_rate: float = 0.05,
        reorder_rate: float = 0.05,
        burst_every: int = 200,
        burst_size: int = 20,
        rate_per_second: float | None = 20.0,
        retry_delay: float = 600.0,
        max_retries: int = 6,
        seed: int = 0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._key, self._rsa_key = key, rsa_key
        self.duplicate_rate, self.reorder_rate = duplicate_rate, reorder_rate
        self.burst_every, self.burst_size = burst_every, burst_size
        self.rate_per_second = rate_per_second
        self.retry_delay, self.max_retries = retry_delay, max_retries
        self.counts: Counter[str] = Counter()
        self.acknowledged: list[bytes] = []  # bodies answered 2xx, in the order answered
        self._rng = random.Random(seed)  # noqa: S311 - delivery quirks, not secrets
        self._client = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._ready: deque[Delivery] = deque()
        self._held: list[tuple[int, Delivery]] = []  # (release after this many posts, delivery)
        self._deferred: list[Delivery] = []
        self._posted = 0
        self._burst_left = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            ED25519_HEADER: sign_ed25519(body, self._key),
        }
        if self._rsa_key is not None:
            headers[RSA_HEADER] = sign_rsa(body, self._rsa_key)
        return headers

    def enqueue(self, body: bytes) -> None:
        with self._lock:
            self._ready.append(Delivery(body))

    def enqueue_changes(self, changes: list[Change], studio: Studio) -> None:
        for change in changes:
            self.enqueue(delivery_bytes(change, studio))

    def pending(self) -> int:
        with self._lock:
            return len(self._ready) + len(self._held) + len(self._deferred)

    def send_pending(self) -> None:
        """Deliver everything due now; held-back and deferred deliveries may remain."""
        while (delivery := self._next()) is not None:
            if self._rng.random() < self.reorder_rate and self._ready:
                with self._lock:
                    self._held.append((self._posted + self._rng.randint(1, 5), delivery))
                self.counts["reordered"] += 1
                continue
            self._post(delivery)
            if self._rng.random() < self.duplicate_rate:
                self.counts["duplicated"] += 1
                self._post(Delivery(delivery.body, delivery.attempts))

    def flush(self, timeout: float = 30.0) -> None:
        """Send everything, held-back and deferred deliveries included (waiting for retries)."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            with self._lock:
                self._ready.extend(delivery for _, delivery in self._held)
                self._held.clear()
            self.send_pending()
            if self.pending():
                time.sleep(0.05)

    def _next(self) -> Delivery | None:
        now = time.monotonic()
        with self._lock:
            released = [d for after, d in self._held if after <= self._posted]
            self._held = [(after, d) for after, d in self._held if after > self._posted]
            due = [d for d in self._deferred if d.due <= now]
            self._deferred = [d for d in self._deferred if d.due > now]
            self._ready.extendleft(reversed(released + due))
            return self._ready.popleft() if self._ready else None

    def _pace(self) -> None:
        if self._burst_left > 0:
            self._burst_left -= 1
        elif self.burst_every and self._posted and self._posted % self.burst_every == 0:
            self._burst_left = self.burst_size
        elif self.rate_per_second:
            self._stop.wait(1 / self.rate_per_second)

    def _post(self, delivery: Delivery) -> None:
        self._pace()
        delivery.attempts += 1
        self._posted += 1
        self.counts["sent"] += 1
        try:
            status = self._client.post(
                self.url, content=delivery.body, headers=self.headers(delivery.body)
            ).status_code
        except httpx.HTTPError as exc:
            self.counts["rejected"] += 1  # GHL gives up on anything but a 429
            log.warning("webhook_delivery_failed", error=str(exc))
            return
        if status == 429:
            self.counts["deferred"] += 1
            if delivery.attempts > self.max_retries:
                self.counts["dropped"] += 1
                return
            delivery.due = time.monotonic() + self.retry_delay
            with self._lock:
                self._deferred.append(delivery)
        elif 200 <= status < 300:
            self.counts["acknowledged"] += 1
            self.acknowledged.append(delivery.body)
        else:
            self.counts["rejected"] += 1
            log.warning("webhook_rejected", status=status)

    # --- background delivery -----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send_pending()
            self._stop.wait(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The simulator's webhook key, kept on disk (0600) so the receiver's config stays valid."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    """What to configure as the receiver's Ed25519 public key."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
