"""My goals (client): progress toward each target, upcoming sessions and the messages
exchanged with the studio. RLS shows a client their own rows only."""

from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st

from streamlit_app import session
from trainu_dagster.reporting import client_goals
from trainu_dagster.reporting.threads import thread

TREND = {"improving": "improving", "flat": "holding steady", "regressing": "slipping back",
         "insufficient_data": "not enough entries yet"}  # fmt: skip

user = session.user()
st.title("My goals")
with session.as_signed_in_user() as conn:
    goals = client_goals.goals(conn)
    charts = {g: client_goals.entries(conn, g) for g in goals["goal_id"]}
    sessions = client_goals.upcoming_sessions(conn, now=datetime.now(UTC))
    client = conn.execute("SELECT id FROM app.clients WHERE user_id = %s", (user.id,)).fetchone()
    exchanged = thread(conn, client[0], limit=20) if client else []

if goals.empty:
    st.info("No goals yet: your trainer sets them with you.")
for goal in goals.itertuples():
    with st.container(border=True):
        st.text(goal.title)
        left, middle, right = st.columns(3)
        left.metric("Progress", f"{goal.percent_complete:.0f}%")
        middle.metric(f"Now ({goal.unit})", f"{goal.latest_value:g}",
                      f"{goal.latest_value - goal.baseline_value:+g} since the start")  # fmt: skip
        right.metric(f"Target ({goal.unit})", f"{goal.target_value:g}", f"by {goal.target_date}",
                     delta_color="off")  # fmt: skip
        st.progress(goal.percent_complete / 100)
        st.caption(("On track" if goal.is_on_track else "Behind plan") + f", {TREND[goal.trend]}.")
        points = charts[goal.goal_id]
        if not points.empty:
            line = alt.Chart(points).mark_line(point=True).encode(
                x=alt.X("recorded_at:T", title=None), y=alt.Y("value:Q", title=goal.unit,
                                                               scale=alt.Scale(zero=False))
            )  # fmt: skip
            target = alt.Chart(pd.DataFrame({"target": [goal.target_value]})).mark_rule(
                strokeDash=[4, 4]
            ).encode(y="target:Q")  # fmt: skip
            st.altair_chart(line + target, width="stretch")

st.subheader("Upcoming sessions")
if sessions.empty:
    st.caption("Nothing booked.")
else:
    st.dataframe(
        sessions.rename(columns={"start_local": "When (studio time)", "status": "Status"}),
        hide_index=True,
    )

st.subheader("Messages")
if not exchanged:
    st.caption("No messages yet.")
for line in exchanged:
    who = "You" if line.direction == "inbound" else "Studio"
    when = f" · {session.local_time(line.at)}" if line.at else ""
    st.text(f"{who}{when}: {line.body}")
