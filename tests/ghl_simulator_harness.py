"""Run the GHL simulator under a real uvicorn server, and speak to it as the client must."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from tests.receiver_harness import free_port
from trainu_dagster.ghl.simulator import Studio, create_simulator_app
from trainu_dagster.ghl.simulator.api import (
    CALENDARS_VERSION,
    CONTACTS_VERSION,
    CONVERSATIONS_VERSION,
    DEFAULT_TOKEN,
    OPPORTUNITIES_VERSION,
)

SIM_TOKEN = DEFAULT_TOKEN
VERSIONS = {
    "contacts": CONTACTS_VERSION,
    "calendars": CALENDARS_VERSION,
    "conversations": CONVERSATIONS_VERSION,
    "opportunities": OPPORTUNITIES_VERSION,
}


def api_headers(api: str, token: str = SIM_TOKEN) -> dict[str, str]:
    """Authorization plus the `Version` GHL requires for `api` (contacts, calendars...)."""
    return {"Authorization": f"Bearer {token}", "Version": VERSIONS[api]}


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Any ASGI app under a real uvicorn server on a free loopback port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def running_simulator(studio: Studio, **app_options: Any) -> Iterator[str]:
    """`create_simulator_app(studio, **app_options)` served on loopback; yields the base URL."""
    with serving(create_simulator_app(studio, **app_options)) as url:
        yield url
