"""A typed client for the GHL REST API v2 subset TrainU uses (httpx, sync).

It sends the dated v2 `Version` each API names (GHL also accepts `v3` on these endpoints;
the simulator and its contract tests cover both).

GHL allows 100 requests per 10 s and 200,000 per day per location. The client keeps under
both itself, so a well-behaved pull never sees a 429: it asks a `Budget` (ghl/budget.py)
for a slot before each request (`RequestBudget` within one process; the pipelines share
one per studio through Postgres, `connections.request_budget`). When a 429 comes anyway
(another app sharing the location's quota) it waits as long as GHL says and tries again.
5xx answers and connection failures are retried with exponential backoff, except for
sending a message, which is not idempotent: it is retried only when GHL provably did not
act on it (429, or the connection was never made).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from trainu_dagster.ghl.api_answers import (
    AppointmentAnswer,
    CalendarEvents,
    Calendars,
    ContactSearch,
    ConversationSearch,
    LocationAnswer,
    MessageExport,
    MessagePage,
    OpportunitySearch,
    Pipelines,
    Record,
    SentMessage,
    UserSearch,
)
from trainu_dagster.ghl.budget import Budget, RequestBudget
from trainu_dagster.ghl.credentials import Credentials, LocationBearer, StaticToken
from trainu_dagster.ghl.errors import (
    GhlAnswerError,
    GhlError,
    GhlPagingError,
    RetryableGhlError,
)
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

Api = Literal["contacts", "calendars", "conversations", "opportunities", "locations", "users"]
# GHL rejects a request whose Version header is not the one its API expects.
API_VERSIONS: dict[Api, str] = {
    "contacts": "2021-07-28",
    "opportunities": "2021-07-28",
    "locations": "2021-07-28",
    "users": "2021-07-28",
    "calendars": "2021-04-15",
    "conversations": "2021-04-15",
}
DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
PAGE_SIZE = 100  # GHL's maximum for opportunities, users and conversations
SEARCH_PAGE_SIZE = 500  # GHL's maximum for contact search


@dataclass(frozen=True)
class Page:
    """Records of one response and the cursor that resumes right after them."""

    records: list[Record]
    next_cursor: dict[str, Any] | None  # None: this was the last page


def _retry_wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryableGhlError) and exc.retry_after is not None:
        return exc.retry_after
    return wait_exponential_jitter(multiplier=0.5, max=30)(state)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableGhlError | httpx.TransportError)


def _retryable_send(exc: BaseException) -> bool:
    """A message is re-sent only if GHL cannot have sent it: 429, or no connection made."""
    if isinstance(exc, RetryableGhlError):
        return exc.status == 429
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code != 429:
        return None
    header = response.headers.get("retry-after")
    if header and header.replace(".", "", 1).isdigit():
        return float(header)
    interval = response.headers.get("x-ratelimit-interval-milliseconds")
    return int(interval) / 1000 if interval and interval.isdigit() else None


def _answer(endpoint: str, response: httpx.Response) -> dict[str, Any]:
    """A success's JSON object, or `GhlAnswerError` saying what is wrong with it (its type,
    length and the parser's complaint; never its content)."""
    content = response.content
    if not content.strip():
        problem = "empty body"
    else:
        try:
            body = orjson.loads(content)  # pages run to megabytes; 4x stdlib json
        except orjson.JSONDecodeError as error:
            kind = response.headers.get("content-type", "no content-type")
            problem = f"not JSON ({kind}, {len(content)} bytes): {error}"
        else:
            if isinstance(body, dict):
                return body
            problem = f"a JSON {type(body).__name__} where an object was expected"
    raise GhlAnswerError(endpoint, response.status_code, problem)


def _listing(
    answer: Mapping[str, Any], key: str, endpoint: str, *, limit: int | None = None
) -> list[Record]:
    """The answer's `key` as a list of records (none when GHL leaves it out); a page of
    more than `limit` is a listing that does not page as asked."""
    records = answer.get(key)
    if records is None:
        return []
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise GhlAnswerError(endpoint, 200, f"`{key}` is not a list of objects")
    if limit is not None and len(records) > limit:
        raise GhlPagingError(endpoint, 200, f"{len(records)} {key} on a page of {limit} asked")
    return records


def _record(answer: Mapping[str, Any], key: str, endpoint: str) -> Record:
    """The one record an answer is about."""
    record = answer.get(key)
    if not isinstance(record, dict):
        raise GhlAnswerError(endpoint, 200, f"no `{key}` object")
    return record


def _moved_on(endpoint: str, sent: object, following: object) -> None:
    """`GhlPagingError` when the next page's cursor is the one just asked for: followed,
    it would ask for this page forever."""
    if sent is not None and following == sent:
        raise GhlPagingError(endpoint, 200, "the next-page cursor is the one just asked for")


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, None
    if not isinstance(body, dict):
        return str(body)[:200], None
    message = body.get("message") or body.get("error") or response.reason_phrase
    if isinstance(message, list):
        message = "; ".join(map(str, message))
    return str(message), body.get("traceId") or response.headers.get("traceid")


class GhlClient:
    """GHL's API with a request budget, authorised per location: `token` is one token for
    every location (a Private Integration Token or an OAuth access token) or `Credentials`
    that give each location its own."""

    def __init__(
        self,
        token: str | Credentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        budget: Budget | None = None,
        max_attempts: int = 6,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._credentials = StaticToken(token) if isinstance(token, str) else token
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            transport=transport,
        )
        self.budget: Budget = budget or RequestBudget()
        self._max_attempts = max_attempts

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GhlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- endpoints ---------------------------------------------------------------------

    def search_contacts(
        self,
        location_id: str,
        *,
        updated_since: datetime | None = None,
        search_after: list[Any] | None = None,
    ) -> Page:
        """One page of contacts, least recently updated first (then id), from
        `updated_since` on when given: GHL's supported listing (GET /contacts/ is
        deprecated) and the incremental pull. The cursor is the last contact's
        `searchAfter` key, so there is no 10,000-result cap, and a contact updated during a
        walk moves behind the cursor and comes again rather than going missing."""
        body: dict[str, Any] = {
            "locationId": location_id,
            "pageLimit": SEARCH_PAGE_SIZE,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        }
        if updated_since is not None:
            since = {"gte": _utc_iso(updated_since)}
            body["filters"] = [{"field": "dateUpdated", "operator": "range", "value": since}]
        if search_after is not None:
            body["searchAfter"] = search_after
        found: ContactSearch = self._request(
            "POST", "contacts", "/contacts/search", location_id, json=body
        )
        endpoint = "POST /contacts/search"
        contacts = _listing(found, "contacts", endpoint, limit=SEARCH_PAGE_SIZE)
        if len(contacts) < SEARCH_PAGE_SIZE:  # a short page is the last
            return Page(contacts, None)
        following = contacts[-1].get("searchAfter")
        if not isinstance(following, list):
            raise GhlAnswerError(endpoint, 200, "the page's last contact has no searchAfter key")
        _moved_on(endpoint, search_after, following)
        return Page(contacts, {"searchAfter": following})

    def location(self, location_id: str) -> Record:
        """The sub-account: name, timezone, address, and the company its users belong to."""
        answer: LocationAnswer = self._get("locations", f"/locations/{location_id}", location_id)
        return _record(answer, "location", "GET /locations/{locationId}")

    def users(self, location_id: str) -> list[Record]:
        """The location's users (the studio's trainers). /users/search is per company, so
        this first asks the location for its companyId."""
        company_id = self.location(location_id).get("companyId")
        if not isinstance(company_id, str):
            raise GhlAnswerError(
                "GET /locations/{locationId}", 200, "the location has no companyId"
            )
        users: list[Record] = []
        while True:
            params = {
                "companyId": company_id,
                "locationId": location_id,
                "skip": len(users),
                "limit": PAGE_SIZE,
            }
            body: UserSearch = self._get("users", "/users/search", location_id, params)
            page = _listing(body, "users", "GET /users/search", limit=PAGE_SIZE)
            users.extend(page)
            total = body.get("count", 0)
            if not isinstance(total, int):
                raise GhlAnswerError("GET /users/search", 200, "count is not a number")
            if not page or len(users) >= total:
                return users

    def pipelines(self, location_id: str) -> list[Record]:
        path, params = "/opportunities/pipelines", {"locationId": location_id}
        body: Pipelines = self._get("opportunities", path, location_id, params)
        return _listing(body, "pipelines", f"GET {path}")

    def conversations(
        self, location_id: str, *, contact_id: str | None = None, limit: int = PAGE_SIZE
    ) -> list[Record]:
        """Up to `limit` conversations, latest message first; `contact_id` narrows to that
        contact's (GHL keeps one per contact)."""
        params: dict[str, Any] = {"locationId": location_id, "limit": limit}
        if contact_id:
            params["contactId"] = contact_id
        body: ConversationSearch = self._get(
            "conversations", "/conversations/search", location_id, params
        )
        return _listing(body, "conversations", "GET /conversations/search", limit=limit)

    def conversation_messages(
        self,
        location_id: str,
        conversation_id: str,
        *,
        last_message_id: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Page:
        """One page of a conversation's messages, newest first; the cursor
        `{"lastMessageId": ...}` resumes with older ones."""
        params: dict[str, Any] = {"limit": limit}
        if last_message_id:
            params["lastMessageId"] = last_message_id
        path = f"/conversations/{conversation_id}/messages"
        answer = self._get("conversations", path, location_id, params)
        # The spec puts the page at the top level; live GHL has been seen to nest it under
        # `messages` (`{messages: {messages, lastMessageId, nextPage}}`): read either.
        nested = isinstance(answer.get("messages"), dict)
        page: MessagePage = answer["messages"] if nested else answer
        endpoint = "GET /conversations/{conversationId}/messages"
        records = _listing(page, "messages", endpoint, limit=limit)
        last_id = page.get("lastMessageId") if page.get("nextPage") else None
        _moved_on(endpoint, last_message_id, last_id)
        return Page(records, {"lastMessageId": last_id} if last_id else None)

    def calendars(self, location_id: str) -> list[Record]:
        params = {"locationId": location_id}
        body: Calendars = self._get("calendars", "/calendars/", location_id, params)
        calendars = _listing(body, "calendars", "GET /calendars/")
        if not all(isinstance(calendar.get("id"), str) for calendar in calendars):
            raise GhlAnswerError("GET /calendars/", 200, "a calendar has no id")
        return calendars

    def calendar_events(
        self, location_id: str, calendar_id: str, start: datetime, end: datetime
    ) -> list[Record]:
        """Appointments starting in [start, end). GHL has no paging here: callers slice."""
        params = {
            "locationId": location_id,
            "calendarId": calendar_id,
            "startTime": epoch_ms(start),
            "endTime": epoch_ms(end),
        }
        body: CalendarEvents = self._get("calendars", "/calendars/events", location_id, params)
        return _listing(body, "events", "GET /calendars/events")

    def appointment(self, location_id: str, event_id: str) -> Record:
        path = f"/calendars/events/appointments/{event_id}"
        answer: AppointmentAnswer = self._get("calendars", path, location_id)
        return _record(answer, "event", "GET /calendars/events/appointments/{eventId}")

    def messages(
        self,
        location_id: str,
        *,
        updated_since: datetime | None,
        cursor: str | None = None,
        channel: str | None = None,
    ) -> Page:
        """One page of the message export, oldest update first. Without a `channel` GHL
        exports every kind except email, so email is a second listing."""
        params: dict[str, Any] = {
            "locationId": location_id,
            "limit": PAGE_SIZE,
            "sortBy": "updatedAt",
            "sortOrder": "asc",
        }
        if updated_since is not None:
            params["startDate"] = updated_since.astimezone(UTC).isoformat()
        if cursor:
            params["cursor"] = cursor
        if channel:
            params["channel"] = channel
        path = "/conversations/messages/export"
        body: MessageExport = self._get("conversations", path, location_id, params)
        endpoint = f"GET {path}"
        records = _listing(body, "messages", endpoint, limit=PAGE_SIZE)
        next_cursor = body.get("nextCursor")
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise GhlAnswerError(endpoint, 200, "nextCursor is not a string")
        _moved_on(endpoint, cursor, next_cursor)
        return Page(records, {"cursor": next_cursor} if next_cursor else None)

    def opportunities(self, location_id: str, cursor: Mapping[str, Any] | None = None) -> Page:
        params = {"location_id": location_id, "limit": PAGE_SIZE, **_keyset_params(cursor)}
        body: OpportunitySearch = self._get(
            "opportunities", "/opportunities/search", location_id, params
        )
        endpoint = "GET /opportunities/search"
        records = _listing(body, "opportunities", endpoint, limit=PAGE_SIZE)
        if not all(isinstance(record.get("id"), str) for record in records):
            raise GhlAnswerError(endpoint, 200, "an opportunity has no id")
        following = _keyset_cursor(body.get("meta"))
        _moved_on(endpoint, _keyset_params(cursor) or None, _keyset_params(following) or None)
        return Page(records, following)

    def send_message(
        self,
        location_id: str,
        *,
        contact_id: str,
        channel: Literal["SMS", "Email"],
        message: str,
        subject: str | None = None,
    ) -> SentMessage:
        """Send through GHL; returns GHL's `{conversationId, messageId, ...}`, or nothing
        when GHL said it sent but its answer cannot be read: the message is out either way."""
        payload: dict[str, Any] = {"type": channel, "contactId": contact_id}
        if channel == "Email":
            payload |= {"html": message, "subject": subject or ""}
        else:
            payload["message"] = message
        try:
            sent: SentMessage = self._request(
                "POST",
                "conversations",
                "/conversations/messages",
                location_id,
                json=payload,
                retry_on=_retryable_send,
            )
        except GhlAnswerError as error:  # a 2xx: sent, only its ids are unknown
            log.warning("ghl_sent_unreadable_answer", location_id=location_id, error=str(error))
            return SentMessage()
        return sent

    # --- transport ---------------------------------------------------------------------

    def _get(
        self, api: Api, path: str, location_id: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        return self._request("GET", api, path, location_id, params=params)

    def _request(
        self,
        method: str,
        api: Api,
        path: str,
        location_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        retry_on: Callable[[BaseException], bool] = _retryable,
    ) -> Any:
        """GHL's JSON answer as parsed (an object): each endpoint above declares the shape it
        reads, one of the answers at the top of this module."""
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=_retry_wait,
            retry=retry_if_exception(retry_on),
            before_sleep=lambda state: log.warning(
                "ghl_retry",
                method=method,
                path=path,
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else None,
            ),
            reraise=True,
        )
        return retrying(self._once, method, api, path, location_id, params, json)

    def _once(
        self,
        method: str,
        api: Api,
        path: str,
        location_id: str,
        params: Mapping[str, Any] | None,
        json: Mapping[str, Any] | None,
    ) -> Any:
        with self.budget.slot(location_id):
            response = self._http.request(
                method, path, params=params, json=json, headers={"Version": API_VERSIONS[api]},
                auth=LocationBearer(self._credentials, location_id),
            )  # fmt: skip
        if response.headers.get("x-ratelimit-daily-remaining") == "0":
            self.budget.exhaust_day(location_id)
        if response.is_success:
            body = _answer(f"{method} {path}", response)
            log.debug(
                "ghl_request",
                method=method,
                path=path,
                status=response.status_code,
                trace_id=body.get("traceId") or response.headers.get("traceid"),
            )
            return body
        message, trace_id = _error_message(response)
        log.warning(
            "ghl_error", method=method, path=path, status=response.status_code, trace_id=trace_id
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableGhlError(response.status_code, message, trace_id, _retry_after(response))
        raise GhlError(response.status_code, message, trace_id)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _utc_iso(moment: datetime) -> str:
    """GHL's timestamp format: `2026-08-01T14:03:11.123Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _keyset_params(cursor: Mapping[str, Any] | None) -> dict[str, Any]:
    if not cursor:
        return {}
    return {k: cursor[k] for k in ("startAfter", "startAfterId") if cursor.get(k) is not None}


def _keyset_cursor(meta: Any) -> dict[str, Any] | None:
    """GHL's keyset paging: the last page has no `nextPageUrl`."""
    if not isinstance(meta, dict) or not meta.get("nextPageUrl"):
        return None
    return {"startAfter": meta.get("startAfter"), "startAfterId": meta.get("startAfterId")}
