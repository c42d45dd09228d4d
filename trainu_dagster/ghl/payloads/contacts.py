"""Contacts: their columns, their tags, and the opt-outs a DND change records.

Consent withdrawn is never dropped: GHL's DND flag and per-channel `dndSettings` (v2 `SMS`,
v3 `sms`) become opt-out rows, so a contact GHL stopped messaging is never messaged by TrainU.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trainu_dagster.ghl.payloads.events import EntityChange, OptOut
from trainu_dagster.ghl.payloads.reader import (
    FieldSpec,
    Reader,
    flag_field,
    is_map,
    text_field,
    time_field,
)

# DND channels as API v2 names them; v3 spells them in lower camel case (`sms`, `whatsApp`).
DND_CHANNELS = {name.casefold(): name for name in ("SMS", "Email", "Call", "WhatsApp", "GMB", "FB")}

DND_ACTIVE = frozenset({"active", "permanent"})


def tags(value: Any) -> list[str]:
    """A list from marketplace events, a comma-separated string from workflows."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    stripped = (item.strip() for item in items if isinstance(item, str))
    return list(dict.fromkeys(tag for tag in stripped if tag))


def tags_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return tags(obj[key])


CONTACT_FIELDS: FieldSpec = {
    "first_name": ("firstName", text_field, None),
    "last_name": ("lastName", text_field, None),
    "email": ("email", text_field, None),
    "phone": ("phone", text_field, None),
    "timezone": ("timezone", text_field, None),
    "assigned_user_id": ("assignedTo", text_field, None),
    "dnd": ("dnd", flag_field, False),
    "tags": ("tags", tags_field, []),
    "date_added": ("dateAdded", time_field, None),
}


def dnd_opt_outs(change: EntityChange, occurred_at: datetime) -> tuple[OptOut, ...]:
    found: list[str | None] = []  # None: the contact-wide `dnd` flag
    if change.columns.get("dnd"):
        found.append(None)
    settings = change.payload.get("dndSettings")
    if is_map(settings):
        found.extend(
            DND_CHANNELS.get(str(channel).casefold(), str(channel))
            for channel, setting in settings.items()
            if is_map(setting) and str(setting.get("status", "")).lower() in DND_ACTIVE
        )
    return tuple(
        OptOut(change.location_id, change.entity_id, "dnd", channel, occurred_at)
        for channel in found
    )
