"""Every line the process logs is one JSON object on stderr, with PII scrubbed out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from trainu_dagster.observability.logging import (
    bind_correlation_id,
    configure_logging,
    get_logger,
    redact,
)

PHONES = [
    "+14155550123",
    "+1 415 555 0123",
    "+1 (415) 555-0123",
    "+1-415-555-0123",
    "(415) 555-0123",
    "415-555-0123",
    "415.555.0123",
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "+33 1 23 45 67 89",
]
EMAILS = ["jane@example.com", "Jane.Doe+gym@studio.co.uk", "o'neil_99@mail-host.example.org"]
# Values that look a little like PII but are not, and must come out exactly as they went in.
NOT_PII: dict[str, Any] = {
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "uuid_digits": "12345678-1234-1234-1234-123456789012",
    "iso_utc": "2024-05-01T12:30:45.123456Z",
    "iso_offset": "2024-05-01T12:30:45+05:30",
    "iso_space": "2024-05-01 12:30:45.123+0000",
    "date": "2024-05-01",
    "ghl_contact_id": "ve9EPM428h8vShlRW1KT",
    "ghl_location_id": "Ab12Cd34Ef56Gh78Ij90",
    "epoch_millis": 1714566645123,
    "epoch_millis_text": "1714566645123",
    "epoch_seconds_text": "1714566645",
    "status": 200,
    "status_text": "503",
    "count": 1234567,
    "duration_ms": 12.5,
    "duration_text": "took 1523.75 ms",
    "ratio": "+12.5%",
    "version": "1.13.27",
    "ip": "192.168.100.200",
    "url": "https://services.leadconnectorhq.com/contacts/ve9EPM428h8vShlRW1KT?limit=100",
    "flag": True,
    "nothing": None,
}


@pytest.fixture(autouse=True)
def stdlib_loggers_as_in_our_services() -> Iterator[None]:
    """Importing Streamlit (the app's AppTest tests share this process) takes uvicorn's
    loggers over (own handler, no propagation); our services never import it. Give these
    tests the loggers as a receiver or Dagster process has them, then put them back."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "websockets")
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate, logger.level)
        logger.handlers[:], logger.propagate, logger.level = [], True, logging.NOTSET
    yield
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate, logger.level = handlers, propagate, level


def only(lines: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(lines) == 1, lines
    return lines[0]


def test_a_line_carries_utc_timestamp_level_logger_event_and_context(stderr_lines: Any) -> None:
    get_logger("trainu.sync").info("contacts pulled", pulled=42)
    line = only(stderr_lines())
    assert line["event"] == "contacts pulled"
    assert line["level"] == "info"
    assert line["logger"] == "trainu.sync"
    assert line["pulled"] == 42
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


@pytest.mark.parametrize("pii", EMAILS + PHONES)
def test_pii_in_the_message_is_replaced(stderr_lines: Any, pii: str) -> None:
    get_logger("t").info(f"reply from {pii}, ok")
    placeholder = "[email]" if "@" in pii else "[phone]"
    assert only(stderr_lines())["event"] == f"reply from {placeholder}, ok"


def test_only_the_address_is_replaced_not_the_quotes_around_it(stderr_lines: Any) -> None:
    get_logger("t").info("payload {'email': 'jane@example.com', 'phone': '+14155550123'}")
    assert only(stderr_lines())["event"] == "payload {'email': '[email]', 'phone': '[phone]'}"


def test_pii_in_values_and_nested_structures_is_replaced(stderr_lines: Any) -> None:
    get_logger("t").warning(
        "contact synced",
        contact="Jane <jane@example.com>",
        payload={"contact": {"phones": ["+14155550123", ("work", "(415) 555-0123")]}},
        tags=("vip", "call 415-555-0123"),
    )
    line = only(stderr_lines())
    assert line["contact"] == "Jane <[email]>"
    assert line["payload"] == {"contact": {"phones": ["[phone]", ["work", "[phone]"]]}}
    assert line["tags"] == ["vip", "call [phone]"]


def test_pii_in_exceptions_is_replaced(stderr_lines: Any) -> None:
    log = get_logger("t")
    try:
        raise ValueError("no such contact jane@example.com / +44 20 7946 0958")
    except ValueError as exc:
        log.exception("lookup failed")
        log.warning("lookup failed again", error=exc)
    failed, again = stderr_lines()
    assert failed["level"] == "error"
    assert "ValueError: no such contact [email] / [phone]" in failed["exception"]
    assert again["error"] == "no such contact [email] / [phone]"
    assert "jane@" not in json.dumps([failed, again])
    assert "7946" not in json.dumps([failed, again])


@pytest.mark.parametrize(
    "key",
    [
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "firstName",
        "lastName",
        "address1",
        "body",
        "message",
        "password",
        "token",
        "authorization",
        "Authorization",
        "db_password",
        "client_secret",
        "refresh_token",
        "X-Api-Token",
    ],
)
def test_values_under_pii_keys_are_dropped_whole(stderr_lines: Any, key: str) -> None:
    get_logger("t").info("event", **{key: "Jane Doe 42"}, nested={"contact": {key: ["x", 1]}})
    line = only(stderr_lines())
    assert line[key] == "[redacted]"
    assert line["nested"] == {"contact": {key: "[redacted]"}}


def test_values_that_are_not_pii_are_left_alone(stderr_lines: Any) -> None:
    get_logger("t").info("request done", **NOT_PII)
    line = only(stderr_lines())
    assert {key: line[key] for key in NOT_PII} == NOT_PII


def test_uuid_and_datetime_objects_render_as_their_plain_text(stderr_lines: Any) -> None:
    contact_id, at = uuid4(), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    get_logger("t").info("booked", contact_id=contact_id, at=at)
    line = only(stderr_lines())
    assert line["contact_id"] == str(contact_id)
    assert line["at"] == "2024-05-01T12:30:00+00:00"


def test_correlation_id_is_bound_inside_the_block_and_restored_after(stderr_lines: Any) -> None:
    log = get_logger("t")
    outer, inner = uuid4(), "inner-id"
    with bind_correlation_id(outer) as bound:
        log.info("outer")
        with bind_correlation_id(inner):
            log.info("inner")
        log.info("outer again")
    log.info("outside")
    lines = stderr_lines()
    assert bound == str(outer)
    assert [line.get("correlation_id") for line in lines] == [str(outer), inner, str(outer), None]
    assert "correlation_id" not in lines[-1]


def test_correlation_ids_stay_with_their_own_asyncio_task(stderr_lines: Any) -> None:
    log = get_logger("t")

    async def handle(request: str) -> None:
        with bind_correlation_id(f"cid-{request}"):
            await asyncio.sleep(0.01)  # the other task runs and binds its own id meanwhile
            log.info("handled", request=request)

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    lines = stderr_lines()
    assert sorted((line["request"], line["correlation_id"]) for line in lines) == [
        ("a", "cid-a"),
        ("b", "cid-b"),
    ]


def test_stdlib_loggers_come_out_as_redacted_json(stderr_lines: Any) -> None:
    with bind_correlation_id("cid-1"):
        logging.getLogger("uvicorn.error").info("user jane@example.com")
        logging.getLogger("httpx").warning("retry %s for %s", 2, "+14155550123")
    uvicorn_line, httpx_line = stderr_lines()
    assert uvicorn_line["event"] == "user [email]"
    assert uvicorn_line["logger"] == "uvicorn.error"
    assert uvicorn_line["level"] == "info"
    assert uvicorn_line["correlation_id"] == "cid-1"
    assert "timestamp" in uvicorn_line
    assert httpx_line["event"] == "retry 2 for [phone]"
    assert httpx_line["level"] == "warning"


def test_stdlib_exceptions_are_redacted(stderr_lines: Any) -> None:
    try:
        raise RuntimeError("send to 415-555-0123 failed")
    except RuntimeError:
        logging.getLogger("dagster").exception("op failed for jane@example.com")
    line = only(stderr_lines())
    assert line["event"] == "op failed for [email]"
    assert "RuntimeError: send to [phone] failed" in line["exception"]


def test_a_line_a_frameworks_own_console_handler_printed_is_not_printed_again(
    stderr_lines: Any,
) -> None:
    """Dagster's CLI gives `dagster` a console handler of its own and leaves it propagating:
    its lines stay in its format alone. A library's NullHandler, or a handler whose level
    leaves a record out, prints nothing, so those records are still ours to write."""
    printed = io.StringIO()
    cli, library = logging.getLogger("framework_cli"), logging.getLogger("quiet_library")
    own, null = logging.StreamHandler(printed), logging.NullHandler()
    own.setLevel(logging.WARNING)
    cli.addHandler(own)
    library.addHandler(null)
    try:
        logging.getLogger("framework_cli.server").warning("No heartbeat received, shutting down")
        cli.info("below its own handler's level")
        library.warning("retrying")
    finally:
        cli.removeHandler(own)
        library.removeHandler(null)
    assert printed.getvalue() == "No heartbeat received, shutting down\n"
    assert [line["event"] for line in stderr_lines()] == [
        "below its own handler's level",
        "retrying",
    ]


def test_configuring_again_does_not_duplicate_lines_and_applies_the_level(
    stderr_lines: Any,
) -> None:
    configure_logging("WARNING")
    log = get_logger("t")
    log.info("quiet")
    logging.getLogger("uvicorn.error").info("quiet too")
    log.warning("loud")
    assert [line["event"] for line in stderr_lines()] == ["loud"]


def test_console_rendering_is_redacted_too(
    stderr_lines: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=False)
    get_logger("t").info("hello jane@example.com", token="abc123")
    err = capsys.readouterr().err
    assert "hello [email]" in err
    assert "token=[redacted]" in err
    assert "jane@" not in err and "abc123" not in err


def test_redaction_stays_linear_on_long_hostile_strings() -> None:
    """Guards against a regex change that backtracks quadratically on big payloads."""
    hostile = [
        "a" * 300_000 + "@",
        "a'" * 150_000 + "@",
        "a@" + "b." * 150_000,
        "1-" * 150_000,
        "+1 " * 100_000,
        ("x" * 40 + "@") * 7_000,
    ]
    started = time.perf_counter()
    for text in hostile:
        redact(text)
    assert time.perf_counter() - started < 2
