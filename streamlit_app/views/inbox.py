"""AI Inbox: every draft waits here for a trainer's decision; nothing is sent without one.

Buttons act through `on_click` callbacks whose arguments were bound when the page was
drawn, so a decision applies to the draft version the trainer saw (stale-page protection
lives in `inbox.decisions`). GHL text (names, messages) is only ever shown with
`st.text`/`st.dataframe`-style inert elements, never as Markdown or HTML. The client panel
is read only for the drafts whose panel the trainer opens.
"""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import altair as alt
import streamlit as st

from streamlit_app import session
from trainu_dagster.inbox import decisions, queue
from trainu_dagster.inbox.decisions import Loaded
from trainu_dagster.messaging.drafting import open_drafter
from trainu_dagster.messaging.templates import RESTYLED
from trainu_dagster.reporting import client_goals, client_panel
from trainu_dagster.reporting.threads import thread
from trainu_dagster.settings import get_settings

PAGE_SIZE = 10  # the first render stays quick; "Show more" adds the next ones
PURPOSES = {
    "confirmation": "Booking confirmation",
    "reminder": "Session reminder",
    "no_show_checkin": "No-show check-in",
    "reschedule_offer": "Reschedule offer",
    "re_engagement": "Re-engagement",
    "milestone": "Goal milestone",
    "reply": "Suggested reply",
    "opt_out_confirmation": "Opt-out confirmation",
}
TRIGGERS = {
    "booking_created": "booking created",
    "session_tomorrow": "session tomorrow",
    "no_show": "no-show",
    "late_cancel": "late cancellation",
    "risk_high": "risk raised to high",
    "goal_milestone": "goal milestone",
    "inbound_message": "client replied",
}
SNOOZES = {"1 hour": timedelta(hours=1), "4 hours": timedelta(hours=4), "1 day": timedelta(days=1)}
MORE = ("Regenerate", "Reject", "Snooze")


def _now() -> datetime:
    return datetime.now(UTC)


def _report(outcomes: list[decisions.Outcome]) -> None:
    st.session_state["inbox_results"] = [(o.ok, o.detail) for o in outcomes]


def _decided(draft: Loaded, action: str, outcome: decisions.Outcome) -> None:
    """The card shows it when it reruns (or the page, if the whole page reruns first)."""
    st.session_state[f"outcome-{draft.id}"] = (action, outcome.ok, outcome.detail)


def _approve(draft: Loaded, key: str) -> None:
    with session.as_signed_in_user() as conn:
        outcome = decisions.approve(conn, session.user(), draft, st.session_state[key], now=_now())
    _decided(draft, "approve", outcome)


def _regenerate(draft: Loaded, instruction: str) -> None:
    with session.as_signed_in_user() as conn, open_drafter(get_settings()) as drafter:
        outcome = decisions.regenerate(
            conn, session.user(), draft, instruction, drafter, now=_now()
        )
    _decided(draft, "regenerate", outcome)


def _regenerate_as_asked(draft: Loaded, key: str) -> None:
    _regenerate(draft, st.session_state.get(key) or "")


def _reject(draft: Loaded, key: str) -> None:
    with session.as_signed_in_user() as conn:
        reason = st.session_state.get(key) or ""
        outcome = decisions.reject(conn, session.user(), draft, reason, now=_now())
    _decided(draft, "reject", outcome)


def _snooze(draft: Loaded, key: str) -> None:
    until = _now() + SNOOZES[st.session_state[key]]
    with session.as_signed_in_user() as conn:
        outcome = decisions.snooze(conn, session.user(), draft, until, now=_now())
    _decided(draft, "snooze", outcome)


def _bulk(action: str, shown: dict[Loaded, str]) -> None:
    chosen = [d for d in shown if st.session_state.get(f"pick-{d.id}")]
    user, now = session.user(), _now()
    with session.as_signed_in_user() as conn:
        if action == "approve":
            outcomes = decisions.bulk(
                conn, chosen, lambda c, d: decisions.approve(c, user, d, shown[d], now=now)
            )
        else:
            reason = st.session_state.get("bulk-reason") or ""
            outcomes = decisions.bulk(
                conn, chosen, lambda c, d: decisions.reject(c, user, d, reason, now=now)
            )
    st.session_state.pop("bulk-confirm", None)
    _report(outcomes)


def _show_more() -> None:
    st.session_state["inbox-limit"] += PAGE_SIZE


def _client_panel(client_id: UUID) -> None:
    """The client's risk over time, bookings and goals (read when the panel is opened)."""
    with session.as_signed_in_user() as conn:
        risk = client_panel.risk_history(conn, client_id)
        booked = client_panel.bookings(conn, client_id)
        goals = client_goals.goals(conn, client_id)
    if risk.empty:
        st.caption("No risk scores yet.")
    else:
        chart = (
            alt.Chart(risk)
            .mark_line(point=True)
            .encode(
                x=alt.X("scored_at:T", title="Scored"),
                y=alt.Y("risk_score:Q", title="Risk score", scale=alt.Scale(domain=[0, 1])),
                tooltip=["scored_at:T", "risk_score:Q", "risk_band:N"],
            )
        )
        st.altair_chart(chart.properties(height=160), width="stretch")
    st.caption("Bookings, newest first")
    st.dataframe(booked, hide_index=True, width="stretch")
    st.caption("Goals")
    st.dataframe(
        goals[["title", "status", "percent_complete", "trend", "target_date"]],
        hide_index=True, width="stretch",
    )  # fmt: skip


@st.fragment
def _card(draft_id: UUID, owner_view: bool) -> None:
    """One draft. A decision reruns only this card, so the trainer's click is answered at
    once; after a regeneration or a refusal it shows the draft as it now is."""
    draft: queue.PendingDraft = st.session_state[f"draft-{draft_id}"]
    result = st.session_state.pop(f"outcome-{draft_id}", None)
    if result is not None:
        action, ok, detail = result
        (st.success if ok else st.warning)(detail)
        if ok and action != "regenerate":
            return  # decided: nothing more to do here
        with session.as_signed_in_user() as conn:
            current = queue.pending_drafts(conn, now=_now(), only=draft_id, limit=1)
        if not current:
            return  # withdrawn or decided elsewhere: the message says so
        draft = st.session_state[f"draft-{draft_id}"] = current[0]
    loaded = Loaded(draft.id, draft.updated_at)
    version = f"{draft.id}-{draft.updated_at.timestamp()}"
    top = st.columns([0.7, 0.3])
    top[0].text(draft.client_name)
    top[0].caption(
        f"{PURPOSES.get(draft.purpose, draft.purpose)} · "
        f"{TRIGGERS.get(draft.trigger.get('event', ''), 'trigger')} · "
        f"{session.local_time(draft.created_at)} · {draft.channel}"
    )
    if draft.trainer_name and owner_view:
        top[0].text(f"Trainer: {draft.trainer_name}")
    if draft.risk_band:
        top[1].metric(f"Risk: {draft.risk_band}", f"{draft.risk_score:.2f}")
    if draft.risk_reason:
        st.text(draft.risk_reason)
    if draft.safety.get("failed"):
        st.warning("Safety checks failed: " + ", ".join(draft.safety["failed"]))
    elif draft.safety:
        st.caption("Safety checks passed.")
    lines = st.session_state.get(f"thread-{draft.client_id}") or []
    if lines:
        with st.expander("Thread", expanded=draft.purpose == "reply"):
            st.text("\n".join(
                f"{'Client' if line.direction == 'inbound' else 'Studio'}: {line.body}"
                for line in lines
            ))  # fmt: skip
    if st.toggle("Client details", key=f"panel-{draft.id}"):
        _client_panel(draft.client_id)
    body_key = f"body-{version}"
    st.text_area("Message", value=draft.body, key=body_key, height=110)
    left, right = st.columns([0.25, 0.75])
    left.button("Approve", key=f"approve-{version}", type="primary",
                on_click=_approve, args=(loaded, body_key))  # fmt: skip
    more = right.radio("Or", list(MORE), index=None, horizontal=True, key=f"more-{version}",
                       label_visibility="collapsed")  # fmt: skip
    if more == "Regenerate":
        asked = f"instruction-{version}"
        cols = st.columns(len(RESTYLED) + 1)
        for col, style in zip(cols, RESTYLED, strict=False):
            col.button(style.capitalize(), key=f"restyle-{style}-{version}",
                       on_click=_regenerate, args=(loaded, style))  # fmt: skip
        st.text_input("Or say how", key=asked, placeholder="e.g. mention the new evening slots")
        st.button("Regenerate draft", key=f"regenerate-{version}",
                  on_click=_regenerate_as_asked, args=(loaded, asked))  # fmt: skip
    elif more == "Reject":
        st.text_input("Why?", key=f"reason-{version}")
        st.button("Reject draft", key=f"reject-{version}",
                  on_click=_reject, args=(loaded, f"reason-{version}"))  # fmt: skip
    elif more == "Snooze":
        st.selectbox("For", list(SNOOZES), key=f"snooze-for-{version}")
        st.button("Snooze draft", key=f"snooze-{version}",
                  on_click=_snooze, args=(loaded, f"snooze-for-{version}"))  # fmt: skip


st.title("AI Inbox")
user = session.user()
trainer_id = None
if user.role == "owner":
    with session.as_signed_in_user() as conn:
        trainers = dict(conn.execute("SELECT id, name FROM app.trainers ORDER BY name").fetchall())
    trainer_id = st.selectbox(
        "Trainer",
        [None, *trainers],
        format_func=lambda t: "All trainers" if t is None else trainers[t],
    )

with session.as_signed_in_user() as conn:
    limit = st.session_state.setdefault("inbox-limit", PAGE_SIZE)
    drafts = queue.pending_drafts(conn, now=_now(), trainer_id=trainer_id, limit=limit)
    waiting = queue.pending_count(conn, now=_now(), trainer_id=trainer_id)
    threads = {d.client_id: thread(conn, d.client_id) for d in drafts}

# What was decided since the last full run, for drafts no longer on the page (bulk
# results, or a card's decision when the whole page reran first).
listed = {str(d.id) for d in drafts}
for key in [k for k in st.session_state if str(k).startswith("outcome-")]:
    if key.removeprefix("outcome-") not in listed:
        _, ok, detail = st.session_state.pop(key)
        (st.success if ok else st.warning)(detail)
for ok, detail in st.session_state.pop("inbox_results", []):
    (st.success if ok else st.warning)(detail)

if not drafts:
    st.info("Nothing waiting for you: every draft has been decided.")
    st.stop()

more = f" The first {len(drafts)} are shown." if waiting > len(drafts) else ""
st.caption(f"{waiting} {'draft' if waiting == 1 else 'drafts'} waiting, most urgent first.{more}")
shown = {Loaded(d.id, d.updated_at): d.body for d in drafts}
for draft in drafts:
    st.session_state[f"draft-{draft.id}"] = draft
    st.session_state[f"thread-{draft.client_id}"] = threads[draft.client_id]
    with st.container(border=True):
        st.checkbox("Select for a bulk decision", key=f"pick-{draft.id}")
        _card(draft.id, user.role == "owner")

if waiting > len(drafts):
    st.button(f"Show {PAGE_SIZE} more", on_click=_show_more)

picked = sum(bool(st.session_state.get(f"pick-{d.id}")) for d in drafts)
st.divider()
st.subheader(f"Selected: {picked}")
cols = st.columns(2)
if cols[0].button("Approve selected", disabled=not picked):
    st.session_state["bulk-confirm"] = "approve"
if cols[1].button("Reject selected", disabled=not picked):
    st.session_state["bulk-confirm"] = "reject"
action = st.session_state.get("bulk-confirm")
if action and picked:
    if action == "reject":
        st.text_input("Why are these rejected?", key="bulk-reason")
    st.button(f"Confirm: {action} {picked} drafts as shown", type="primary",
              on_click=_bulk, args=(action, shown))  # fmt: skip
