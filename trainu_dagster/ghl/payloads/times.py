"""The times GHL sends, read as UTC moments: ISO-8601, epoch seconds or milliseconds, and the
human-readable form of workflow merge fields (`Sun, Nov 30th, 2026 | 6:30 am`).

Apart from the reader because more than parsing needs them: the receiver dates a delivery's
envelope with them, and the outbox reads the times in GHL's answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as dateutil_parser

# Two defaults that differ in every component: a human-readable time that parses to two
# different moments left a component (the year, the hour...) out, and is refused.
_PROBE_DEFAULTS = (datetime(2000, 1, 1, 0, 0), datetime(2001, 2, 2, 1, 1))


def parse_timestamp(value: Any, default_zone: tzinfo = UTC) -> datetime | None:
    """ISO-8601, epoch seconds/milliseconds, or GHL's human-readable form
    (`Sun, Nov 30th, 2026 | 6:30 am`), as UTC; a time without an offset is in `default_zone`."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = _human_time(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed.astimezone(UTC)


def _human_time(value: str) -> datetime:
    """GHL's merge-field times ("Sun, Nov 30th, 2026 | 6:30 am"), read by dateutil. The
    weekday is ignored (the date decides); named zones like "EST" are ambiguous and ignored."""
    text = value.replace("|", " ")
    try:
        first, second = (
            dateutil_parser.parse(text, default=default, tzinfos=_no_named_zones)
            for default in _PROBE_DEFAULTS
        )
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a timestamp: {value!r}") from exc
    if first != second:
        raise ValueError(f"not a complete date and time: {value!r}")
    return first


def _no_named_zones(name: str | None, offset: int | None) -> int | None:
    return offset


def zone(name: Any) -> tzinfo | None:
    """The IANA zone a body names (a calendar's `selectedTimezone`), if it is one."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return None
