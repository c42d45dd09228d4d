"""What is waiting for a decision, most urgent first.

Drafts tied to a moment (a reminder for tomorrow, a confirmation, a check-in after
today's no-show, a reply) come first, soonest due first; then the rest (re-engagement,
milestones), riskiest client first. Snoozed drafts stay out until their time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

TIME_BOUND = ("reminder", "confirmation", "no_show_checkin", "reschedule_offer", "reply",
              "opt_out_confirmation")  # fmt: skip


@dataclass(frozen=True)
class PendingDraft:
    id: UUID
    client_id: UUID
    client_name: str
    trainer_name: str | None
    purpose: str
    status: str
    channel: str
    subject: str | None
    body: str
    trigger: dict[str, Any]
    created_at: datetime
    due_at: datetime
    updated_at: datetime
    correlation_id: UUID
    safety: dict[str, Any]
    risk_score: float | None
    risk_band: str | None
    risk_reason: str | None
    risk_factors: list[dict[str, Any]]


PENDING = """
SELECT m.id, m.client_id, c.name AS client_name, t.name AS trainer_name, m.purpose,
       m.status, m.channel, m.subject, m.body, m.trigger, m.created_at,
       coalesce(m.scheduled_for, m.created_at) AS due_at, m.updated_at, m.correlation_id,
       m.safety, i.risk_score::float AS risk_score, i.risk_band, i.reason AS risk_reason,
       coalesce(i.reasons, '[]') AS risk_factors
FROM app.messages m
JOIN app.clients c ON c.id = m.client_id
LEFT JOIN app.trainers t ON t.id = m.trainer_id
LEFT JOIN LATERAL (
    SELECT risk_score, risk_band, reason, reasons FROM app.insights
    WHERE client_id = m.client_id ORDER BY scored_at DESC LIMIT 1
) i ON true
WHERE m.status IN ('pending_approval', 'needs_manual')
  AND (m.snoozed_until IS NULL OR m.snoozed_until <= %(now)s)
  AND (%(trainer)s::uuid IS NULL OR m.trainer_id = %(trainer)s)
  AND (%(only)s::uuid IS NULL OR m.id = %(only)s)
ORDER BY m.purpose = ANY(%(time_bound)s) DESC,
         CASE WHEN m.purpose = ANY(%(time_bound)s) THEN coalesce(m.scheduled_for, m.created_at) END,
         i.risk_score DESC NULLS LAST, m.created_at
LIMIT %(limit)s
"""


COUNT = """
SELECT count(*) FROM app.messages m
WHERE m.status IN ('pending_approval', 'needs_manual')
  AND (m.snoozed_until IS NULL OR m.snoozed_until <= %(now)s)
  AND (%(trainer)s::uuid IS NULL OR m.trainer_id = %(trainer)s)
"""


def pending_count(
    conn: psycopg.Connection, *, now: datetime, trainer_id: UUID | None = None
) -> int:
    """How many drafts wait for this user (the page shows the first few)."""
    row = conn.execute(COUNT, {"now": now, "trainer": trainer_id}).fetchone()
    assert row is not None  # count(*) always returns a row
    return int(row[0])


def pending_drafts(
    conn: psycopg.Connection,
    *,
    now: datetime,
    trainer_id: UUID | None = None,
    only: UUID | None = None,
    limit: int = 200,
) -> list[PendingDraft]:
    """The drafts RLS lets this user decide on, in the order they should be decided
    (`only`: that one draft, if it still waits)."""
    with conn.cursor(row_factory=class_row(PendingDraft)) as cur:
        return cur.execute(
            PENDING,
            {"now": now, "trainer": trainer_id, "only": only, "limit": limit,
             "time_bound": list(TIME_BOUND)},
        ).fetchall()  # fmt: skip
