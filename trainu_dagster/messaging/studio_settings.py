"""A studio's sending settings as its owner sets them: voice, quiet hours, caps, link
domains and the kill switch. Read by drafting and sending; changed only by the owner, and
every change is audited with what it was and what it became."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, time
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from trainu_dagster import accounts
from trainu_dagster.messaging.safety import registered_domain
from trainu_dagster.observability.product_events import record_event


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class StudioSettings:
    location_id: str
    draft_voice: dict[str, Any] = field(default_factory=dict)
    quiet_hours_start: time = time(8)
    quiet_hours_end: time = time(21)
    max_messages_per_day: int = 1
    max_messages_per_week: int = 3
    allowed_link_domains: list[str] = field(default_factory=list)
    sending_paused_at: datetime | None = None
    sending_paused_by: UUID | None = None

    @property
    def sending_paused(self) -> bool:
        return self.sending_paused_at is not None


EDITABLE = ("draft_voice", "quiet_hours_start", "quiet_hours_end", "max_messages_per_day",
            "max_messages_per_week", "allowed_link_domains")  # fmt: skip


def load(conn: psycopg.Connection, location_id: str) -> StudioSettings:
    columns = ", ".join(f.name for f in fields(StudioSettings))
    with conn.cursor(row_factory=class_row(StudioSettings)) as cur:
        found = cur.execute(
            f"SELECT {columns} FROM app.locations WHERE location_id = %s",  # noqa: S608 - names from the dataclass
            (location_id,),
        ).fetchone()
    if found is None:
        raise SettingsError(f"unknown studio {location_id!r}")
    return found


def link_domain(text: str) -> str:
    """`https://www.Example.co.uk/x` → `example.co.uk`; refuses what is not a domain."""
    domain = registered_domain(text)
    if domain is None:
        raise SettingsError(f"not a web domain: {text!r}")
    return domain


def validated(settings: StudioSettings) -> StudioSettings:
    """The settings as they will be stored, or a `SettingsError` saying what to fix."""
    if settings.quiet_hours_start >= settings.quiet_hours_end:
        raise SettingsError("sending must start before it ends (e.g. 08:00 to 21:00)")
    if not 0 <= settings.max_messages_per_day <= 20:
        raise SettingsError("messages per day must be between 0 and 20")
    if not 0 <= settings.max_messages_per_week <= 50:
        raise SettingsError("messages per week must be between 0 and 50")
    if settings.max_messages_per_day > settings.max_messages_per_week:
        raise SettingsError("the daily cap cannot be above the weekly cap")
    voice = {k: v.strip() for k, v in settings.draft_voice.items() if isinstance(v, str)}
    templates = settings.draft_voice.get("templates")
    if isinstance(templates, dict):
        voice["templates"] = templates  # type: ignore[assignment]
    domains = sorted({link_domain(d) for d in settings.allowed_link_domains if d.strip()})
    return replace(settings, draft_voice=voice, allowed_link_domains=domains)


def save(conn: psycopg.Connection, user: accounts.User, settings: StudioSettings) -> list[str]:
    """Store the owner's edit; returns the names of what changed (audited, with before and
    after). The caller's connection is RLS-bound: only the studio's owner can update."""
    new = validated(settings)
    old = load(conn, new.location_id)
    changed = [name for name in EDITABLE if getattr(old, name) != getattr(new, name)]
    if not changed:
        return []
    assignments = ", ".join(f"{name} = %({name})s" for name in changed)
    values = {name: getattr(new, name) for name in changed}
    if "draft_voice" in values:
        values["draft_voice"] = Jsonb(values["draft_voice"])
    updated = conn.execute(
        f"UPDATE app.locations SET {assignments} WHERE location_id = %(location)s",  # noqa: S608 - names from EDITABLE
        {**values, "location": new.location_id},
    ).rowcount
    if updated != 1:
        raise SettingsError("only the studio's owner can change its settings")
    diff = {name: {"from": _plain(getattr(old, name)), "to": _plain(getattr(new, name))}
            for name in changed}  # fmt: skip
    _record(conn, user, "settings_changed", {"changed": diff})
    return changed


def set_sending_paused(
    conn: psycopg.Connection, user: accounts.User, paused: bool, *, now: datetime
) -> bool:
    """The kill switch: stop (or resume) all outbound sending for the owner's studio at
    once. Returns whether anything changed."""
    row = conn.execute(
        """UPDATE app.locations
           SET sending_paused_at = %(at)s, sending_paused_by = %(by)s,
               sending_paused_reason = %(reason)s
           WHERE location_id = %(location)s AND (sending_paused_at IS NULL) = %(paused)s
           RETURNING location_id""",
        {"at": now if paused else None, "by": user.id if paused else None,
         "reason": "paused by the owner" if paused else None,
         "location": user.location_id, "paused": paused},
    ).fetchone()  # fmt: skip
    if row is None:
        return False
    _record(conn, user, "sending_paused" if paused else "sending_resumed", {"at": now.isoformat()})
    return True


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, time) else value


def _record(
    conn: psycopg.Connection, user: accounts.User, event_type: str, details: dict[str, Any]
) -> None:
    record_event(conn, event_type, actor="user", location_id=user.location_id,
                 actor_user_id=user.id, entity_type="location", entity_id=user.location_id,
                 properties=details)  # fmt: skip
    accounts.record_ui_action(conn, user, event_type, entity_type="location",
                              entity_id=user.location_id, details=details)  # fmt: skip
