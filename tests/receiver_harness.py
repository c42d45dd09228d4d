"""Run the real receiver under uvicorn on a free port, and sign deliveries like GHL does."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from starlette.types import ASGIApp

from ghl_simulator.webhooks import public_pem
from trainu_dagster.ghl.signatures import (
    ED25519_HEADER,
    HMAC_HEADER,
    RSA_HEADER,
    hmac_signature,
    sign_ed25519,
    sign_rsa,
)
from trainu_dagster.ingest.receiver import create_app
from trainu_dagster.settings import Settings

HMAC_SECRET = "workflow-shared-secret"


@dataclass
class Signer:
    ed25519: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    rsa: RSAPrivateKey = field(
        default_factory=lambda: generate_private_key(public_exponent=65537, key_size=2048)
    )

    def ed25519_public_pem(self) -> str:
        return public_pem(self.ed25519)

    def write_rsa_public_pem(self, path: Path) -> Path:
        path.write_bytes(
            self.rsa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return path

    def headers(self, body: bytes, scheme: str = "ed25519") -> dict[str, str]:
        if scheme == "ed25519":
            return {ED25519_HEADER: sign_ed25519(body, self.ed25519)}
        if scheme == "rsa-sha256":
            return {RSA_HEADER: sign_rsa(body, self.rsa)}
        return {HMAC_HEADER: "sha256=" + hmac_signature(body, HMAC_SECRET.encode())}


def delivery(payload: dict[str, Any], *, fresh: bool = True) -> bytes:
    """A body as GHL sends it: with webhookId and the delivery timestamp."""
    if fresh:
        payload = {
            "webhookId": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **payload,
        }
    return orjson.dumps(payload)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def receiver_settings(database_url: str, signer: Signer, tmp: Path, **overrides: Any) -> Settings:
    return Settings(
        state_dir=tmp,
        database_url=database_url,
        webhook_ed25519_public_key=signer.ed25519_public_pem(),
        webhook_rsa_public_key_path=signer.write_rsa_public_pem(tmp / "rsa.pem"),
        workflow_webhook_secret=HMAC_SECRET,
        **overrides,
    )


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Any ASGI app (lifespan included) under a real uvicorn server on a free loopback port;
    yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def running_receiver(settings: Settings) -> Iterator[str]:
    """The real receiver app, served on loopback."""
    with serving(create_app(settings)) as url:
        yield url


def post(
    base: str, body: bytes, headers: dict[str, str], path: str = "/webhooks/ghl"
) -> httpx.Response:
    return httpx.post(
        base + path,
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )
