"""Owner dashboard: show-rate and its siblings by week or month, for the studio or each
trainer, upcoming bookings, at-risk clients by band, the drafts' funnel (drafted, approved,
sent, replied) and how they are decided, and clients' retention by month. Numbers come
from the dbt marts as RLS lets the owner read them; periods are the studio's local weeks
and months. The trainer filter applies to attendance and drafts; retention and risk are
the studio's. Every table can be downloaded as CSV.

Each section is a tab that runs only when open (`on_change="rerun"`): the browser draws
one section's charts and tables, not all of them, and only its marts are queried. The open
tab is in the URL, so a section can be linked to."""

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
GRAINS: list[dashboards.Grain] = ["week", "month"]
SECTIONS = ["Attendance", "By trainer", "Next 7 days", "Clients at risk", "Messages", "Retention"]


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
default_period = (today - timedelta(weeks=12), today)
period = left.date_input("Period", default_period, max_value=today)
grain = middle.radio("By", GRAINS, horizontal=True)
trainer = right.selectbox(
    "Trainer", [None, *trainers], format_func=lambda t: "Whole studio" if t is None else trainers[t]
)
# A range is 0 to 2 dates: its start alone while the end is being picked (that day only);
# none only if its field is cleared, which Streamlit's frontend resets to the default.
start, end = (period[0], period[-1]) if period else default_period
start = start - timedelta(days=start.weekday()) if grain == "week" else start.replace(day=1)

attendance, by_trainer, upcoming, at_risk, messages, retention = st.tabs(
    SECTIONS, key="section", on_change="rerun", bind="query-params"
)

if attendance.open:
    with attendance, session.as_signed_in_user() as conn:
        rates = dashboards.show_rates(
            conn,
            grain=grain,
            by="trainer" if trainer else "studio",
            start=start,
            end=end,
            trainer_id=trainer,
        )
        if rates.empty:
            st.info("No bookings in this period yet.")
        else:
            latest = rates.iloc[-1]
            for col, (key, label) in zip(st.columns(4), RATES.items(), strict=True):
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

if by_trainer.open:
    with by_trainer, session.as_signed_in_user() as conn:
        rates = dashboards.show_rates(conn, grain=grain, by="trainer", start=start, end=end)
        st.caption("Every trainer's show-rate side by side, whichever trainer is chosen above.")
        if rates.empty:
            st.info("No bookings in this period yet.")
        else:
            st.altair_chart(
                alt.Chart(rates)
                .mark_line(point=True)
                .encode(
                    x=alt.X("period_start:T", title=None),
                    y=alt.Y("show_rate:Q", title="Show-rate", axis=alt.Axis(format="%")),
                    color=alt.Color("trainer_name:N", title=None),
                ),
                width="stretch",
            )
            table(rates, "attendance-by-trainer")

if upcoming.open:
    with upcoming, session.as_signed_in_user() as conn:
        now = datetime.now(UTC)
        booked = dashboards.upcoming_bookings(conn, now=now, until=now + timedelta(days=7))
        if booked.empty:
            st.caption("Nothing booked in the next 7 days.")
        else:
            st.metric("Confirmed", f"{int(booked['confirmed'].sum())} of {len(booked)}")
            table(booked, "upcoming-bookings")

if at_risk.open:
    with at_risk, session.as_signed_in_user() as conn:
        bands = dashboards.risk_bands(conn, start=start, end=end)
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

if messages.open:
    with messages, session.as_signed_in_user() as conn:
        drafts = dashboards.funnel(conn, start, end, trainer_id=trainer)
        decisions = dashboards.acceptance(conn, start=start, end=end, trainer_id=trainer)
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

if retention.open:
    with retention, session.as_signed_in_user() as conn:
        months = dashboards.retention(conn, start, end)
        if months.empty:
            st.caption("No sessions attended in this period.")
        else:
            counts = ["active", "new", "retained", "reactivated", "churned"]
            long = months.melt(id_vars=["local_month"], value_vars=counts, var_name="clients")
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
            table(months, "retention")
st.caption(f"Periods from {start:%d %b %Y}, in the studio's local weeks and months.")
