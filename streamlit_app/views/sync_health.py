"""Sync health (owner): webhook volume and lag, pulls, flagged deliveries, the dead-letter
queue with Retry / Repair / Discard, and failed Dagster runs with their link.

Retry, repair and discard are the CLI's own functions (`ingest.retry`). They apply events
to the raw tables, which the app role cannot write, so they run on the pipeline's
connection, and only for an item the owner's RLS-bound connection can see.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import streamlit as st

from streamlit_app import session
from trainu_dagster import accounts
from trainu_dagster.ingest import retry
from trainu_dagster.reporting import sync_health
from trainu_dagster.settings import get_settings


def _act(item_id: int, action: str, run: Callable[[psycopg.Connection, str], object]) -> None:
    user = session.user()
    with session.as_signed_in_user() as conn:
        mine = conn.execute("SELECT 1 FROM ops.sync_queue WHERE id = %s", (item_id,)).fetchone()
    if mine is None:
        st.session_state["sync_results"] = [(False, f"Item {item_id} is not in your studio.")]
        return
    try:
        with session.database().connect() as admin:
            report = run(admin, f"user:{user.email}")
            admin.commit()  # a failed attempt is recorded too
    except (LookupError, retry.RepairFailed) as problem:
        st.session_state["sync_results"] = [(False, str(problem))]
        return
    outcome = getattr(report, "outcome", "discarded")
    with session.as_signed_in_user() as conn:
        accounts.record_ui_action(conn, user, f"dlq_{action}", entity_type="sync_queue",
                                  entity_id=str(item_id), details={"outcome": outcome})  # fmt: skip
    ok = outcome in ("repaired", "discarded")
    error = getattr(report, "error", None)
    st.session_state["sync_results"] = [
        (ok, f"Item {item_id}: {outcome}" + (f" ({error})" if error else "") + ".")
    ]


def _retry(item_id: int) -> None:
    _act(item_id, "retry", lambda conn, by: retry.repair(conn, item_id, by=by))


def _repair(item_id: int, key: str) -> None:
    try:
        payload = json.loads(st.session_state[key])
    except json.JSONDecodeError as problem:
        st.session_state["sync_results"] = [
            (False, f"The corrected payload is not JSON: {problem}")
        ]
        return
    _act(item_id, "repair", lambda conn, by: retry.repair(conn, item_id, by=by, payload=payload))


def _discard(item_id: int, key: str) -> None:
    reason = (st.session_state.get(key) or "").strip()
    if not reason:
        st.session_state["sync_results"] = [(False, "Say why the item is discarded.")]
        return
    _act(item_id, "discard", lambda conn, by: retry.discard(conn, item_id, by=by, reason=reason))


user = session.user()
st.title("Sync health")
for ok, detail in st.session_state.pop("sync_results", []):
    (st.success if ok else st.error)(detail)

since = datetime.now(UTC) - timedelta(hours=24)
dagster_url = f"http://127.0.0.1:{get_settings().dagster_port}"
with session.as_signed_in_user() as conn:
    lag = sync_health.webhook_lag(conn, since=since)
    deliveries = sync_health.deliveries(conn, since=since)
    pulls = sync_health.pulls(conn)
    items = sync_health.dead_letters(conn)
    payloads = sync_health.event_payloads(conn, [i.webhook_event_id for i in items])
    runs = sync_health.failed_runs(conn, since=since - timedelta(days=6), dagster_url=dagster_url)

cols = st.columns(4)
cols[0].metric("Webhooks, last 24 h", int(lag["deliveries"].sum()) if not lag.empty else 0)
latest_p95 = None if lag.empty else lag["p95_lag_s"].iloc[-1]
cols[1].metric("Lag p95 (s), latest hour", "–" if pd.isna(latest_p95) else f"{latest_p95:g}")
flagged = (
    deliveries[deliveries["status"] == "flagged"]["deliveries"].sum() if len(deliveries) else 0
)
cols[2].metric("Flagged deliveries", int(flagged))
cols[3].metric("Dead letters open", len(items))

st.subheader("Webhooks by hour")
st.dataframe(lag, hide_index=True, width="stretch")
st.subheader("Deliveries by status and type")
st.dataframe(deliveries, hide_index=True, width="stretch")
st.subheader("Pulls")
st.dataframe(pulls, hide_index=True, width="stretch")

st.subheader("Dead-letter queue")
if not items:
    st.caption("Nothing is stuck.")
for item in items:
    with st.container(border=True):
        st.text(f"#{item.id} · {item.source} · {item.status} · {item.attempts} attempts")
        st.text(f"{item.error_class}: {item.error}")
        left, middle, right = st.columns(3)
        left.button("Retry", key=f"retry-{item.id}", on_click=_retry, args=(item.id,))
        with middle.popover("Repair"):
            event = item.webhook_event_id
            shown = item.payload_ref.get("repaired_payload") or (
                None if event is None else payloads.get(event)
            )
            st.text_area("Corrected payload (JSON)", key=f"payload-{item.id}",
                         value=json.dumps(shown or {}, indent=2))  # fmt: skip
            st.button("Repair with this payload", key=f"repair-{item.id}",
                      on_click=_repair, args=(item.id, f"payload-{item.id}"))  # fmt: skip
        with right.popover("Discard"):
            st.text_input("Why?", key=f"why-{item.id}")
            st.button("Discard item", key=f"discard-{item.id}",
                      on_click=_discard, args=(item.id, f"why-{item.id}"))  # fmt: skip

st.subheader("Failed Dagster runs (7 days)")
if runs.empty:
    st.caption("No failed runs.")
else:
    st.dataframe(
        runs,
        hide_index=True,
        width="stretch",
        column_config={"link": st.column_config.LinkColumn("Dagster UI", display_text="open run")},
    )
