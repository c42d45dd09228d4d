"""Escalations (owner): messages a person must answer, never drafted: the category, the
client's words, the thread; assign to a trainer, resolve with a note."""

from datetime import UTC, datetime
from uuid import UUID

import streamlit as st

from streamlit_app import session
from trainu_dagster.inbox import escalations
from trainu_dagster.reporting.threads import thread

CATEGORIES = {
    "self_harm": "Crisis: self-harm",
    "injury": "Injury",
    "pain": "Pain",
    "illness": "Illness",
    "pregnancy": "Pregnancy",
    "billing_dispute": "Billing dispute",
    "legal_threat": "Legal threat",
}


def _assign(escalation: UUID, key: str) -> None:
    with session.as_signed_in_user() as conn:
        result = escalations.assign(conn, session.user(), escalation, st.session_state[key])
    st.session_state["escalation_results"] = [(result.ok, result.detail)]


def _resolve(escalation: UUID, key: str) -> None:
    note = st.session_state.get(key) or ""
    with session.as_signed_in_user() as conn:
        result = escalations.resolve(conn, session.user(), escalation, note, now=datetime.now(UTC))
    st.session_state["escalation_results"] = [(result.ok, result.detail)]


user = session.user()
st.title("Escalations")
for ok, detail in st.session_state.pop("escalation_results", []):
    (st.success if ok else st.warning)(detail)
with session.as_signed_in_user() as conn:
    waiting = escalations.open_escalations(conn)
    staff: dict[UUID, str] = dict(conn.execute(
        "SELECT id, display_name FROM app.users WHERE role IN ('owner', 'trainer') "
        "AND disabled_at IS NULL ORDER BY role, display_name"
    ).fetchall())  # fmt: skip
    threads = {e.client_id: thread(conn, e.client_id) for e in waiting}

if not waiting:
    st.info("No escalations waiting.")
for item in waiting:
    with st.container(border=True):
        st.markdown(f"**{CATEGORIES.get(item.category, item.category)}** · "
                    f"{session.local_time(item.created_at)}")  # fmt: skip
        st.text(item.client_name)
        st.text(item.message)
        if item.trigger.get("guidance"):
            st.error(item.trigger["guidance"])
        if item.assignee_name:
            st.text(f"Assigned to {item.assignee_name}")
        with st.expander("Thread"):
            for line in threads[item.client_id]:
                st.text(f"{'Client' if line.direction == 'inbound' else 'Studio'}: {line.body}")
        left, right = st.columns(2)
        with left.popover("Assign"):
            st.selectbox(
                "To", list(staff), format_func=lambda person: staff[person], key=f"to-{item.id}"
            )
            st.button("Assign", key=f"assign-{item.id}",
                      on_click=_assign, args=(item.id, f"to-{item.id}"))  # fmt: skip
        with right.popover("Resolve"):
            st.text_input("What was done?", key=f"note-{item.id}")
            st.button("Resolve", key=f"resolve-{item.id}",
                      on_click=_resolve, args=(item.id, f"note-{item.id}"))  # fmt: skip
