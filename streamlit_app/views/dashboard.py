"""Owner dashboard: show-rate and its siblings by week or month, for the studio or each
trainer, upcoming bookings, at-risk clients by band, the drafts' funnel (drafted, approved,
sent, replied) and how they are decided, and clients' retention by month. Numbers come
from the dbt marts as RLS lets the owner read them; periods are the studio's local weeks
and months. The trainer filter applies to attendance and drafts; retention and risk are
the studio's. Every table can be downloaded as CSV; only what is shown is queried."""

from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from streamlit_app import session
from trainu_dagster.reporting import dashboards

RATES = {
    "show_rate": "Show-rate",
    "no_show_rate": "No-show rate",
    "cancellation_rate": "Cancellation rate",
    "late_cancel_rate": "Late-cancel rate",
}


def table(frame: pd.DataFrame, name: str) -> None:
    """A table with its CSV download (GHL text stays text: dataframes render no HTML)."""
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button(
        f"Download {name} (CSV)",
        frame.to_csv(index=False).encode(),
        f"{name}.csv",
        "text/csv",
        key=f"csv-{name}",
    )


user = session.user()
st.title("Dashboard")
with session.as_signed_in_user() as conn:
    trainers = dict(
        conn.execute("SELECT id::text, name FROM app.trainers ORDER BY name").fetchall()
    )

today = datetime.now(UTC).date()
left, middle, right = st.columns([2, 1, 2])
period = left.date_input("Period", (today - timedelta(weeks=12), today), max_value=today)
grain = middle.radio("By", ["week", "month"], horizontal=True)
trainer = right.selectbox(
    "Trainer", [None, *trainers], format_func=lambda t: "Whole studio" if t is None else trainers[t]
)
start, end = (period[0], period[-1]) if isinstance(period, tuple) else (period, period)
start = start - timedelta(days=start.weekday()) if grain == "week" else start.replace(day=1)

with session.as_signed_in_user() as conn:
    rates = dashboards.show_rates(
        conn,
        grain=grain,
        by="trainer" if trainer else "studio",
        start=start,
        end=end,
        trainer_id=trainer,
    )
    by_trainer = (
        dashboards.show_rates(conn, grain=grain, by="trainer", start=start, end=end)
        if trainer is None
        else None  # not shown with one trainer chosen, so not read
    )
    upcoming = dashboards.upcoming_bookings(
        conn, now=datetime.now(UTC), until=datetime.now(UTC) + timedelta(days=7)
    )
    bands = dashboards.risk_bands(conn, start=start, end=end)
    drafts = dashboards.funnel(conn, start, end, trainer_id=trainer)
    decisions = dashboards.acceptance(conn, start=start, end=end, trainer_id=trainer)
    retention = dashboards.retention(conn, start, end)

st.subheader("Attendance")
if rates.empty:
    st.info("No bookings in this period yet.")
else:
    latest = rates.iloc[-1]
    cols = st.columns(4)
    for col, (key, label) in zip(cols, RATES.items(), strict=True):
        value, before = latest[key], rates[key].iloc[-2] if len(rates) > 1 else None
        col.metric(
            f"{label}, {grain} of {latest['period_start']:%d %b}",
            "–" if pd.isna(value) else f"{value:.0%}",
            None
            if before is None or pd.isna(before) or pd.isna(value)
            else f"{(value - before) * 100:+.1f} pts",
            delta_color="inverse" if key != "show_rate" else "normal",
        )
    long = rates.melt(id_vars=["period_start"], value_vars=list(RATES), var_name="rate")
    long["rate"] = long["rate"].map(RATES)
    st.altair_chart(
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("period_start:T", title=None),
            y=alt.Y("value:Q", title=None, axis=alt.Axis(format="%")),
            color=alt.Color("rate:N", title=None),
        ),
        width="stretch",
    )
    table(rates, "attendance")

if by_trainer is not None and not by_trainer.empty:
    st.subheader("By trainer")
    st.altair_chart(
        alt.Chart(by_trainer)
        .mark_line(point=True)
        .encode(
            x=alt.X("period_start:T", title=None),
            y=alt.Y("show_rate:Q", title="Show-rate", axis=alt.Axis(format="%")),
            color=alt.Color("trainer_name:N", title=None),
        ),
        width="stretch",
    )
    table(by_trainer, "attendance-by-trainer")

st.subheader("Next 7 days")
if upcoming.empty:
    st.caption("Nothing booked.")
else:
    st.metric("Confirmed", f"{int(upcoming['confirmed'].sum())} of {len(upcoming)}")
    table(upcoming, "upcoming-bookings")

st.subheader("Clients at risk")
if bands.empty:
    st.caption("No risk scores in this period.")
else:
    st.altair_chart(
        alt.Chart(bands)
        .mark_area()
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("clients:Q", stack=True),
            color=alt.Color("risk_band:N", sort=["high", "medium", "low"], title="Band"),
        ),
        width="stretch",
    )
    table(bands, "risk-bands")

st.subheader("Message funnel")
if drafts.empty:
    st.caption("No drafts made in this period.")
else:
    totals = drafts[dashboards.STAGES].sum()
    cols = st.columns(len(dashboards.STAGES))
    for col, stage in zip(cols, dashboards.STAGES, strict=True):
        col.metric(stage.capitalize(), int(totals[stage]))
    stages = pd.DataFrame({"stage": dashboards.STAGES, "drafts": totals.to_list()})
    st.altair_chart(
        alt.Chart(stages)
        .mark_bar()
        .encode(
            x=alt.X("drafts:Q", title="Drafts"),
            y=alt.Y("stage:N", sort=dashboards.STAGES, title=None),
        ),
        width="stretch",
    )
    table(drafts, "message-funnel")

st.subheader("Draft decisions")
if decisions.empty:
    st.caption("No drafts decided in this period.")
else:
    table(decisions, "draft-decisions")

st.subheader("Retention")
if retention.empty:
    st.caption("No sessions attended in this period.")
else:
    counts = ["active", "new", "retained", "reactivated", "churned"]
    long = retention.melt(id_vars=["local_month"], value_vars=counts, var_name="clients")
    st.altair_chart(
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("local_month:T", title=None, timeUnit="yearmonth"),
            y=alt.Y("value:Q", title="Clients"),
            color=alt.Color("clients:N", sort=counts, title=None),
        ),
        width="stretch",
    )
    table(retention, "retention")
st.caption(f"Periods from {start:%d %b %Y}, in the studio's local weeks and months.")
