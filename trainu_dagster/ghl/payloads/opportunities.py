"""Opportunities: a client's place in the studio's sales pipeline, and its value.

A monetary value is read as an exact `Decimal` (never a float), and one that is not a finite
number is left empty rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from trainu_dagster.ghl.payloads.reader import FieldSpec, Reader, text_field


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _money_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return _money(obj[key])


OPPORTUNITY_FIELDS: FieldSpec = {
    "contact_id": ("contactId", text_field, None),
    "pipeline_id": ("pipelineId", text_field, None),
    "pipeline_stage_id": ("pipelineStageId", text_field, None),
    "status": ("status", text_field, None),
    "monetary_value": ("monetaryValue", _money_field, None),
    "assigned_to": ("assignedTo", text_field, None),
}
