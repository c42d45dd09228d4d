"""A trainer's decision on a draft: approve (as drafted or edited), regenerate, reject, snooze.

Each decision is guarded: it only applies to the draft exactly as the page showed it
(same status family, same `updated_at`), so a draft that was withdrawn, regenerated or
decided by someone else since the page loaded is refused, never approved blind. The
final text is held to the same safety rules as every draft, so an edit cannot add what a
draft may not say. Approval stores the approver, the time and `approved_body` equal to
the final text, as `messages_send_requires_approval` demands. Every decision appends to
`app.events` (with the draft's correlation id) and `app.audit_log`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg

from trainu_dagster import accounts
from trainu_dagster.messaging import drafts
from trainu_dagster.messaging.templates import RESTYLED
from trainu_dagster.observability.product_events import record_event

OPEN = ("pending_approval", "needs_manual")
MAX_INSTRUCTION = 300


@dataclass(frozen=True)
class Loaded:
    """A draft as the page showed it: the decision applies to this version only."""

    id: UUID
    updated_at: datetime


@dataclass(frozen=True)
class Outcome:
    message_id: UUID
    ok: bool
    detail: str


Action = Literal["approve", "regenerate", "reject", "snooze"]


def approve(
    conn: psycopg.Connection,
    user: accounts.User,
    draft: Loaded,
    final_text: str,
    *,
    now: datetime,
) -> Outcome:
    """Approve `final_text` (the draft as shown, or the trainer's edit of it) for sending."""
    if not final_text.strip():
        return Outcome(draft.id, False, "The message is empty: write it or reject the draft.")
    if _lock(conn, draft) is None:
        return _refused(conn, draft, final_text)
    verdict = drafts.check_text(conn, draft.id, final_text)
    if not verdict.ok:
        return Outcome(draft.id, False, "Not approved: " + "; ".join(verdict.details.values())
                       + ". Edit the message, then approve it.")  # fmt: skip
    row = conn.execute(
        """UPDATE app.messages SET
               status = 'approved', body = %(text)s, approved_body = %(text)s,
               approved_by = %(user)s, approved_at = %(now)s, decided_at = %(now)s,
               decision = CASE WHEN body = %(text)s THEN 'approved_unedited'
                               ELSE 'approved_edited' END,
               snoozed_until = NULL, updated_at = %(now)s
           WHERE id = %(id)s AND updated_at = %(loaded)s
             AND (status = 'pending_approval' OR (status = 'needs_manual' AND body <> %(text)s))
           RETURNING location_id, correlation_id, purpose, draft_body, decision""",
        {"text": final_text, "user": user.id, "now": now, "id": draft.id,
         "loaded": draft.updated_at},
    ).fetchone()  # fmt: skip
    if row is None:
        return _refused(conn, draft, final_text)
    location_id, correlation_id, purpose, original, decision = row
    record_action(conn, user, "draft_approved", draft.id, location_id, correlation_id,
            {"decision": decision, "purpose": purpose, "original": original,
             "final": final_text})  # fmt: skip
    label = "Approved as edited" if decision == "approved_edited" else "Approved"
    return Outcome(draft.id, True, f"{label}: it will be sent within the studio's sending rules.")


def regenerate(
    conn: psycopg.Connection,
    user: accounts.User,
    draft: Loaded,
    instruction: str,
    drafter: drafts.Drafter,
    *,
    now: datetime,
) -> Outcome:
    """Draft the message again as the trainer asks ("shorter", "warmer", free text); the
    new text waits for a decision like any draft."""
    instruction = " ".join(instruction.split())
    if not instruction:
        return Outcome(draft.id, False, "Say how to change the draft, e.g. “shorter”.")
    if len(instruction) > MAX_INSTRUCTION:
        return Outcome(draft.id, False, f"Keep the instruction under {MAX_INSTRUCTION} characters.")
    locked = _lock(conn, draft)
    if locked is None:
        return _refused(conn, draft, None)
    location_id, correlation_id, purpose, previous = locked
    try:
        redone = drafts.redraft(conn, draft.id, instruction, drafter, now=now)
    except drafts.CannotRedraft as why:
        return Outcome(draft.id, False, str(why))
    if redone is None:
        styles = " or ".join(f"“{style}”" for style in RESTYLED)
        return Outcome(draft.id, False, f"Without a model a draft can only be made {styles}: "
                       "edit the text yourself, or ask the owner to set up a model.")  # fmt: skip
    record_action(conn, user, "draft_regenerated", draft.id, location_id, correlation_id,
                  {"purpose": purpose, "instruction": instruction, "previous": previous,
                   "final": redone.result.text, "generator": redone.result.generator,
                   "outcome": redone.result.outcome,
                   "safety_failed": list(redone.verdict.failed)})  # fmt: skip
    if redone.status == "needs_manual":
        failed = "; ".join(redone.verdict.details.values()) or "the model asked for a person"
        return Outcome(draft.id, True, f"Regenerated, but it needs your edit: {failed}.")
    return Outcome(draft.id, True, "Regenerated: review the new text.")


def reject(
    conn: psycopg.Connection, user: accounts.User, draft: Loaded, reason: str, *, now: datetime
) -> Outcome:
    """Reject the draft; the reason is kept so drafting can learn what trainers refuse."""
    if not reason.strip():
        return Outcome(draft.id, False, "Say why the draft is rejected.")
    row = conn.execute(
        """UPDATE app.messages SET status = 'rejected', rejected_reason = %(reason)s,
               decision = 'rejected', decided_at = %(now)s, updated_at = %(now)s
           WHERE id = %(id)s AND updated_at = %(loaded)s AND status = ANY(%(open)s)
           RETURNING location_id, correlation_id, purpose, body""",
        {"reason": reason.strip(), "now": now, "id": draft.id, "loaded": draft.updated_at,
         "open": list(OPEN)},
    ).fetchone()  # fmt: skip
    if row is None:
        return _refused(conn, draft, None)
    location_id, correlation_id, purpose, body = row
    record_action(conn, user, "draft_rejected", draft.id, location_id, correlation_id,
            {"decision": "rejected", "purpose": purpose, "reason": reason.strip(),
             "original": body})  # fmt: skip
    return Outcome(draft.id, True, "Rejected.")


def snooze(
    conn: psycopg.Connection, user: accounts.User, draft: Loaded, until: datetime, *, now: datetime
) -> Outcome:
    """Hide the draft from the inbox until `until`; it stays pending."""
    if until <= now:
        return Outcome(draft.id, False, "Snooze until a time in the future.")
    row = conn.execute(
        """UPDATE app.messages SET snoozed_until = %(until)s, updated_at = %(now)s
           WHERE id = %(id)s AND updated_at = %(loaded)s AND status = ANY(%(open)s)
           RETURNING location_id, correlation_id""",
        {"until": until, "now": now, "id": draft.id, "loaded": draft.updated_at,
         "open": list(OPEN)},
    ).fetchone()  # fmt: skip
    if row is None:
        return _refused(conn, draft, None)
    record_action(
        conn, user, "draft_snoozed", draft.id, row[0], row[1], {"until": until.isoformat()}
    )
    return Outcome(draft.id, True, f"Snoozed until {until:%a %d %b %H:%M}.")


def bulk(
    conn: psycopg.Connection,
    drafts: Sequence[Loaded],
    decide: Callable[[psycopg.Connection, Loaded], Outcome],
) -> list[Outcome]:
    """Apply one decision to many drafts, each in its own savepoint: one refusal (a stale
    draft) neither stops nor undoes the others, and each gets its own result."""
    outcomes = []
    for draft in drafts:
        with conn.transaction():
            outcomes.append(decide(conn, draft))
    return outcomes


def _lock(conn: psycopg.Connection, draft: Loaded) -> tuple[str, UUID, str, str] | None:
    """The draft, locked, if it is still open and exactly as the page showed it: its
    location, correlation id, purpose and body."""
    return conn.execute(
        """SELECT location_id, correlation_id, purpose, body FROM app.messages
           WHERE id = %s AND updated_at = %s AND status = ANY(%s) FOR UPDATE""",
        (draft.id, draft.updated_at, list(OPEN)),
    ).fetchone()


def _refused(conn: psycopg.Connection, draft: Loaded, final_text: str | None) -> Outcome:
    """Why a guarded UPDATE touched nothing, in words the trainer can act on."""
    row = conn.execute(
        "SELECT status, updated_at, body FROM app.messages WHERE id = %s", (draft.id,)
    ).fetchone()
    if row is None:
        return Outcome(draft.id, False, "This draft is not in your inbox.")
    status, updated_at, body = row
    if status not in OPEN:
        shown = {"suppressed": "withdrawn"}.get(status, status.replace("_", " "))
        return Outcome(draft.id, False, f"Not done: this draft was {shown} since the page loaded.")
    if updated_at != draft.updated_at:
        return Outcome(
            draft.id, False, "Not done: this draft changed since the page loaded. Review it again."
        )
    if status == "needs_manual" and final_text == body:
        return Outcome(
            draft.id, False, "This draft failed the safety checks: edit it before approving."
        )
    return Outcome(draft.id, False, "Not done.")


def record_action(
    conn: psycopg.Connection,
    user: accounts.User,
    event_type: str,
    message_id: UUID,
    location_id: str,
    correlation_id: UUID,
    properties: dict[str, Any],
) -> None:
    record_event(conn, event_type, actor="user", location_id=location_id,
                 actor_user_id=user.id, entity_type="message", entity_id=str(message_id),
                 correlation_id=correlation_id, properties=properties)  # fmt: skip
    details = {"correlation_id": str(correlation_id), **properties}
    accounts.record_ui_action(conn, user, event_type, entity_type="message",
                              entity_id=str(message_id), details=details)  # fmt: skip
