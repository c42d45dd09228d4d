"""Run the GHL simulator under a real uvicorn server, and speak to it as the client must."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.receiver_harness import serving
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
def running_simulator(studio: Studio, **app_options: Any) -> Iterator[str]:
    """`create_simulator_app(studio, **app_options)` served on loopback; yields the base URL."""
    with serving(create_simulator_app(studio, **app_options)) as url:
        yield url
