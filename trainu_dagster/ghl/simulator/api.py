"""The simulator's REST API: the slice of GHL API v2 TrainU uses, in GHL's documented shapes.

It enforces what real GHL enforces (bearer token per location, the `Version` header, the
sliding rate limit with its headers, keyset and cursor paging) so the client is tested
against the rules, not just the happy path. `/_sim/*` are local controls for tests.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trainu_dagster.ghl.simulator.ratelimit import RateLimit, SlidingWindowLimiter
from trainu_dagster.ghl.simulator.studio import (
    MESSAGE_TYPES,
    Record,
    Studio,
    epoch_ms,
    public,
)

CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"
CONVERSATIONS_VERSION = "2021-04-15"
OPPORTUNITIES_VERSION = "2021-07-28"
DEFAULT_RATE_LIMIT = RateLimit(100, 10.0, daily=200_000)
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - a fixed local token, not a secret

# The routes whose spec documents 422 (UnprocessableDTO); the others answer bad input with 400.
ANSWERS_422 = frozenset({"/contacts/", "/contacts/{contactId}", "/opportunities/search"})
Handler = Callable[[Request, str], Awaitable[Response]]


class ApiError(Exception):
    """Answered as GHL's error DTOs: message is a list for 422 (UnprocessableDTO)."""

    def __init__(self, status: int, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "statusCode": self.status,
            "message": [self.message] if self.status == 422 else self.message,
        }
        if self.error:
            body["error"] = self.error
        return body


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message, "Unprocessable Entity")


@dataclass
class Fault:
    status: int
    remaining: int
    path_prefix: str


class Controls:
    """Injected faults and request statistics, shared by every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.requests: Counter[tuple[str, int]] = Counter()

    def take_fault(self, path: str) -> int | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    return fault.status
            return None

    def count(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_route: dict[str, dict[str, int]] = {}
            for (route, status), n in self.requests.items():
                by_route.setdefault(route, {})[str(status)] = n
            by_status = Counter[str]()
            for (_, status), n in self.requests.items():
                by_status[str(status)] += n
            return {
                "total": sum(self.requests.values()),
                "byRoute": by_route,
                "byStatus": dict(by_status),
                "rateLimited": by_status["429"],
                "failed": sum(n for s, n in by_status.items() if s != "429" and int(s) >= 400),
            }


def json_response(body: Mapping[str, Any], status: int = 200, **headers: str) -> Response:
    trace = str(uuid.uuid4())
    return Response(
        orjson.dumps({**body, "traceId": trace}),
        status_code=status,
        media_type="application/json",
        headers={"traceid": trace, **headers},
    )


# --- query parsing ---------------------------------------------------------------------


def required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise unprocessable(f"{name} should not be empty")
    return value


def number(request: Request, name: str, *, status: int = 422) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        message = f"{name} must be a number"
        raise (unprocessable(message) if status == 422 else ApiError(status, message)) from None


def limit_param(request: Request, *, default: int, low: int, high: int) -> int:
    value = number(request, "limit")
    if value is None:
        return default
    if not low <= value <= high or value != int(value):
        raise unprocessable(f"limit must be an integer between {low} and {high}")
    return int(value)


def instant_ms(raw: str, name: str) -> int:
    """Export date filters: epoch milliseconds or ISO-8601 (the spec names no format)."""
    try:
        return int(float(raw))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO-8601 date or epoch milliseconds") from None
    return epoch_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


# --- sorted listings and keyset paging -----------------------------------------------------

Row = tuple[int, str, Record]  # (time ms, id, record): the order every listing pages in


def _pair(row: Row) -> tuple[int, str]:
    return row[0], row[1]


def _time(row: Row) -> int:
    return row[0]


class Listings:
    """Sorted views of the studio, kept until it next changes. Sorting every record on each
    page made the simulator, not the client, the bottleneck of a large pull."""

    MAX_VIEWS = 256  # filtered views (per contact, per calendar) are bounded

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._revision = -1
        self._views: dict[Hashable, list[Row]] = {}

    def view(self, key: Hashable, rows: Callable[[], Iterable[Row]]) -> list[Row]:
        """The caller holds the studio's lock."""
        if self._revision != self.studio.revision or len(self._views) >= self.MAX_VIEWS:
            self._views.clear()
            self._revision = self.studio.revision
        if key not in self._views:
            self._views[key] = sorted(rows())
        return self._views[key]


def keyset_page(
    request: Request, ordered: list[Row], path: str, location_key: str
) -> tuple[list[Record], dict[str, Any]]:
    """GHL's startAfter/startAfterId paging: ordered by (time ms, id), resumed strictly after.

    Stable under concurrent inserts because the key, not an offset, marks the position.
    """
    limit = limit_param(request, default=20, low=1, high=100)
    after_ms = number(request, "startAfter")
    after_id = request.query_params.get("startAfterId", "")
    before = (
        0 if after_ms is None else bisect.bisect_right(ordered, (after_ms, after_id), key=_pair)
    )
    rest = ordered[before:]
    page = rest[:limit]
    current = before // limit + 1
    meta: dict[str, Any] = {"total": len(ordered), "currentPage": current}
    if current > 1:
        meta["prevPage"] = current - 1
    if len(rest) > limit:
        last_ms, last_id, _ = page[-1]
        query = {location_key: request.query_params[location_key], "limit": limit}
        query.update(startAfter=last_ms, startAfterId=last_id)
        meta.update(
            startAfter=last_ms,
            startAfterId=last_id,
            nextPage=current + 1,
            nextPageUrl=f"{str(request.base_url).rstrip('/')}{path}?{urlencode(query)}",
        )
    return [public(r) for _, _, r in page], meta


# --- the app ---------------------------------------------------------------------------


def create_simulator_app(
    studio: Studio,
    *,
    tokens: Mapping[str, str] | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
) -> Starlette:
    """GHL API v2 for one studio; `tokens` maps bearer token -> the location it may read."""
    tokens = dict(tokens or {DEFAULT_TOKEN: studio.location_id})
    limiter = SlidingWindowLimiter(rate_limit) if rate_limit else None
    controls = Controls()
    listings = Listings(studio)

    def live_rows(kind: str, time_field: str) -> Callable[[], Iterable[Row]]:
        records = studio.entities[kind].values()
        return lambda: ((epoch_ms(r[time_field]), r["id"], r) for r in records if not r["deleted"])

    def own_location(location: str, requested: str) -> None:
        if requested != location:
            raise ApiError(403, "The token does not have access to this location.", "Forbidden")

    def endpoint(path: str, version: str, handler: Handler, method: str = "GET") -> Route:
        """Faults, auth, Version, rate limit, then the handler; every answer is counted."""
        label = f"{method} {path}"

        async def run(request: Request) -> Response:
            response = await answer(request)
            controls.count(label, response.status_code)
            return response

        async def answer(request: Request) -> Response:
            fault = controls.take_fault(request.url.path)
            if fault is not None:
                return json_response(
                    {"statusCode": fault, "message": "Simulated upstream failure"}, fault
                )
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            location = tokens.get(token) if scheme.lower() == "bearer" else None
            if location is None:
                error = ApiError(401, "Invalid JWT", "Unauthorized")
                return json_response(error.body(), 401)
            if request.headers.get("version") != version:
                error = ApiError(400, f"Version header must be {version} for this endpoint")
                return json_response(error.body(), 400)
            headers: dict[str, str] = {}
            if limiter is not None:
                verdict = limiter.check(location)
                headers = verdict.headers(limiter.limit)
                if not verdict.allowed:
                    return json_response(
                        {"statusCode": 429, "message": "Too many requests"}, 429, **headers
                    )
            try:
                response = await handler(request, location)
            except ApiError as error:
                if error.status == 422 and path not in ANSWERS_422:
                    error = ApiError(400, error.message)
                return json_response(error.body(), error.status, **headers)
            response.headers.update(headers)
            return response

        return Route(path, run, methods=[method])

    async def list_contacts(request: Request, location: str) -> Response:
        own_location(location, required(request, "locationId"))
        with studio.lock:
            ordered = listings.view("contacts", live_rows("contact", "dateAdded"))
            contacts, meta = keyset_page(request, ordered, "/contacts/", "locationId")
        return json_response({"contacts": contacts, "count": meta["total"], "meta": meta})

    def find(kind: str, entity_id: str, location: str, missing: str) -> Record:
        record = studio.entities[kind].get(entity_id)
        if record is None or record["deleted"] or record["locationId"] != location:
            raise ApiError(400, missing)
        return record

    async def get_contact(request: Request, location: str) -> Response:
        with studio.lock:
            contact = find(
                "contact", request.path_params["contactId"], location, "Contact not found"
            )
            return json_response({"contact": public(contact)})

    async def list_calendars(request: Request, location: str) -> Response:
        own_location(location, required(request, "locationId"))
        with studio.lock:
            return json_response({"calendars": list(studio.calendars.values())})

    async def list_events(request: Request, location: str) -> Response:
        own_location(location, required(request, "locationId"))
        params = request.query_params
        owner = next(
            ((k, params[k]) for k in ("calendarId", "userId", "groupId") if params.get(k)), None
        )
        if owner is None:
            raise ApiError(400, "Either of calendarId, userId or groupId is required")
        start, end = (number(request, k, status=400) for k in ("startTime", "endTime"))
        if start is None or end is None:
            raise ApiError(400, "startTime and endTime (epoch milliseconds) are required")
        if end <= start:
            raise ApiError(400, "endTime must be after startTime")
        field = {"calendarId": "calendarId", "userId": "assignedUserId", "groupId": "groupId"}[
            owner[0]
        ]
        with studio.lock:
            ordered = listings.view(
                ("events", owner),
                lambda: (
                    (epoch_ms(a["startTime"]), a["id"], a)
                    for a in studio.appointments.values()
                    if a[field] == owner[1] and not a["deleted"]
                ),
            )
            low = bisect.bisect_left(ordered, start, key=_time)
            high = bisect.bisect_left(ordered, end, key=_time)
            return json_response({"events": [public(a) for _, _, a in ordered[low:high]]})

    async def get_event(request: Request, location: str) -> Response:
        with studio.lock:
            event = find("appointment", request.path_params["eventId"], location, "Event not found")
            return json_response({"event": public(event)})

    async def export_messages(request: Request, location: str) -> Response:
        own_location(location, required(request, "locationId"))
        params = request.query_params
        limit = limit_param(request, default=100, low=10, high=500)
        sort_by = params.get("sortBy", "createdAt")
        order = params.get("sortOrder", "desc")
        if sort_by not in ("createdAt", "updatedAt") or order not in ("asc", "desc"):
            raise unprocessable("sortBy must be createdAt|updatedAt and sortOrder asc|desc")
        field = "dateAdded" if sort_by == "createdAt" else "dateUpdated"
        low = instant_ms(params["startDate"], "startDate") if params.get("startDate") else None
        high = instant_ms(params["endDate"], "endDate") if params.get("endDate") else None
        cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
        channel = params.get("channel")
        if channel is not None and channel not in MESSAGE_TYPES:
            raise unprocessable(f"channel must be one of {', '.join(MESSAGE_TYPES)}")
        # GHL: without `channel` the export leaves emails out.
        kinds = {MESSAGE_TYPES[c][0] for c in ([channel] if channel else MESSAGE_TYPES)}
        if channel is None:
            kinds.discard(MESSAGE_TYPES["Email"][0])
        filters = {k: params[k] for k in ("contactId", "conversationId") if params.get(k)}
        with studio.lock:
            rows = listings.view(
                ("messages", field, frozenset(kinds), frozenset(filters.items())),
                lambda: (
                    (epoch_ms(m[field]), m["id"], m)
                    for m in studio.messages.values()
                    if not m["deleted"]
                    and m["locationId"] == location
                    and m["messageType"] in kinds
                    and all(m[k] == v for k, v in filters.items())
                ),
            )
            first = 0 if low is None else bisect.bisect_left(rows, low, key=_time)
            end = len(rows) if high is None else bisect.bisect_right(rows, high, key=_time)
            total = max(end - first, 0)
            if order == "desc":  # the rows before the cursor, newest first
                stop = (
                    end
                    if cursor is None
                    else bisect.bisect_left(rows, cursor, first, end, key=_pair)
                )
                page = rows[max(first, stop - limit) : stop][::-1]
                more = stop - limit > first
            else:  # the rows after the cursor, oldest first
                begin = (
                    first
                    if cursor is None
                    else bisect.bisect_right(rows, cursor, first, end, key=_pair)
                )
                page = rows[begin : min(begin + limit, end)]
                more = end - begin > limit
            body: dict[str, Any] = {"messages": [public(m) for _, _, m in page], "total": total}
        if more:
            body["nextCursor"] = encode_cursor(page[-1][0], page[-1][1])
        return json_response(body)

    async def search_opportunities(request: Request, location: str) -> Response:
        own_location(location, required(request, "location_id"))
        with studio.lock:
            ordered = listings.view("opportunities", live_rows("opportunity", "createdAt"))
            found, meta = keyset_page(request, ordered, "/opportunities/search", "location_id")
        return json_response({"opportunities": found, "meta": meta})

    async def send_message(request: Request, location: str) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise ApiError(400, "Request body must be JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        channel = body.get("type")
        if channel not in MESSAGE_TYPES:
            raise unprocessable(
                f"type must be one of the following values: {', '.join(MESSAGE_TYPES)}"
            )
        contact_id = body.get("contactId")
        if not isinstance(contact_id, str) or not contact_id:
            raise unprocessable("contactId should not be empty")
        text = body.get("message") or (body.get("html") if channel == "Email" else None)
        if not isinstance(text, str) or not text.strip():
            raise unprocessable(
                "message should not be empty"
                if channel == "SMS"
                else "html or message should not be empty"
            )
        with studio.lock:
            contact = find("contact", contact_id, location, "Contact not found")
            setting = (contact.get("dndSettings") or {}).get(channel, {})
            if contact["dnd"] or setting.get("status") == "active":
                raise ApiError(400, f"Cannot send message as DND is active for {channel}.")
            message = studio.add_message(
                contact_id,
                max(datetime.now(UTC), studio.now),
                text,
                direction="outbound",
                channel=channel,
                status="pending",
                source="api",
            )
        reply = {
            "conversationId": message["conversationId"],
            "messageId": message["id"],
            "msg": "Message queued successfully.",
            "status": "pending",
        }
        if channel == "Email":
            reply["emailMessageId"] = message["id"]
        return json_response(reply)

    async def add_fault(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        fault = Fault(
            int(spec.get("status", 502)), int(spec.get("count", 1)), spec.get("path_prefix", "/")
        )
        controls.faults.append(fault)
        return json_response(
            {"status": fault.status, "count": fault.remaining, "path_prefix": fault.path_prefix}
        )

    async def stats(request: Request) -> Response:
        return json_response(controls.stats())

    async def truth(request: Request) -> Response:
        return json_response(studio.summary())

    return Starlette(
        routes=[
            endpoint("/contacts/", CONTACTS_VERSION, list_contacts),
            endpoint("/contacts/{contactId}", CONTACTS_VERSION, get_contact),
            endpoint("/calendars/", CALENDARS_VERSION, list_calendars),
            endpoint("/calendars/events", CALENDARS_VERSION, list_events),
            endpoint("/calendars/events/appointments/{eventId}", CALENDARS_VERSION, get_event),
            endpoint("/conversations/messages/export", CONVERSATIONS_VERSION, export_messages),
            endpoint("/conversations/messages", CONVERSATIONS_VERSION, send_message, "POST"),
            endpoint("/opportunities/search", OPPORTUNITIES_VERSION, search_opportunities),
            Route("/_sim/faults", add_fault, methods=["POST"]),
            Route("/_sim/stats", stats),
            Route("/_sim/truth", truth),
        ]
    )


def encode_cursor(sort_value: int, last_id: str) -> str:
    """Opaque like GHL's: base64 JSON of the last row's sort value and id."""
    return base64.b64encode(orjson.dumps({"lastSort": [sort_value], "lastId": last_id})).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.b64decode(cursor, validate=True))
        return int(data["lastSort"][0]), str(data["lastId"])
    except (binascii.Error, orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        raise ApiError(400, "Invalid cursor") from None
