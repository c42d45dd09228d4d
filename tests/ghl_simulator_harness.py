"""Run the GHL simulator under a real uvicorn server, and speak to it as the client must."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ghl_simulator import Change, Studio, create_simulator_app, webhook_body
from ghl_simulator.api import (
    CALENDARS_VERSION,
    CONTACTS_VERSION,
    CONVERSATIONS_VERSION,
    DEFAULT_TOKEN,
    LOCATIONS_VERSION,
    OPPORTUNITIES_VERSION,
    USERS_VERSION,
    V3,
)
from tests.receiver_harness import serving
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.signatures import ED25519_HEADER

SIM_TOKEN = DEFAULT_TOKEN
VERSIONS = {  # each API's dated v2 version
    "contacts": CONTACTS_VERSION,
    "calendars": CALENDARS_VERSION,
    "conversations": CONVERSATIONS_VERSION,
    "opportunities": OPPORTUNITIES_VERSION,
    "locations": LOCATIONS_VERSION,
    "users": USERS_VERSION,
}
API_VERSIONS = ("v2", "v3")  # the two GHL (and the simulator) accept


def version_header(api: str, version: str = "v2") -> str:
    """The `Version` header for `api` (contacts, calendars...) in API `version`."""
    return VERSIONS[api] if version == "v2" else V3


def api_headers(api: str, token: str = SIM_TOKEN, version: str = "v2") -> dict[str, str]:
    """Authorization plus the `Version` GHL requires for `api` in API `version`."""
    return {"Authorization": f"Bearer {token}", "Version": version_header(api, version)}


@contextmanager
def running_simulator(studio: Studio, **app_options: Any) -> Iterator[str]:
    """`create_simulator_app(studio, **app_options)` served on loopback; yields the base URL."""
    with serving(create_simulator_app(studio, **app_options)) as url:
        yield url


class WebhookInbox:
    """A local HTTP receiver keeping each delivery's raw body and Ed25519 signature, for
    what the simulator posts outside the studios' data (INSTALL, UNINSTALL)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []

    async def take(self, request: Request) -> Response:
        self.received.append((await request.body(), request.headers.get(ED25519_HEADER, "")))
        return Response(status_code=200)

    def bodies(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The deliveries of `type` `kind` once `count` arrived (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [orjson.loads(b) for b, _ in self.received]
            found = [body for body in found if body.get("type") == kind]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Served on loopback; yields the URL to post to."""
        with serving(Starlette(routes=[Route("/hook", self.take, methods=["POST"])])) as url:
            yield url + "/hook"


def creation_changes(studio: Studio) -> list[Change]:
    """The generated history (which the change log leaves out) as the create events GHL
    would have sent for it, oldest first."""
    events = {
        "contact": "ContactCreate",
        "appointment": "AppointmentCreate",
        "opportunity": "OpportunityCreate",
    }
    changes = []
    for entity, records in studio.truth().items():
        for record in records.values():
            if entity == "message":
                event = "InboundMessage" if record["direction"] == "inbound" else "OutboundMessage"
            elif entity in events and not record.get("deleted"):
                event = events[entity]
            else:
                continue
            at = datetime.fromisoformat(record.get("dateUpdated") or record["updatedAt"])
            changes.append(Change(entity, record["id"], "create", at, event, record))
    return sorted(changes, key=lambda c: c.at)


def webhooks_for(studio: Studio, changes: list[Change]) -> list[dict[str, Any]]:
    """GHL's webhook body for each change, with ids `wh-<n>` in order."""
    return [
        webhook_body(change, studio, webhook_id=f"wh-{i}", timestamp=change.at)
        for i, change in enumerate(changes)
    ]


class PerStudio:
    """What the outbox asks of GHL, each studio through its own client (its own simulator
    here, as each GHL location has its own limit), every client with one budget."""

    def __init__(self, clients: dict[str, GhlClient]) -> None:
        self.clients = clients

    def send_message(self, location_id: str, **options: Any) -> dict[str, Any]:
        return self.clients[location_id].send_message(location_id, **options)

    def conversations(self, location_id: str, **options: Any) -> list[dict[str, Any]]:
        return self.clients[location_id].conversations(location_id, **options)

    def conversation_messages(self, location_id: str, *args: Any, **options: Any):  # noqa: ANN201
        return self.clients[location_id].conversation_messages(location_id, *args, **options)
