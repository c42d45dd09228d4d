"""The simulator speaks GHL's documented contract: every REST answer validates against GHL's
own OpenAPI specs, in both API versions GHL accepts (a dated v2 `Version` gets a v2-valid
answer, `v3` a v3-valid one), every webhook against GHL's published schemas, and signed
deliveries land in the real receiver."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from ghl_simulator import (
    RateLimit,
    Studio,
    WebhookSender,
    generate_studio,
    webhook_body,
)
from ghl_simulator.studio import epoch_ms, stage_id
from tests.ghl_simulator_harness import API_VERSIONS, SIM_TOKEN, running_simulator, version_header
from tests.receiver_harness import Signer
from trainu_dagster.db.server import Database

DATA = Path(__file__).parent / "data" / "ghl"
SPECS = DATA / "openapi"
SPEC_NAMES = ("contacts", "calendars", "conversations", "opportunities", "locations", "users")
# The specs leave these objects open, yet they are where v2 and v3 differ (v3's lower-camel
# DND channels, its `deleted` on events, its useOpportunityProbability on pipelines).
# Closed, each version's own keys become part of the contract.
CLOSED_SCHEMAS = {
    "DndSettingsSchema",
    "DndSettingsSchemaV3",
    "CalendarEventDTO",
    "PipelinesResponseSchema",
}
V2_ONLY = {"/contacts/", "/users/"}  # deprecated in v2, gone from v3
LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
WEBHOOK_EVENTS = {
    "ContactCreate", "ContactUpdate", "ContactDelete", "ContactDndUpdate", "ContactTagUpdate",
    "AppointmentCreate", "AppointmentUpdate", "AppointmentDelete",
    "InboundMessage", "OutboundMessage",
    "OpportunityCreate", "OpportunityUpdate", "OpportunityDelete", "OpportunityStatusUpdate",
    "OpportunityStageUpdate",
}  # fmt: skip


def spec_folder(version: str) -> Path:
    return SPECS if version == "v2" else SPECS / "v3"


def spec_uri(version: str, name: str) -> str:
    return f"https://ghl.test/{version}/openapi/{name}.json"


def common_uri(version: str, schema: str) -> str:
    return f"https://ghl.test/{version}/common/common-schemas.json#/components/schemas/{schema}"


def load_spec(version: str, name: str) -> dict[str, Any]:
    spec = json.loads((spec_folder(version) / f"{name}.json").read_text())
    schemas = spec["components"]["schemas"]
    if name == "calendars":
        # Erratum in GHL's spec, both versions: CalendarEventDTO types these as `object`, yet
        # its own examples (and the live API) give ISO-8601 strings.
        event = schemas["CalendarEventDTO"]["properties"]
        for key in ("startTime", "endTime", "dateAdded", "dateUpdated"):
            event[key] = {**event[key], "type": "string"}
    if name == "opportunities":
        # Erratum, both versions: a pipeline's stages are typed as arrays of arrays; GHL
        # answers stage objects ({id, name, position}).
        schemas["PipelinesResponseSchema"]["properties"]["stages"]["items"] = {"type": "object"}
    for closed in CLOSED_SCHEMAS & schemas.keys():
        schemas[closed]["additionalProperties"] = False
    return spec


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Each version's specs under their own URIs, so `../common/common-schemas.json`
    resolves to that version's shared file."""
    resources = []
    for version in API_VERSIONS:
        resources += [(spec_uri(version, name), load_spec(version, name)) for name in SPEC_NAMES]
        common = json.loads((spec_folder(version) / "common-schemas.json").read_text())
        resources.append((f"https://ghl.test/{version}/common/common-schemas.json", common))
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT4)) for uri, doc in resources
    )


def undocumented_schema(registry: Registry, version: str, status: str) -> dict[str, Any]:
    """The contact search's spec names its statuses only. Its answer is what GHL's search
    documentation describes: full contacts (the by-id contact schema) each with its
    searchAfter key, and a total; its errors GHL's common DTOs."""
    if status != "200":
        return {
            "$ref": common_uri(version, "UnauthorizedDTO" if status == "401" else "BadRequestDTO")
        }
    by_id = registry.contents(spec_uri(version, "contacts"))["paths"]["/contacts/{contactId}"]
    dto = by_id["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    keyed = {
        "required": ["searchAfter"],
        "properties": {"searchAfter": {"type": "array", "minItems": 2, "maxItems": 2}},
    }
    contact = {
        "allOf": [{"$ref": f"{spec_uri(version, 'contacts')}{dto}/properties/contact"}, keyed]
    }
    return {
        "type": "object",
        "required": ["contacts", "total"],
        "properties": {
            "contacts": {"type": "array", "items": contact},
            "total": {"type": "number"},
        },
    }


def check(
    registry: Registry, version: str, spec: str, path: str, method: str, answer: httpx.Response
) -> None:
    """Validate `answer` against the schema GHL documents in `version` for (path, method,
    status)."""
    status = str(answer.status_code)
    uri = spec_uri(version, spec)
    documented = registry.contents(uri)["paths"][path][method]["responses"]
    assert status in documented, f"{status} undocumented"
    if "content" in documented[status]:
        escaped = path.replace("~", "~0").replace("/", "~1")
        pointer = f"/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
        schema: dict[str, Any] = {"$ref": f"{uri}#{pointer}"}
    else:
        schema = undocumented_schema(registry, version, status)
    OAS30Validator(schema, registry=registry).validate(answer.json())


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, clients=60, seed=3, now=NOW)


@pytest.fixture(scope="module")
def sim(studio: Studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def call(
    url: str,
    method: str,
    path: str,
    api: str,
    version: str = "v2",
    *,
    token: str | None = SIM_TOKEN,
    **kw: Any,
) -> httpx.Response:
    headers = {"Version": version_header(api, version)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, url + path, headers=headers, timeout=10, **kw)


def location_param(version: str) -> str:
    """The opportunity search's location param: snake_case in v2, camelCase in v3."""
    return "location_id" if version == "v2" else "locationId"


def busy_conversation(studio: Studio) -> str:
    """A live contact's conversation with at least three messages."""
    counts: dict[str, int] = {}
    for message in studio.messages.values():
        counts[message["conversationId"]] = counts.get(message["conversationId"], 0) + 1
    return next(
        c["id"]
        for c in studio.conversations.values()
        if counts.get(c["id"], 0) >= 3 and not studio.contacts[c["contactId"]]["deleted"]
    )


def success_cases(
    sim: str, studio: Studio, version: str
) -> list[tuple[str, str, str, httpx.Response]]:
    """(spec, documented path, method, answer) for every route, v2-only ones in v2 only."""

    def ask(api: str, path: str, method: str = "GET", url_path: str = "", **kw: Any) -> Any:
        return api, path, method.lower(), call(sim, method, url_path or path, api, version, **kw)

    contact = next(c for c in studio.contacts.values() if not c["dnd"] and not c["deleted"])
    calendar_id = next(iter(studio.calendars))
    event_id = next(a["id"] for a in studio.appointments.values() if not a["deleted"])
    conversation_id = busy_conversation(studio)
    window = {"startTime": epoch_ms(NOW - timedelta(days=60)), "endTime": epoch_ms(NOW)}
    search = {
        "locationId": LOCATION,
        "pageLimit": 5,
        "sort": [{"field": "dateUpdated", "direction": "asc"}],
    }
    first = ask("contacts", "/contacts/search", "POST", json=search)
    after = first[3].json()["contacts"][-1]["searchAfter"]
    since = {"field": "dateUpdated", "operator": "range", "value": {"gte": "2026-11-01"}}
    messages = ask(
        "conversations",
        "/conversations/{conversationId}/messages",
        url_path=f"/conversations/{conversation_id}/messages",
        params={"limit": 2},
    )
    older = messages[3].json()["lastMessageId"]
    cases = [
        first,
        ask("contacts", "/contacts/search", "POST", json={**search, "searchAfter": after}),
        ask("contacts", "/contacts/search", "POST",
            json={"locationId": LOCATION, "pageLimit": 500, "page": 1, "filters": [since]}),
        ask("contacts", "/contacts/{contactId}", url_path=f"/contacts/{contact['id']}"),
        ask("calendars", "/calendars/", params={"locationId": LOCATION}),
        ask("calendars", "/calendars/events",
            params={"locationId": LOCATION, "calendarId": calendar_id, **window}),
        ask("calendars", "/calendars/events/appointments/{eventId}",
            url_path=f"/calendars/events/appointments/{event_id}"),
        ask("conversations", "/conversations/messages/export",
            params={"locationId": LOCATION, "limit": 10, "sortBy": "updatedAt"}),
        ask("conversations", "/conversations/messages", "POST",
            json={"type": "SMS", "contactId": contact["id"], "message": "See you at 7"}),
        ask("conversations", "/conversations/search", params={"locationId": LOCATION}),
        ask("conversations", "/conversations/search",
            params={"locationId": LOCATION, "contactId": contact["id"], "limit": 1}),
        messages,
        ask("conversations", "/conversations/{conversationId}/messages",
            url_path=f"/conversations/{conversation_id}/messages",
            params={"limit": 2, "lastMessageId": older}),
        ask("opportunities", "/opportunities/search",
            params={location_param(version): LOCATION, "limit": 5}),
        ask("opportunities", "/opportunities/pipelines", params={"locationId": LOCATION}),
        ask("locations", "/locations/{locationId}", url_path=f"/locations/{LOCATION}"),
        ask("users", "/users/search", params={"companyId": studio.location["companyId"]}),
    ]  # fmt: skip
    if version == "v2":
        listed = call(
            sim, "GET", "/contacts/", "contacts", params={"locationId": LOCATION, "limit": 5}
        )
        keyset = {k: listed.json()["meta"][k] for k in ("startAfter", "startAfterId")}
        cases += [
            ("contacts", "/contacts/", "get", listed),
            ask("contacts", "/contacts/", params={"locationId": LOCATION, **keyset}),
            ask("users", "/users/", params={"locationId": LOCATION}),
        ]
    return cases


@pytest.mark.parametrize("version", API_VERSIONS)
def test_success_answers_match_the_specs(
    sim: str, studio: Studio, registry: Registry, version: str
) -> None:
    cases = success_cases(sim, studio, version)
    for spec, path, method, answer in cases:
        assert answer.status_code == 200, (path, answer.text)
        check(registry, version, spec, path, method, answer)
        assert answer.headers["traceid"]
    events = next(a for _, path, _, a in cases if path == "/calendars/events").json()["events"]
    assert events and all(e["startTime"][-6:] in ("-04:00", "-05:00") for e in events)


def test_each_version_answers_in_its_own_shape(sim: str, studio: Studio) -> None:
    """What the specs diff to: v3 spells the DND channels in lower camel case, flags events
    `deleted`, adds useOpportunityProbability to pipelines."""
    contact = next(c for c in studio.contacts.values() if c["dnd"] and not c["deleted"])
    by_id = [{"field": "id", "operator": "eq", "value": contact["id"]}]
    events = {"locationId": LOCATION, "calendarId": next(iter(studio.calendars))}
    events |= {"startTime": epoch_ms(NOW - timedelta(days=30)), "endTime": epoch_ms(NOW)}
    search = {"locationId": LOCATION, "pageLimit": 1, "filters": by_id}
    shapes = {}
    for version in API_VERSIONS:
        one = call(sim, "GET", f"/contacts/{contact['id']}", "contacts", version).json()
        found = call(sim, "POST", "/contacts/search", "contacts", version, json=search).json()
        listed = call(sim, "GET", "/calendars/events", "calendars", version, params=events)
        pipelines = call(sim, "GET", "/opportunities/pipelines", "opportunities", version,
                         params={"locationId": LOCATION}).json()["pipelines"]  # fmt: skip
        shapes[version] = {
            "dnd": set(one["contact"]["dndSettings"]),
            "dnd found": set(found["contacts"][0]["dndSettings"]),
            "deleted": {e.get("deleted") for e in listed.json()["events"]},
            "probability": pipelines[0].get("useOpportunityProbability"),
        }
    v2_channels, v3_channels = {"SMS", "Email", "Call"}, {"sms", "email", "call"}
    assert shapes["v2"] == {
        "dnd": v2_channels, "dnd found": v2_channels, "deleted": {None}, "probability": None
    }  # fmt: skip
    assert shapes["v3"] == {
        "dnd": v3_channels, "dnd found": v3_channels, "deleted": {False}, "probability": False
    }  # fmt: skip


@pytest.mark.parametrize("version", API_VERSIONS)
def test_opportunity_search_takes_each_versions_param_names(
    sim: str, studio: Studio, registry: Registry, version: str
) -> None:
    member = stage_id(studio.pipeline, "member")
    names = {"v2": ("location_id", "pipeline_stage_id"), "v3": ("locationId", "pipelineStageId")}
    (location, stage), (other_location, other_stage) = (
        names[version],
        names["v3" if version == "v2" else "v2"],
    )
    found = call(sim, "GET", "/opportunities/search", "opportunities", version,
                 params={location: LOCATION, stage: member, "limit": 100})  # fmt: skip
    expected = {
        o["id"]
        for o in studio.opportunities.values()
        if o["pipelineStageId"] == member and not o["deleted"]
    }
    assert expected and {o["id"] for o in found.json()["opportunities"]} == expected
    misspelt = call(sim, "GET", "/opportunities/search", "opportunities", version,
                    params={other_location: LOCATION, other_stage: member})  # fmt: skip
    assert misspelt.status_code == 422
    assert misspelt.json()["message"] == [f"{location} should not be empty"]
    check(registry, version, "opportunities", "/opportunities/search", "get", misspelt)


ROUTES = [
    ("contacts", "/contacts/", "get", "/contacts/", {"params": {"locationId": LOCATION}}),
    ("contacts", "/contacts/search", "post", "/contacts/search",
     {"json": {"locationId": LOCATION, "pageLimit": 5}}),
    ("contacts", "/contacts/{contactId}", "get", "/contacts/nope", {}),
    ("calendars", "/calendars/", "get", "/calendars/", {"params": {"locationId": LOCATION}}),
    ("calendars", "/calendars/events", "get", "/calendars/events",
     {"params": {"locationId": LOCATION}}),
    ("calendars", "/calendars/events/appointments/{eventId}", "get",
     "/calendars/events/appointments/nope", {}),
    ("conversations", "/conversations/messages/export", "get", "/conversations/messages/export",
     {"params": {"locationId": LOCATION}}),
    ("conversations", "/conversations/messages", "post", "/conversations/messages",
     {"json": {"type": "SMS", "contactId": "nope", "message": "hi"}}),
    ("conversations", "/conversations/search", "get", "/conversations/search",
     {"params": {"locationId": LOCATION}}),
    ("conversations", "/conversations/{conversationId}/messages", "get",
     "/conversations/nope/messages", {}),
    ("opportunities", "/opportunities/search", "get", "/opportunities/search",
     {"params": {"location_id": LOCATION}}),
    ("opportunities", "/opportunities/pipelines", "get", "/opportunities/pipelines",
     {"params": {"locationId": LOCATION}}),
    ("locations", "/locations/{locationId}", "get", f"/locations/{LOCATION}", {}),
    ("users", "/users/search", "get", "/users/search", {"params": {"companyId": "c"}}),
    ("users", "/users/", "get", "/users/", {"params": {"locationId": LOCATION}}),
]  # fmt: skip
ROUTES_BY_VERSION = [
    (version, *route) for version in API_VERSIONS for route in ROUTES
    if version == "v2" or route[1] not in V2_ONLY
]  # fmt: skip


@pytest.mark.parametrize(("version", "spec", "path", "method", "url_path", "kw"), ROUTES_BY_VERSION)
def test_error_answers_match_the_specs(
    sim: str,
    registry: Registry,
    version: str,
    spec: str,
    path: str,
    method: str,
    url_path: str,
    kw: Any,
) -> None:
    unauthorised = call(sim, method.upper(), url_path, spec, version, token=None, **kw)
    assert unauthorised.status_code == 401
    check(registry, version, spec, path, method, unauthorised)
    other_api = "calendars" if version_header(spec) == "2021-07-28" else "contacts"
    for wrong in ("2020-01-01", version_header(other_api), "V3"):
        refused = httpx.request(
            method.upper(),
            sim + url_path,
            headers={"Authorization": f"Bearer {SIM_TOKEN}", "Version": wrong},
            **kw,
        )
        assert refused.status_code == 400, wrong
        check(registry, version, spec, path, method, refused)


@pytest.mark.parametrize(("spec", "url_path", "kw"), [
    ("contacts", "/contacts/", {"params": {"locationId": LOCATION}}),
    ("users", "/users/", {"params": {"locationId": LOCATION}}),
])  # fmt: skip
def test_deprecated_v2_routes_refuse_v3(
    sim: str, registry: Registry, spec: str, url_path: str, kw: Any
) -> None:
    refused = call(sim, "GET", url_path, spec, "v3", **kw)
    assert refused.status_code == 400
    assert refused.json()["message"] == "Version header must be 2021-07-28 for this endpoint"
    OAS30Validator({"$ref": common_uri("v3", "BadRequestDTO")}, registry=registry).validate(
        refused.json()
    )


def bad_inputs(
    studio: Studio, version: str
) -> list[tuple[str, str, str, str, dict[str, Any], int]]:
    """(spec, path, method, url path, request, status): 422 where the spec documents it."""
    base = {"locationId": LOCATION, "pageLimit": 5}

    def searching(**body: Any) -> tuple[str, str, str, str, dict[str, Any], int]:
        return "contacts", "/contacts/search", "POST", "/contacts/search", {"json": body}, 400

    thread = f"/conversations/{busy_conversation(studio)}/messages"
    company = studio.location["companyId"]
    cases = [
        ("contacts", "/contacts/{contactId}", "GET", "/contacts/nope", {}, 400),
        searching(pageLimit=5),
        searching(**{**base, "pageLimit": 501}),
        searching(**base, page=2, searchAfter=[1, "x"]),
        searching(**{**base, "pageLimit": 500}, page=21),
        searching(**base, filters=[{"field": "email", "operator": "contains", "value": "a"}]),
        searching(**base, sort=[{"field": "firstName", "direction": "asc"}]),
        ("contacts", "/contacts/search", "POST", "/contacts/search", {"content": b"[1, 2"}, 400),
        ("opportunities", "/opportunities/search", "GET", "/opportunities/search",
         {"params": {location_param(version): LOCATION, "startAfter": "soon"}}, 422),
        ("opportunities", "/opportunities/search", "GET", "/opportunities/search",
         {"params": {location_param(version): LOCATION, "status": "pending"}}, 422),
        ("opportunities", "/opportunities/pipelines", "GET", "/opportunities/pipelines", {}, 400),
        ("calendars", "/calendars/events", "GET", "/calendars/events",
         {"params": {"locationId": LOCATION, "userId": "u", "startTime": 2, "endTime": 1}}, 400),
        ("conversations", "/conversations/messages/export", "GET",
         "/conversations/messages/export", {"params": {"locationId": LOCATION, "limit": 5}}, 400),
        ("conversations", "/conversations/messages", "POST", "/conversations/messages",
         {"json": {"type": "SMS", "contactId": "nope"}}, 400),
        ("conversations", "/conversations/search", "GET", "/conversations/search", {}, 400),
        ("conversations", "/conversations/search", "GET", "/conversations/search",
         {"params": {"locationId": LOCATION, "sort": "sideways"}}, 400),
        ("conversations", "/conversations/search", "GET", "/conversations/search",
         {"params": {"locationId": LOCATION, "followers": "u1"}}, 400),
        ("conversations", "/conversations/{conversationId}/messages", "GET", thread,
         {"params": {"lastMessageId": "nope"}}, 400),
        ("users", "/users/search", "GET", "/users/search",
         {"params": {"locationId": LOCATION}}, 422),
        ("users", "/users/search", "GET", "/users/search",
         {"params": {"companyId": company, "limit": 0}}, 422),
    ]  # fmt: skip
    if version == "v2":
        cases += [
            ("contacts", "/contacts/", "GET", "/contacts/",
             {"params": {"locationId": LOCATION, "limit": 1000}}, 422),
            ("users", "/users/", "GET", "/users/", {}, 400),
        ]  # fmt: skip
    return cases


@pytest.mark.parametrize("version", API_VERSIONS)
def test_bad_input_answers_match_the_specs(
    sim: str, studio: Studio, registry: Registry, version: str
) -> None:
    for spec, path, method, url_path, kw, status in bad_inputs(studio, version):
        answer = call(sim, method, url_path, spec, version, **kw)
        assert answer.status_code == status, (url_path, kw, answer.text)
        check(registry, version, spec, path, method.lower(), answer)


def test_rate_limited_answer_has_ghl_shape_and_headers(studio: Studio, registry: Registry) -> None:
    """GHL documents no 429 schema; its body has BadRequestDTO's shape, checked against that."""
    with running_simulator(studio, rate_limit=RateLimit(1, 5.0)) as url:
        call(url, "GET", "/calendars/", "calendars", params={"locationId": LOCATION})
        refused = call(
            url, "GET", "/calendars/", "calendars", "v3", params={"locationId": LOCATION}
        )
    assert refused.status_code == 429
    assert refused.json() == {
        "statusCode": 429,
        "message": "Too many requests",
        "traceId": refused.headers["traceid"],
    }
    for version in API_VERSIONS:
        schema = {"$ref": common_uri(version, "BadRequestDTO")}
        OAS30Validator(schema, registry=registry).validate(refused.json())
    assert 1 <= int(refused.headers["Retry-After"]) <= 5


# --- webhooks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_changes(studio: Studio) -> tuple[Studio, list[Any]]:
    world = generate_studio(LOCATION, clients=80, seed=4, now=NOW)
    return world, world.advance(random.Random(9), NOW + timedelta(days=2), events=400)


def test_every_webhook_body_validates_against_ghl_schemas(
    live_changes: tuple[Studio, list[Any]],
) -> None:
    world, changes = live_changes
    assert {c.event_type for c in changes} == WEBHOOK_EVENTS
    schemas = {
        event: json.loads((DATA / "webhook-schemas" / f"{event}.schema.json").read_text())
        for event in WEBHOOK_EVENTS
    }
    for change in changes:
        body = webhook_body(change, world, webhook_id="3f1c", timestamp=NOW)
        jsonschema.validate(body, schemas[change.event_type])
        assert body["type"] == change.event_type and body["locationId"] == LOCATION
        assert body["timestamp"].endswith("Z")
        entity = body.get("appointment", body)
        assert change.entity_id in (entity.get("id"), entity.get("messageId"))
        if change.entity == "appointment":
            assert entity["startTime"][-6:] in ("-04:00", "-05:00")
        if change.entity == "message":
            assert entity["messageType"] in ("SMS", "Email")


def test_signed_deliveries_land_in_the_receiver(
    live_changes: tuple[Studio, list[Any]], receiver_url: str, signer: Signer, database: Database
) -> None:
    world, changes = live_changes
    sender = WebhookSender(
        receiver_url + "/webhooks/ghl",
        signer.ed25519,
        rsa_key=signer.rsa,
        duplicate_rate=0.2,
        reorder_rate=0.2,
        burst_every=25,
        burst_size=10,
        rate_per_second=None,
        seed=1,
    )
    try:
        sender.enqueue_changes(changes[:80], world)
        sender.flush()
    finally:
        sender.stop()
    counts = sender.counts
    assert counts["duplicated"] > 0 and counts["reordered"] > 0
    assert counts["rejected"] == counts["deferred"] == 0
    assert counts["acknowledged"] == counts["sent"] == 80 + counts["duplicated"]
    acknowledged = {orjson.loads(body)["webhookId"] for body in sender.acknowledged}
    assert len(acknowledged) == 80
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT payload->>'webhookId', signature_scheme FROM raw.webhook_events"
        ).fetchall()
    stored = {webhook_id for webhook_id, _ in rows}
    assert acknowledged <= stored
    assert len(rows) == len(stored)  # duplicates were recognised, not stored twice
