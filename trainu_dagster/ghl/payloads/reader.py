"""The one reader every entity's parser uses: typed fields out of one body, and its time.

Two rules hold for every field of every shape, so they live here once:
- A delivery sets only the fields it carries; a field that cannot be read (a time in an
  unknown format) is left out of the change (so it overwrites nothing) and the delivery
  flagged for a human, never rejected whole. A REST record from a pull is a complete
  snapshot: a field it lacks is empty.
- A delivery's time is its source time (`dateUpdated`, or `dateAdded` for a create), else
  GHL's signed delivery `timestamp` (contact events carry no `dateUpdated`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeGuard

from trainu_dagster.ghl.payloads.events import CREATE_EVENTS
from trainu_dagster.ghl.payloads.times import parse_timestamp

# Delivery metadata, not entity state: stripped so redeliveries of one state compare equal.
ENVELOPE_KEYS = frozenset({"type", "webhookId", "timestamp"})


@dataclass
class Reader:
    """Reads typed fields out of one body. A value that cannot be read is left out of the
    change (so it overwrites nothing) and noted, to flag the delivery for a human."""

    zone: tzinfo = UTC  # the studio's: local times without an offset are read in it
    snapshot: bool = False  # a complete REST record: a field it lacks is empty
    problems: list[str] = field(default_factory=list)

    def time(self, obj: Mapping[str, Any], key: str, zone: tzinfo | None = None) -> datetime | None:
        try:
            return parse_timestamp(obj.get(key), zone or self.zone)
        except ValueError:
            self.problems.append(f"unreadable {key} {obj.get(key)!r}: skipped")
            return None

    def columns(self, obj: Mapping[str, Any], spec: FieldSpec) -> dict[str, Any]:
        """The spec's columns that `obj` carries (all of them for a snapshot)."""
        columns: dict[str, Any] = {}
        for column, (key, read, empty) in spec.items():
            if key in obj:
                value = read(self, obj, key)
                if value is not UNREADABLE:
                    columns[column] = value
            elif self.snapshot:
                columns[column] = empty
        return columns

    def flag(self, *more: str | None) -> str | None:
        return "; ".join(dict.fromkeys([f for f in more if f] + self.problems)) or None


UNREADABLE = object()

# column -> (the body's key, how to read it, its value when a snapshot lacks the key)
FieldSpec = dict[str, tuple[str, Callable[[Reader, Mapping[str, Any], str], Any], Any]]


def text_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return text(obj[key])


def time_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    problems = len(reader.problems)
    moment = reader.time(obj, key)
    return UNREADABLE if len(reader.problems) > problems else moment


def flag_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return obj[key] is True


def source_time(
    entity: Mapping[str, Any], event_type: str, payload: Mapping[str, Any], reader: Reader
) -> datetime | None:
    """`dateUpdated`, or `dateAdded` for a create, else the signed delivery `timestamp`."""
    keys = ("dateUpdated", "dateAdded") if event_type in CREATE_EVENTS else ("dateUpdated",)
    for key in keys:
        if entity.get(key) and (moment := reader.time(entity, key)):
            return moment
    return reader.time(payload, "timestamp")


def entity_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ENVELOPE_KEYS}


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object (GHL nests them: `appointment`, `calendar`, `dndSettings`)."""
    return isinstance(value, Mapping)
