import streamlit as st

from streamlit_app import session

user = session.current_user()
assert user is not None
with session.as_signed_in_user() as conn:
    location = conn.execute("SELECT name, timezone FROM app.locations").fetchone()
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM app.clients), (SELECT count(*) FROM app.goals)"
    ).fetchone()
assert counts is not None  # a SELECT without FROM returns one row
clients, goals = counts

st.title(f"Welcome, {user.display_name}")
if location:
    st.caption(f"{location[0]} · times shown in {location[1]}")
scope = {"owner": "in your studio", "trainer": "assigned to you", "client": "on your account"}[
    user.role
]
left, right = st.columns(2)
left.metric(f"Clients {scope}", clients)
right.metric("Goals", goals)
