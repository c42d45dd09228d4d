"""A GHL that answers badly: an empty, truncated or non-JSON body, a next-page cursor that
comes back, a page larger than asked. Each ends that stream's pull with its reason kept in
`raw.pull_state`, the cursor after the last page applied, a bounded number of requests, and
the next pull tries again; never a traceback, never an endless loop.

Real HTTP throughout: a small server of the test's own answering exactly each fault, and
Stoplight Prism (pinned in tests/prism, installed by `make test`) serving GHL's own OpenAPI
specs, which define no body for `POST /contacts/search`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from tests.cli_harness import run as trainu
from tests.conftest import drop_database, new_database
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.errors import GhlAnswerError
from trainu_dagster.ingest.pull import PullResult, pull_stream

LOC = "loc-faulty"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SPECS = Path(__file__).parent / "data" / "ghl" / "openapi"  # GHL's specs, as copied there
PRISM = Path(__file__).parent / "prism" / "node_modules" / ".bin" / "prism"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


# What the server answers a request with: (status, content type, body bytes).
Answer = tuple[int, str, bytes]


@dataclass
class FaultyGhl:
    """An HTTP server answering as `answer` says, keeping every request it was asked."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    answer: Callable[[Request], Answer] = lambda request: ok({})

    def asked(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


def ok(body: Any) -> Answer:
    return 200, "application/json", json.dumps(body).encode()


@contextmanager
def faulty_ghl() -> Iterator[FaultyGhl]:
    ghl = FaultyGhl()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                split.path,
                {k: v[0] for k, v in parse_qs(split.query).items()},
                json.loads(raw) if raw else None,
            )
            ghl.requests.append(request)
            status, kind, body = ghl.answer(request)
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ghl.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ghl
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def database(template_database: Database) -> Iterator[Database]:
    db = new_database(template_database, "faulty_ghl")
    with db.connect() as admin:
        admin.execute(
            "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Faulty studio')", (LOC,)
        )
    yield db
    drop_database(db)


@pytest.fixture
def conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect(autocommit=True) as connection:
        yield connection


@pytest.fixture
def ghl() -> Iterator[FaultyGhl]:
    with faulty_ghl() as server:
        yield server


def pull(conn: psycopg.Connection, url: str, stream: Any) -> PullResult:
    with GhlClient("token", base_url=url) as client:
        return pull_stream(conn, client, LOC, stream, now=NOW)


def state(conn: psycopg.Connection, stream: str) -> tuple[str, str | None, dict[str, Any]]:
    row = conn.execute(
        "SELECT last_status, last_error, cursor FROM raw.pull_state "
        "WHERE location_id = %s AND stream = %s",
        (LOC, stream),
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM raw.{table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def contact(n: int) -> dict[str, Any]:
    updated = f"2026-11-01T10:00:{n % 60:02d}.000Z"
    return {"id": f"ct{n}", "locationId": LOC, "firstName": "Jane", "dateAdded": updated,
            "dateUpdated": updated, "searchAfter": [1_700_000_000_000 + n, f"ct{n}"]}  # fmt: skip


def message(n: int) -> dict[str, Any]:
    at = f"2026-11-01T10:{n % 60:02d}:00.000Z"
    return {"id": f"m{n}", "conversationId": "conv1", "contactId": "ct1", "body": "hello",
            "direction": "inbound", "messageType": "TYPE_SMS", "status": "delivered",
            "dateAdded": at, "dateUpdated": at}  # fmt: skip


def opportunity(n: int) -> dict[str, Any]:
    at = f"2026-10-01T09:00:{n % 60:02d}.000Z"
    return {"id": f"op{n}", "name": "Trial", "contactId": "ct1", "pipelineId": "p1",
            "pipelineStageId": "s1", "status": "open", "createdAt": at,
            "updatedAt": at}  # fmt: skip


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# --- the client: one typed error naming the endpoint and the fault, never the body -----------

SECRET = b"Jane Doe +1 555 0100"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((200, "application/json", b"  "), "empty body"),
        ((200, "application/json", b'{"contacts": [{"name": "' + SECRET), "unexpected end of data"),
        ((200, "text/html", b"<html>" + SECRET + b"</html>"), "not JSON (text/html, 33 bytes)"),
        ((200, "application/json", b'["' + SECRET + b'"]'), "a JSON list where an object was"),
        ((200, "application/json", b'{"contacts": "' + SECRET + b'"}'), "`contacts` is not a list"),
    ],
)
def test_an_unreadable_answer_is_one_typed_error_without_the_body(
    ghl: FaultyGhl, answer: Answer, problem: str
) -> None:
    ghl.answer = lambda request: answer
    with GhlClient("token", base_url=ghl.url) as client, pytest.raises(GhlAnswerError) as error:
        client.search_contacts(LOC)
    assert problem in str(error.value) and error.value.endpoint == "POST /contacts/search"
    assert "Jane" not in str(error.value) and len(ghl.requests) == 1  # not asked again at once


def test_a_location_without_its_company_is_a_typed_error(ghl: FaultyGhl) -> None:
    ghl.answer = lambda request: ok({"location": {"id": LOC, "name": "Faulty studio"}})
    with GhlClient("token", base_url=ghl.url) as client, pytest.raises(GhlAnswerError) as error:
        client.users(LOC)
    assert "GET /locations/{locationId}: the location has no companyId" in str(error.value)
    assert [r.path for r in ghl.requests] == [f"/locations/{LOC}"]


def test_a_sent_message_whose_answer_is_unreadable_counts_as_sent_and_is_not_sent_again(
    ghl: FaultyGhl,
) -> None:
    ghl.answer = lambda request: (201, "application/json", b"")
    with GhlClient("token", base_url=ghl.url) as client:
        sent = client.send_message(LOC, contact_id="ct1", channel="SMS", message="See you!")
    assert sent == {} and len(ghl.requests) == 1


# --- one fault each, from a server of the test's own -----------------------------------------


def test_an_empty_answer_ends_the_contacts_pull_with_its_reason_and_the_next_pull_retries(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    ghl.answer = lambda request: (200, "application/json", b"")
    ended = pull(conn, ghl.url, "contacts")
    assert ended.ended is not None and "POST /contacts/search: empty body" in ended.ended
    assert len(ghl.requests) == 1  # not retried at once: the next scheduled pull does
    status, error, _ = state(conn, "contacts")
    assert status == "failed" and error == ended.ended

    ghl.answer = lambda request: ok({"contacts": [contact(1)], "total": 1})
    again = pull(conn, ghl.url, "contacts")
    assert again.ended is None and again.records == 1 and len(ghl.requests) == 2
    assert state(conn, "contacts")[:2] == ("succeeded", None)
    assert count(conn, "ghl_contacts") == 1


def test_truncated_json_mid_walk_keeps_the_pages_applied_and_the_next_pull_resumes_there(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    broken = json.dumps({"messages": [message(3)], "nextCursor": None}).encode()[:40]
    assert b"hello" in json.dumps(message(3)).encode()

    def answer(request: Request) -> Answer:
        if request.query.get("cursor") == "c1":
            return 200, "application/json", broken
        return ok({"messages": [message(1), message(2)], "nextCursor": "c1"})

    ghl.answer = answer
    ended = pull(conn, ghl.url, "messages")
    assert ended.ended is not None and "GET /conversations/messages/export: not JSON" in ended.ended
    assert "unexpected end of data" in ended.ended and "hello" not in ended.ended
    assert len(ghl.requests) == 2 and ended.records == 2
    status, _, cursor = state(conn, "messages")
    assert status == "failed" and cursor["page"] == "c1" and cursor["channel"] == 0
    assert count(conn, "ghl_messages") == 2  # the page before the fault stays

    def fixed(request: Request) -> Answer:
        if request.query.get("cursor") == "c1":
            return ok({"messages": [message(3)]})
        return ok({"messages": []})  # the email listing

    ghl.answer = fixed
    again = pull(conn, ghl.url, "messages")
    assert again.resumed and again.ended is None
    assert ghl.requests[2].query.get("cursor") == "c1"  # from where the fault stopped it
    assert count(conn, "ghl_messages") == 3
    assert state(conn, "messages")[:2] == ("succeeded", None)


def test_html_instead_of_json_ends_the_appointments_pull(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    page = b"<html><body><h1>Bad gateway</h1>Jane Doe 555-0100</body></html>"
    ghl.answer = lambda request: (200, "text/html; charset=utf-8", page)
    ended = pull(conn, ghl.url, "appointments")
    assert ended.ended is not None
    assert f"GET /calendars/: not JSON (text/html; charset=utf-8, {len(page)} bytes)" in ended.ended
    assert "Jane" not in ended.ended and len(ghl.requests) == 1
    assert state(conn, "appointments")[0] == "failed"


def test_a_message_export_whose_next_cursor_repeats_ends_after_two_requests(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    ghl.answer = lambda request: ok({"messages": [message(1)], "nextCursor": "same"})
    ended = pull(conn, ghl.url, "messages")
    assert ended.ended is not None and "GhlPagingError" in ended.ended
    assert "the next-page cursor is the one just asked for" in ended.ended
    assert len(ghl.requests) == 2 and ended.records == 1
    status, _, cursor = state(conn, "messages")
    assert status == "failed" and cursor["page"] == "same"

    again = pull(conn, ghl.url, "messages")  # the next run tries again, and stops again
    assert again.resumed and again.ended is not None and len(ghl.requests) == 3
    assert state(conn, "messages")[2] == cursor


def test_a_message_export_whose_cursors_cycle_ends_when_one_comes_back(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    following = {None: "a", "a": "b", "b": "a"}
    ghl.answer = lambda request: ok(
        {
            "messages": [message(len(ghl.requests))],
            "nextCursor": following[request.query.get("cursor")],
        }
    )
    ended = pull(conn, ghl.url, "messages")
    assert ended.ended is not None and "cursor already followed came back on page 3" in ended.ended
    assert len(ghl.requests) == 3 and ended.records == 2
    assert state(conn, "messages")[2]["page"] == "b"


def test_an_opportunity_search_whose_start_after_repeats_ends_after_two_requests(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    last = opportunity(2)
    meta = {"startAfter": epoch_ms(last["createdAt"]), "startAfterId": last["id"],
            "nextPageUrl": f"{ghl.url}/opportunities/search?page=2", "total": 500}  # fmt: skip
    ghl.answer = lambda request: ok({"opportunities": [opportunity(1), last], "meta": meta})
    ended = pull(conn, ghl.url, "opportunities")
    assert ended.ended is not None and "GET /opportunities/search" in ended.ended
    assert len(ghl.requests) == 2 and ended.records == 2
    assert ghl.requests[1].query["startAfterId"] == "op2"
    status, _, cursor = state(conn, "opportunities")
    after = {"startAfter": meta["startAfter"], "startAfterId": "op2"}
    assert status == "failed" and cursor == {"after": after}
    assert count(conn, "ghl_opportunities") == 2

    again = pull(conn, ghl.url, "opportunities")
    assert again.resumed and again.ended is not None and len(ghl.requests) == 3
    assert state(conn, "opportunities")[2] == {"after": after}


def test_a_contacts_page_larger_than_asked_ends_the_pull_with_nothing_applied(
    conn: psycopg.Connection, ghl: FaultyGhl
) -> None:
    ghl.answer = lambda request: ok({"contacts": [contact(n) for n in range(501)], "total": 501})
    ended = pull(conn, ghl.url, "contacts")
    assert ended.ended is not None and "501 contacts on a page of 500 asked" in ended.ended
    assert len(ghl.requests) == 1 and ghl.requests[0].body["pageLimit"] == 500
    assert count(conn, "ghl_contacts") == 0
    assert state(conn, "contacts")[0] == "failed"


def test_trainu_pull_reports_the_stream_that_ended_and_pulls_the_others(
    database: Database, ghl: FaultyGhl
) -> None:
    def answer(request: Request) -> Answer:
        if request.path == "/contacts/search":
            return 200, "application/json", b""
        return ok({})  # every other listing: empty

    ghl.answer = answer
    env = {"TRAINU_GHL_TOKEN": "pit-token", "TRAINU_GHL_BASE_URL": ghl.url}
    pulled = trainu("pull", "--location", LOC, database=database, env=env)
    assert pulled.returncode == 1 and "Traceback" not in pulled.stderr
    assert "ended early" in pulled.stderr
    assert f"{LOC} contacts: GhlAnswerError: GHL 200: POST /contacts/search: empty body" in (
        pulled.stderr.replace("\n", " ")
    )
    with database.connect() as admin:
        states = dict(admin.execute("SELECT stream, last_status FROM raw.pull_state").fetchall())
    assert states == {"contacts": "failed", "appointments": "succeeded",
                      "messages": "succeeded", "opportunities": "succeeded"}  # fmt: skip


# --- GHL's own specs, served by Stoplight Prism ----------------------------------------------

SPEC_OF_STREAM = {"contacts": "contacts", "appointments": "calendars",
                  "messages": "conversations", "opportunities": "opportunities"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prism(spec: Path) -> Iterator[str]:
    """`prism mock` serving one spec (its examples, as GHL's docs show them)."""
    port = free_port()
    process = subprocess.Popen(
        [str(PRISM), "mock", "--host", "127.0.0.1", "--port", str(port), str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"prism exited serving {spec.name}"
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"prism did not start serving {spec.name}"
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def lay_out(source: Path, root: Path) -> Path:
    """A set of GHL's specs laid out as they refer to their shared schemas
    (`../common/common-schemas.json`)."""
    assert PRISM.exists(), "Stoplight Prism is not installed: `make prism` (npm ci in tests/prism)"
    (root / "common").mkdir(parents=True)
    shutil.copy(source / "common-schemas.json", root / "common" / "common-schemas.json")
    shutil.copytree(source, root / "specs", ignore=shutil.ignore_patterns("v3"))
    return root / "specs"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GHL's v2 specs, whose `Version` headers are the dated ones TrainU sends."""
    return lay_out(SPECS, tmp_path_factory.mktemp("ghl-specs"))


# What each stream's pull makes of its spec's example answers (what Prism serves).
FROM_THE_SPECS = {
    "contacts": "POST /contacts/search: empty body",  # the spec gives it no body
    "messages": "GET /conversations/messages/export: the next-page cursor is the one just asked",
    "opportunities": "opportunities listing: a cursor already followed came back on page 2",
    "appointments": None,  # no paging: one example per window, and the pull ends
}


@pytest.mark.parametrize("stream", list(SPEC_OF_STREAM))
def test_each_stream_pulled_from_ghls_own_specs_ends_cleanly(
    conn: psycopg.Connection, specs: Path, stream: str
) -> None:
    with prism(specs / f"{SPEC_OF_STREAM[stream]}.json") as url:
        result = pull(conn, url, stream)
    status, error, _ = state(conn, stream)
    reason = FROM_THE_SPECS[stream]
    if reason is None:
        assert result.ended is None and status == "succeeded" and result.pages == 11  # 74 days
    else:
        assert result.ended is not None and reason in result.ended
        assert status == "failed" and error == result.ended
        assert result.pages == (0 if stream == "contacts" else 1)  # the first page stays


def test_trainu_pull_against_ghls_contacts_spec_says_why_and_exits_1(
    database: Database, specs: Path
) -> None:
    with prism(specs / "contacts.json") as url:
        env = {"TRAINU_GHL_TOKEN": "pit-token", "TRAINU_GHL_BASE_URL": url}
        pulled = trainu("pull", "--stream", "contacts", database=database, env=env)
    assert pulled.returncode == 1 and "Traceback" not in pulled.stderr
    assert "POST /contacts/search: empty body" in pulled.stderr.replace("\n", " ")


def test_trainu_pull_against_ghls_v3_spec_fails_cleanly(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """GHL's v3 specs accept only `Version: v3`; TrainU sends each API's dated v2 version,
    so Prism refuses every request: a GHL error said in one line, never a traceback."""
    v3 = lay_out(SPECS / "v3", tmp_path_factory.mktemp("ghl-specs-v3"))
    with prism(v3 / "conversations.json") as url:
        env = {"TRAINU_GHL_TOKEN": "pit-token", "TRAINU_GHL_BASE_URL": url}
        pulled = trainu("pull", "--stream", "messages", database=database, env=env)
    assert pulled.returncode == 1 and "Traceback" not in pulled.stderr
    assert f"{LOC} messages: GHL 400" in pulled.stderr
