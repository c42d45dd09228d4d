"""The simulator's REST API: the slice of GHL's API TrainU uses, in GHL's documented shapes.

Every endpoint speaks both API versions real GHL accepts: the dated v2 version its spec
names (`2021-07-28`, `2021-04-15`) and `v3`, the only one GHL's official SDKs send. Each
answer takes the shape of the version asked for where the specs differ (v3 spells contacts'
DND channels in lower camel case, flags events `deleted`, takes the opportunity search's
params in camelCase...). It enforces what real GHL enforces (bearer token per location, the
`Version` header, the sliding rate limit with its headers, keyset and cursor paging) so the
client is tested against the rules, not just the happy path. `/_sim/*` are local controls
for tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import operator
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ghl_simulator.ratelimit import RateLimit, SlidingWindowLimiter
from ghl_simulator.studio import (
    MESSAGE_TYPES,
    Record,
    Studio,
    epoch_ms,
    public,
)
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"
CONVERSATIONS_VERSION = "2021-04-15"
OPPORTUNITIES_VERSION = "2021-07-28"
LOCATIONS_VERSION = "2021-07-28"
USERS_VERSION = "2021-07-28"
V3 = "v3"
DEFAULT_RATE_LIMIT = RateLimit(100, 10.0, daily=200_000)
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - a fixed local token, not a secret

# The routes whose spec documents 422 (UnprocessableDTO); the others answer bad input with 400.
ANSWERS_422 = frozenset(
    {
        "/contacts/",
        "/contacts/{contactId}",
        "/opportunities/search",
        "/locations/{locationId}",
        "/users/search",
    }
)
# v3 spells the DND channels in lower camel case; the studio keeps v2's spelling.
V3_DND_CHANNELS = {
    "SMS": "sms",
    "Email": "email",
    "Call": "call",
    "WhatsApp": "whatsApp",
    "GMB": "gmb",
    "FB": "fb",
}
# The opportunity search's filters: v2 names the params in snake_case, v3 like the fields.
V2_OPPORTUNITY_PARAMS = {
    "locationId": "location_id",
    "pipelineId": "pipeline_id",
    "pipelineStageId": "pipeline_stage_id",
    "contactId": "contact_id",
    "assignedTo": "assigned_to",
}
OPPORTUNITY_STATUSES = ("all", "open", "won", "lost", "abandoned")
SEARCH_DATES = ("dateAdded", "dateUpdated")  # what contact search filters by range and sorts on
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
PAGED_RESULTS = 10_000  # GHL's contact search pages by number this far; searchAfter beyond
CONVERSATION_STATUSES = ("all", "read", "unread", "starred", "recents")
# Documented filters with nothing to match in the studio: refused rather than ignored.
UNSIMULATED_CONVERSATION_PARAMS = (
    "followers",
    "mentions",
    "lastMessageAction",
    "scoreProfile",
    "sortScoreProfile",
    "scoreProfileMin",
    "scoreProfileMax",
)
UNSIMULATED_USER_PARAMS = ("sort", "sortDirection", "enabled2waySync")

Handler = Callable[[Request, str, bool], Awaitable[Response]]  # (request, location, v3)
T = TypeVar("T")


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
    """Bad input: 422 where the route's spec documents it, else 400 (see `endpoint`)."""
    return ApiError(422, message, "Unprocessable Entity")


def forbidden(what: str) -> ApiError:
    return ApiError(403, f"The token does not have access to this {what}.", "Forbidden")


@dataclass
class Fault:
    """The next `remaining` requests under `path_prefix` answer `status`. `after`: the
    request is carried out first, then its answer lost that way (GHL sent the message,
    the caller saw a 5xx); `delay_seconds`: the answer comes that late (a timeout)."""

    status: int
    remaining: int
    path_prefix: str
    after: bool = False
    delay_seconds: float = 0.0


class Controls:
    """Injected faults and request statistics, shared by every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.requests: Counter[tuple[str, int]] = Counter()

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    return fault
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


# --- input parsing ---------------------------------------------------------------------


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


def whole_number(value: object, name: str, *, low: int, high: int) -> int:
    """`value` (from the query or a JSON body) as an int in [low, high]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= high
        or value != int(value)
    ):
        raise unprocessable(f"{name} must be an integer between {low} and {high}")
    return int(value)


def count_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    value = number(request, name)
    return default if value is None else whole_number(value, name, low=low, high=high)


def limit_param(request: Request, *, default: int, low: int, high: int) -> int:
    return count_param(request, "limit", default=default, low=low, high=high)


def choice(
    request: Request, name: str, allowed: Sequence[str], default: str | None = None
) -> str | None:
    """The query param `name`, one of `allowed`, else `default`."""
    value = request.query_params.get(name) or default
    if value is not None and value not in allowed:
        raise unprocessable(f"{name} must be one of {', '.join(allowed)}")
    return value


def refuse_unsimulated(request: Request, names: Iterable[str]) -> None:
    """Documented params the simulator does not model fail loudly, so no test believes it
    filtered."""
    asked = [name for name in names if name in request.query_params]
    if asked:
        raise ApiError(400, f"The simulator does not support {', '.join(asked)}")


def instant_ms(raw: object, name: str) -> int:
    """A date filter: epoch milliseconds or ISO-8601 (naive means UTC)."""
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        try:
            return int(float(raw))
        except (ValueError, OverflowError):
            pass
        try:
            moment = datetime.fromisoformat(str(raw))
        except ValueError:
            pass
        else:
            return epoch_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    raise ApiError(400, f"{name} must be an ISO-8601 date or epoch milliseconds")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def body_string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise unprocessable(f"{name} should not be empty")
    return value


# --- contact search's body -------------------------------------------------------------

Condition = tuple[str, str, Hashable]  # (field, comparison, operand); dates in epoch ms


def search_sort(raw: object) -> tuple[str, bool]:
    """(field, descending) of the one sort the simulator supports; newest added by default."""
    if not raw:
        return "dateAdded", True
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], dict):
        field, direction = raw[0].get("field"), raw[0].get("direction", "asc")
        if field in SEARCH_DATES and direction in ("asc", "desc"):
            return field, direction == "desc"
    raise unprocessable(
        "sort must be [{field: dateAdded|dateUpdated, direction: asc|desc}] "
        "(the simulator sorts on one field, then id)"
    )


def search_filters(raw: object) -> tuple[Condition, ...]:
    """GHL's filters, all ANDed; the simulator supports `range` (gt, gte, lt, lte) on
    dateAdded/dateUpdated and `eq` on id."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise unprocessable("filters must be an array")
    return tuple(condition for item in raw for condition in search_filter(item))


def search_filter(item: object) -> list[Condition]:
    if isinstance(item, dict):
        field, op, value = item.get("field"), item.get("operator"), item.get("value")
        if field == "id" and op == "eq" and isinstance(value, str):
            return [("id", "eq", value)]
        if (
            field in SEARCH_DATES
            and op == "range"
            and isinstance(value, dict)
            and value
            and value.keys() <= {"gt", "gte", "lt", "lte"}
        ):
            return [(field, bound, instant_ms(v, f"{field} {bound}")) for bound, v in value.items()]
    raise unprocessable(
        "filters supports {field: dateAdded|dateUpdated, operator: range, "
        "value: {gt|gte|lt|lte: date}} and {field: id, operator: eq, value: id}"
    )


def search_after(raw: object) -> tuple[int, str] | None:
    if raw is None:
        return None
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and isinstance(raw[0], int | float)
        and not isinstance(raw[0], bool)
        and isinstance(raw[1], str)
    ):
        return int(raw[0]), raw[1]
    raise unprocessable("searchAfter must be the [sort value, id] of a contact already found")


def matches(contact: Record, conditions: Iterable[Condition]) -> bool:
    return all(
        COMPARISONS[op](epoch_ms(contact[field]) if field in SEARCH_DATES else contact[field], v)
        for field, op, v in conditions
    )


def conversation_filter(request: Request) -> Callable[[Record], bool]:
    """The conversation search's filters as one test of a summary: contactId, id,
    assignedTo (comma-separated), lastMessageType, lastMessageDirection, status, query
    (name, email, phone), startDate/endDate (dateAdded, epoch ms)."""
    refuse_unsimulated(request, UNSIMULATED_CONVERSATION_PARAMS)
    params = request.query_params
    status = choice(request, "status", CONVERSATION_STATUSES, "all")
    first, last = number(request, "startDate"), number(request, "endDate")
    equal = {k: params[k] for k in ("contactId", "id", "lastMessageType") if params.get(k)}
    if direction := choice(request, "lastMessageDirection", ("inbound", "outbound")):
        equal["lastMessageDirection"] = direction
    assigned = set(params["assignedTo"].split(",")) if params.get("assignedTo") else None
    query = params.get("query", "").lower()

    def wanted(c: Record) -> bool:
        return (
            all(c[k] == v for k, v in equal.items())
            and (assigned is None or c["assignedTo"] in assigned)
            and (status != "read" or c["unreadCount"] == 0)
            and (status != "unread" or c["unreadCount"] > 0)
            and status != "starred"  # nobody stars conversations in the studio
            and (not query or any(query in c[k].lower() for k in ("fullName", "email", "phone")))
            and (first is None or c["dateAdded"] >= first)
            and (last is None or c["dateAdded"] <= last)
        )

    return wanted


# --- answers in each version's shape ---------------------------------------------------


def contact_answer(contact: Record, v3: bool) -> Record:
    shown = public(contact)
    if v3 and "dndSettings" in shown:
        shown["dndSettings"] = {V3_DND_CHANNELS[k]: v for k, v in shown["dndSettings"].items()}
    return shown


def event_answer(appointment: Record, v3: bool) -> Record:
    """v3 events say whether they are deleted; v2 ones do not."""
    shown = public(appointment)
    if v3:
        shown["deleted"] = appointment["deleted"]
    return shown


def pipeline_answer(pipeline: Record, location: str, v3: bool) -> Record:
    """The studio's pipeline with GHL's display settings. v3 adds useOpportunityProbability:
    the studio sets no stage win probabilities, so it is false, and v3's probability and
    forecast fields stay off its opportunities."""
    answer = {**pipeline, "locationId": location, "showInFunnel": True, "showInPieChart": True}
    if v3:
        answer["useOpportunityProbability"] = False
    return answer


def conversation_answer(conversation: Record, contact: Record, messages: list[Row]) -> Record:
    """GHL's conversation summary, from its messages (oldest first): unread are the inbound
    messages since the studio last wrote. `lastMessageDate` (epoch ms) is GHL's sort value,
    what `startAfterDate` pages by."""
    last_ms, _, last = messages[-1]
    wrote = [i for i, (_, _, m) in enumerate(messages) if m["direction"] == "outbound"]
    unread = messages[wrote[-1] + 1 :] if wrote else messages
    return {
        "id": conversation["id"],
        "contactId": contact["id"],
        "locationId": conversation["locationId"],
        "assignedTo": contact["assignedTo"],
        "lastMessageBody": last["body"],
        "lastMessageType": last["messageType"],
        "lastMessageDirection": last["direction"],
        "lastMessageDate": last_ms,
        "type": "TYPE_PHONE",
        "unreadCount": len(unread),
        "fullName": contact["name"],
        "contactName": contact["contactName"],
        "email": contact["email"],
        "phone": contact["phone"],
        "dateAdded": epoch_ms(conversation["dateAdded"]),
        "dateUpdated": epoch_ms(conversation["dateUpdated"]),
    }


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
        self._views: dict[Hashable, Any] = {}

    def cached(self, key: Hashable, build: Callable[[], T]) -> T:
        """`build()`, kept under `key` until the studio changes. The caller holds its lock."""
        if self._revision != self.studio.revision or len(self._views) >= self.MAX_VIEWS:
            self._views.clear()
            self._revision = self.studio.revision
        if key not in self._views:
            self._views[key] = build()
        return cast(T, self._views[key])

    def view(self, key: Hashable, rows: Callable[[], Iterable[Row]]) -> list[Row]:
        return self.cached(key, lambda: sorted(rows()))


def keyset_slice(
    rows: list[Row],
    after: tuple[int, str] | None,
    limit: int,
    *,
    descending: bool,
    lo: int = 0,
    hi: int | None = None,
) -> tuple[list[Row], bool]:
    """The `limit` rows of rows[lo:hi] that follow the key `after` in the listing's
    direction, and whether more follow them. Resuming at a key, not an offset, keeps paging
    stable while records are added."""
    hi = len(rows) if hi is None else hi
    if descending:
        stop = hi if after is None else bisect.bisect_left(rows, after, lo, hi, key=_pair)
        return rows[max(lo, stop - limit) : stop][::-1], stop - limit > lo
    start = lo if after is None else bisect.bisect_right(rows, after, lo, hi, key=_pair)
    return rows[start : min(start + limit, hi)], hi - start > limit


def numbered_page(rows: list[Row], page: int, limit: int, *, descending: bool) -> list[Row]:
    """Page `page` (from 1) of `limit` rows in the listing's direction."""
    skip = (page - 1) * limit
    if descending:
        end = max(0, len(rows) - skip)
        return rows[max(0, end - limit) : end][::-1]
    return rows[skip : skip + limit]


def keyset_page(
    request: Request, ordered: list[Row], path: str
) -> tuple[list[Record], dict[str, Any]]:
    """GHL's startAfter/startAfterId paging: ordered by (time ms, id), resumed strictly after."""
    limit = limit_param(request, default=20, low=1, high=100)
    after_ms = number(request, "startAfter")
    after_id = request.query_params.get("startAfterId", "")
    after = None if after_ms is None else (int(after_ms), after_id)
    before = 0 if after is None else bisect.bisect_right(ordered, after, key=_pair)
    page, more = keyset_slice(ordered, after, limit, descending=False)
    current = before // limit + 1
    meta: dict[str, Any] = {"total": len(ordered), "currentPage": current}
    if current > 1:
        meta["prevPage"] = current - 1
    if more:
        last_ms, last_id, _ = page[-1]
        query = {k: v for k, v in request.query_params.items() if not k.startswith("startAfter")}
        query.update(limit=str(limit), startAfter=str(last_ms), startAfterId=last_id)
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
    authorize: Callable[[str], str] | None = None,
) -> Starlette:
    """GHL's API for one studio; `tokens` maps bearer token -> the location it may read.
    `authorize` (the agency's, `oauth.AuthorizationServer.authorize`) replaces `tokens`: it
    gives a bearer token's location or raises the `ApiError` GHL would answer."""
    tokens = dict(tokens or {DEFAULT_TOKEN: studio.location_id})

    def static_token(token: str) -> str:
        location = tokens.get(token)
        if location is None:
            raise ApiError(401, "Invalid JWT", "Unauthorized")
        return location

    resolve = authorize or static_token
    limiter = SlidingWindowLimiter(rate_limit) if rate_limit else None
    controls = Controls()
    listings = Listings(studio)

    def live_rows(kind: str, time_field: str) -> Callable[[], Iterable[Row]]:
        records = studio.entities[kind].values()
        return lambda: ((epoch_ms(r[time_field]), r["id"], r) for r in records if not r["deleted"])

    def own_location(location: str, requested: str) -> None:
        if requested != location:
            raise forbidden("location")

    def endpoint(
        path: str, dated: str, handler: Handler, method: str = "GET", *, v3: bool = True
    ) -> Route:
        """Faults, auth, Version (the dated one the v2 spec names, or `v3` where v3 has the
        path), rate limit, then the handler; every answer is counted."""
        label = f"{method} {path}"
        versions = (dated, V3) if v3 else (dated,)

        async def run(request: Request) -> Response:
            fault = controls.take_fault(request.url.path)
            if fault is None or fault.after:
                response = await answer(request)
            if fault is not None:
                await asyncio.sleep(fault.delay_seconds)
                body = {"statusCode": fault.status, "message": "Simulated upstream failure"}
                response = json_response(body, fault.status)
            controls.count(label, response.status_code)
            return response

        async def answer(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            try:
                location = resolve(token if scheme.lower() == "bearer" else "")
            except ApiError as error:
                return json_response(error.body(), error.status)
            version = request.headers.get("version")
            if version not in versions:
                message = f"Version header must be {' or '.join(versions)} for this endpoint"
                return json_response(ApiError(400, message).body(), 400)
            headers: dict[str, str] = {}
            if limiter is not None:
                verdict = limiter.check(location)
                headers = verdict.headers(limiter.limit)
                if not verdict.allowed:
                    return json_response(
                        {"statusCode": 429, "message": "Too many requests"}, 429, **headers
                    )
            try:
                response = await handler(request, location, version == V3)
            except ApiError as error:
                if error.status == 422 and path not in ANSWERS_422:
                    error = ApiError(400, error.message)
                return json_response(error.body(), error.status, **headers)
            response.headers.update(headers)
            return response

        return Route(path, run, methods=[method])

    def find(kind: str, entity_id: str, location: str, missing: str) -> Record:
        record = studio.entities[kind].get(entity_id)
        if record is None or record["deleted"] or record["locationId"] != location:
            raise ApiError(400, missing)
        return record

    # --- contacts ----------------------------------------------------------------------

    async def list_contacts(request: Request, location: str, v3: bool) -> Response:
        """GET /contacts/: deprecated in v2 (search replaces it) and gone from v3."""
        own_location(location, required(request, "locationId"))
        with studio.lock:
            ordered = listings.view("contacts", live_rows("contact", "dateAdded"))
            contacts, meta = keyset_page(request, ordered, "/contacts/")
        return json_response({"contacts": contacts, "count": meta["total"], "meta": meta})

    async def search_contacts(request: Request, location: str, v3: bool) -> Response:
        """POST /contacts/search. Neither spec documents the body or the answer; this
        follows GHL's search documentation: `locationId`, `pageLimit` (1..500), `page` (up
        to 10,000 results) or `searchAfter` (beyond), `filters`, `sort`; the answer is
        `{contacts, total}`, each contact a full record with its `searchAfter` key
        ([sort value, id]). Order is (sort value, id), so keyset paging is stable."""
        body = await json_body(request)
        own_location(location, body_string(body, "locationId"))
        limit = whole_number(body.get("pageLimit"), "pageLimit", low=1, high=500)
        field, descending = search_sort(body.get("sort"))
        conditions = search_filters(body.get("filters"))
        after = search_after(body.get("searchAfter"))
        if "query" in body:
            raise unprocessable("The simulator does not support query (full-text search)")
        if after is not None and "page" in body:
            raise unprocessable("Send page or searchAfter, not both")
        page = whole_number(body.get("page", 1), "page", low=1, high=PAGED_RESULTS)
        if page * limit > PAGED_RESULTS:
            raise unprocessable(f"page and pageLimit reach past {PAGED_RESULTS:,} results")
        with studio.lock:
            rows = listings.view(
                ("contact-search", location, field, conditions),
                lambda: (
                    (epoch_ms(c[field]), c["id"], c)
                    for c in studio.contacts.values()
                    if not c["deleted"] and c["locationId"] == location and matches(c, conditions)
                ),
            )
            if after is None:
                found = numbered_page(rows, page, limit, descending=descending)
            else:
                found, _ = keyset_slice(rows, after, limit, descending=descending)
            contacts = [{**contact_answer(c, v3), "searchAfter": [ms, cid]} for ms, cid, c in found]
            return json_response({"contacts": contacts, "total": len(rows)})

    async def get_contact(request: Request, location: str, v3: bool) -> Response:
        with studio.lock:
            contact = find(
                "contact", request.path_params["contactId"], location, "Contact not found"
            )
            return json_response({"contact": contact_answer(contact, v3)})

    # --- calendars ---------------------------------------------------------------------

    async def list_calendars(request: Request, location: str, v3: bool) -> Response:
        own_location(location, required(request, "locationId"))
        with studio.lock:
            return json_response({"calendars": list(studio.calendars.values())})

    async def list_events(request: Request, location: str, v3: bool) -> Response:
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
            events = [event_answer(a, v3) for _, _, a in ordered[low:high]]
            return json_response({"events": events})

    async def get_event(request: Request, location: str, v3: bool) -> Response:
        with studio.lock:
            event = find("appointment", request.path_params["eventId"], location, "Event not found")
            return json_response({"event": event_answer(event, v3)})

    # --- conversations -----------------------------------------------------------------

    def messages_by_conversation() -> dict[str, list[Row]]:
        """Each conversation's live messages, oldest first. The caller holds the lock."""

        def build() -> dict[str, list[Row]]:
            grouped: dict[str, list[Row]] = {}
            for m in studio.messages.values():
                if not m["deleted"]:
                    row = (epoch_ms(m["dateAdded"]), m["id"], m)
                    grouped.setdefault(m["conversationId"], []).append(row)
            for rows in grouped.values():
                rows.sort()
            return grouped

        return listings.cached("messages-by-conversation", build)

    def find_conversation(conversation_id: str, location: str) -> Record:
        """A live contact's conversation: GHL deletes a contact's conversations with it."""
        conversation = studio.conversations.get(conversation_id)
        if conversation is None or conversation["locationId"] != location:
            raise ApiError(400, "Conversation not found")
        find("contact", conversation["contactId"], location, "Conversation not found")
        return conversation

    def conversation_summaries(location: str) -> Iterator[Record]:
        """The location's conversations that have messages, summarised. The caller holds
        the lock."""
        grouped = messages_by_conversation()
        for conversation in studio.conversations.values():
            contact = studio.contacts[conversation["contactId"]]
            messages = grouped.get(conversation["id"])
            if messages and not contact["deleted"] and conversation["locationId"] == location:
                yield conversation_answer(conversation, contact, messages)

    async def search_conversations(request: Request, location: str, v3: bool) -> Response:
        """GET /conversations/search: the latest message first (`sort=asc`: oldest first),
        `limit` at a time; the next page starts after `startAfterDate`, the last one's
        `lastMessageDate`."""
        own_location(location, required(request, "locationId"))
        wanted = conversation_filter(request)
        limit = limit_param(request, default=20, low=1, high=100)
        descending = choice(request, "sort", ("asc", "desc"), "desc") == "desc"
        choice(request, "sortBy", ("last_message_date",), "last_message_date")
        after = number(request, "startAfterDate")
        with studio.lock:
            found = [c for c in conversation_summaries(location) if wanted(c)]
        found.sort(key=lambda c: (c["lastMessageDate"], c["id"]), reverse=descending)

        def beyond(c: Record) -> bool:
            return after is None or (
                c["lastMessageDate"] < after if descending else c["lastMessageDate"] > after
            )

        page = [c for c in found if beyond(c)][:limit]
        return json_response({"conversations": page, "total": len(found)})

    async def conversation_messages(request: Request, location: str, v3: bool) -> Response:
        """GET /conversations/{conversationId}/messages: newest first, `limit` (default 20)
        at a time; `lastMessageId` resumes with the messages older than that one, and
        `nextPage` says whether any remain. `type` filters by message type (comma-separated)."""
        limit = limit_param(request, default=20, low=1, high=100)
        types = set(filter(None, request.query_params.get("type", "").split(",")))
        if not all(t.startswith("TYPE_") for t in types):
            raise ApiError(400, "type must be message types such as TYPE_SMS,TYPE_EMAIL")
        last_id = request.query_params.get("lastMessageId")
        with studio.lock:
            conversation = find_conversation(request.path_params["conversationId"], location)
            rows = messages_by_conversation().get(conversation["id"], [])
            after = None
            if last_id:
                anchor = studio.messages.get(last_id)
                if anchor is None or anchor["conversationId"] != conversation["id"]:
                    raise ApiError(400, "lastMessageId is not a message of this conversation")
                after = (epoch_ms(anchor["dateAdded"]), last_id)
            if types:
                rows = [row for row in rows if row[2]["messageType"] in types]
            page, more = keyset_slice(rows, after, limit, descending=True)
            messages = [public(m) for _, _, m in page]
        return json_response(
            {"lastMessageId": page[-1][1] if page else "", "nextPage": more, "messages": messages}
        )

    async def export_messages(request: Request, location: str, v3: bool) -> Response:
        own_location(location, required(request, "locationId"))
        params = request.query_params
        limit = limit_param(request, default=100, low=10, high=500)
        sort_by = choice(request, "sortBy", ("createdAt", "updatedAt"), "createdAt")
        descending = choice(request, "sortOrder", ("asc", "desc"), "desc") == "desc"
        channel = choice(request, "channel", tuple(MESSAGE_TYPES))
        field = "dateAdded" if sort_by == "createdAt" else "dateUpdated"
        low = instant_ms(params["startDate"], "startDate") if params.get("startDate") else None
        high = instant_ms(params["endDate"], "endDate") if params.get("endDate") else None
        cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
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
            page, more = keyset_slice(
                rows, cursor, limit, descending=descending, lo=first, hi=max(first, end)
            )
            body: dict[str, Any] = {
                "messages": [public(m) for _, _, m in page],
                "total": max(end - first, 0),
            }
        if more:
            body["nextCursor"] = encode_cursor(page[-1][0], page[-1][1])
        return json_response(body)

    async def send_message(request: Request, location: str, v3: bool) -> Response:
        body = await json_body(request)
        channel = body.get("type")
        if channel not in MESSAGE_TYPES:
            raise unprocessable(
                f"type must be one of the following values: {', '.join(MESSAGE_TYPES)}"
            )
        contact_id = body_string(body, "contactId")
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
        # what a newcomer watches on `make up`'s console after approving a draft
        log.info("message_sent_through_api", channel=channel, contact_id=contact_id,
                 message_id=message["id"], conversation_id=message["conversationId"])  # fmt: skip
        reply = {
            "conversationId": message["conversationId"],
            "messageId": message["id"],
            "msg": "Message queued successfully.",
            "status": "pending",
        }
        if channel == "Email":
            reply["emailMessageId"] = message["id"]
        return json_response(reply)

    # --- opportunities -----------------------------------------------------------------

    async def search_opportunities(request: Request, location: str, v3: bool) -> Response:
        """Oldest created first, keyset-paged; filters by pipeline, stage, contact, assignee
        (v2's params in snake_case, v3's in camelCase) and status."""
        names = {field: field if v3 else v2 for field, v2 in V2_OPPORTUNITY_PARAMS.items()}
        own_location(location, required(request, names.pop("locationId")))
        params = request.query_params
        equal: dict[str, str | None] = {
            field: params[name] for field, name in names.items() if params.get(name)
        }
        status = choice(request, "status", OPPORTUNITY_STATUSES, "all")
        if status != "all":
            equal["status"] = status
        with studio.lock:
            ordered = listings.view(
                ("opportunities", frozenset(equal.items())),
                lambda: (
                    (epoch_ms(o["createdAt"]), o["id"], o)
                    for o in studio.opportunities.values()
                    if not o["deleted"] and all(o[k] == v for k, v in equal.items())
                ),
            )
            found, meta = keyset_page(request, ordered, "/opportunities/search")
        return json_response({"opportunities": found, "meta": meta})

    async def list_pipelines(request: Request, location: str, v3: bool) -> Response:
        own_location(location, required(request, "locationId"))
        return json_response({"pipelines": [pipeline_answer(studio.pipeline, location, v3)]})

    # --- locations and users -----------------------------------------------------------

    async def get_location(request: Request, location: str, v3: bool) -> Response:
        own_location(location, request.path_params["locationId"])
        with studio.lock:
            return json_response({"location": dict(studio.location)})

    def location_users(location: str) -> list[Record]:
        """The studio's trainers, by name."""
        users = [u for u in studio.users.values() if location in u["roles"]["locationIds"]]
        return sorted(users, key=lambda u: (u["name"], u["id"]))

    async def search_users(request: Request, location: str, v3: bool) -> Response:
        """GET /users/search: a company's users (`companyId` is required), narrowed by
        locationId, query (name or email), ids (comma-separated), role and type; `skip` and
        `limit` page. The simulated company has one location, the studio."""
        if required(request, "companyId") != studio.location["companyId"]:
            raise forbidden("company")
        own_location(location, request.query_params.get("locationId") or location)
        refuse_unsimulated(request, UNSIMULATED_USER_PARAMS)
        params = request.query_params
        skip = count_param(request, "skip", default=0, low=0, high=PAGED_RESULTS)
        limit = limit_param(request, default=25, low=1, high=100)
        ids = set(params["ids"].split(",")) if params.get("ids") else None
        query = params.get("query", "").lower()
        roles = {k: params[k] for k in ("role", "type") if params.get(k)}
        with studio.lock:
            users = [
                u
                for u in location_users(location)
                if (ids is None or u["id"] in ids)
                and (not query or query in u["name"].lower() or query in u["email"].lower())
                and all(u["roles"][k] == v for k, v in roles.items())
            ]
        return json_response({"users": users[skip : skip + limit], "count": len(users)})

    async def list_users(request: Request, location: str, v3: bool) -> Response:
        """GET /users/: deprecated in v2 (search replaces it) and gone from v3."""
        own_location(location, required(request, "locationId"))
        with studio.lock:
            return json_response({"users": location_users(location)})

    # --- local controls ----------------------------------------------------------------

    async def add_fault(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        fault = Fault(
            int(spec.get("status", 502)), int(spec.get("count", 1)), spec.get("path_prefix", "/"),
            after=bool(spec.get("after", False)), delay_seconds=float(spec.get("delay_seconds", 0)),
        )  # fmt: skip
        controls.faults.append(fault)
        return json_response(
            {"status": fault.status, "count": fault.remaining, "path_prefix": fault.path_prefix,
             "after": fault.after, "delay_seconds": fault.delay_seconds}
        )  # fmt: skip

    async def stats(request: Request) -> Response:
        return json_response(controls.stats())

    async def truth(request: Request) -> Response:
        return json_response(studio.summary())

    return Starlette(
        routes=[
            endpoint("/contacts/", CONTACTS_VERSION, list_contacts, v3=False),
            endpoint("/contacts/search", CONTACTS_VERSION, search_contacts, "POST"),
            endpoint("/contacts/{contactId}", CONTACTS_VERSION, get_contact),
            endpoint("/calendars/", CALENDARS_VERSION, list_calendars),
            endpoint("/calendars/events", CALENDARS_VERSION, list_events),
            endpoint("/calendars/events/appointments/{eventId}", CALENDARS_VERSION, get_event),
            endpoint("/conversations/search", CONVERSATIONS_VERSION, search_conversations),
            endpoint(
                "/conversations/{conversationId}/messages",
                CONVERSATIONS_VERSION,
                conversation_messages,
            ),
            endpoint("/conversations/messages/export", CONVERSATIONS_VERSION, export_messages),
            endpoint("/conversations/messages", CONVERSATIONS_VERSION, send_message, "POST"),
            endpoint("/opportunities/search", OPPORTUNITIES_VERSION, search_opportunities),
            endpoint("/opportunities/pipelines", OPPORTUNITIES_VERSION, list_pipelines),
            endpoint("/locations/{locationId}", LOCATIONS_VERSION, get_location),
            endpoint("/users/search", USERS_VERSION, search_users),
            endpoint("/users/", USERS_VERSION, list_users, v3=False),
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
