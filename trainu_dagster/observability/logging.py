"""Structured JSON logs for the whole process, with PII scrubbed before anything is written.

TrainU handles studio clients' contact details, so every log line — ours through structlog
and third-party ones through the stdlib root logger (uvicorn, dagster, httpx, posthog) —
goes through one redaction step before it reaches stderr.

One line per event: Dagster's CLI gives its own loggers (`dagster`, `dagster.code_server`)
a console handler in Dagster's format and leaves them propagating to the root, so in a
process that loads our code location (a code server, `dagster definitions validate`) each
of its events would be printed twice. What such a handler has printed is not printed again
here: Dagster's framework lines keep Dagster's format, as in the daemon and the webserver,
which never load our code; what runs our code still logs redacted JSON.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

EMAIL_PLACEHOLDER = "[email]"
PHONE_PLACEHOLDER = "[phone]"
REDACTED = "[redacted]"

_PII_KEYS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "firstname",
        "lastname",
        "address1",
        "body",
        "message",
        "password",
        "token",
        "authorization",
    }
)
_PII_KEY_PARTS = ("password", "secret", "token")

# The look-behinds anchor each match at the start of a token: that keeps ids and numbers
# that merely contain digit runs intact, and keeps the scan linear on long strings.
_EMAIL = re.compile(
    r"(?<![\w.%+-])(?<![\w.%+-]')[\w.%+-]+(?:'[\w.%+-]+)*@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"
)
_PHONE = re.compile(
    r"""
    (?<![\w+.-])
    (?:
        \+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){1,5}  # +1 (415) 555-0123, +44 20 ...
      | \(\d{3}\)[ .-]?\d{3}[ .-]\d{4}                              # (415) 555-0123
      | \d{3}[.-]\d{3}[.-]\d{4}                                     # 415-555-0123
    )
    (?![\w-]|\.\d)
    """,
    re.VERBOSE,
)
_PHONE_DIGITS = range(8, 16)  # E.164 allows at most 15 digits; fewer than 8 is not a phone


def _phone_or_keep(match: re.Match[str]) -> str:
    text = match.group()
    return PHONE_PLACEHOLDER if sum(c.isdigit() for c in text) in _PHONE_DIGITS else text


def _scrub(text: str) -> str:
    if "@" in text:
        text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    return _PHONE.sub(_phone_or_keep, text)


def _is_pii_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in _PII_KEYS or any(part in lowered for part in _PII_KEY_PARTS)


def redact(value: Any) -> Any:
    """Return `value` with PII removed, as JSON-ready data.

    Objects that are neither JSON scalars nor containers are turned into their string here
    and scrubbed, because a renderer would stringify them later — after redaction, leaking
    whatever their `str()` carries (an exception's message, a model's repr).
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, Mapping):
        return _redact_mapping(value)
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, list | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return _scrub(str(value))


def _redact_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: REDACTED if _is_pii_key(k) else redact(v) for k, v in value.items()}


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor form of `redact`; must run after exceptions are rendered to text."""
    return _redact_mapping(event_dict)


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to whatever `sys.stderr` is at emit time, so a later swap of it (pytest's
    capture, a supervisor redirecting output) never leaves the handler on a closed stream."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _printed_below_root(record: logging.LogRecord) -> bool:
    """Whether a console handler between the record's logger and the root has printed it."""
    logger = logging.Logger.manager.loggerDict.get(record.name)
    while isinstance(logger, logging.Logger) and logger.parent is not None:
        for handler in logger.handlers:
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and record.levelno >= handler.level
            ):
                return True
        logger = logger.parent
    return False


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send structlog and stdlib logging through the same redacting pipeline to stderr.

    Safe to call again (e.g. to change the level): it replaces its own handler and leaves
    any other handler on the root logger alone.
    """
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    handler = _StderrHandler()
    handler.addFilter(lambda record: not _printed_below_root(record))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_processor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


@contextmanager
def bind_correlation_id(correlation_id: UUID | str) -> Iterator[str]:
    """Tag every log line in this block (and in tasks started from it) with one id.

    Context variables are per asyncio task and per thread, so concurrent requests never
    see each other's id; leaving the block restores whatever id was bound before.
    """
    value = str(correlation_id)
    tokens = structlog.contextvars.bind_contextvars(correlation_id=value)
    try:
        yield value
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
