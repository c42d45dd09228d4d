"""Studio settings (owner): the kill switch, the drafts' voice, quiet hours, caps and the
link domains drafts may carry. The database lets only the owner change them; every change
is audited."""

from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from streamlit_app import session
from trainu_dagster.messaging import studio_settings
from trainu_dagster.messaging.studio_settings import SettingsError

user = session.user()
st.title("Settings")
for ok, detail in st.session_state.pop("settings_results", []):
    (st.success if ok else st.error)(detail)

with session.as_signed_in_user() as conn:
    current = studio_settings.load(conn, user.location_id)

st.subheader("Sending")
if current.sending_paused_at is not None:  # current.sending_paused, with its time
    st.error(f"All sending is stopped (since {session.local_time(current.sending_paused_at)}).")
    pause = st.button("Resume sending")
else:
    st.caption("Approved messages go out within the rules below.")
    pause = st.button("Stop all sending now", type="primary")
if pause:
    with session.as_signed_in_user() as conn:
        studio_settings.set_sending_paused(
            conn, user, not current.sending_paused, now=datetime.now(UTC)
        )
    message = "Sending resumed." if current.sending_paused else "All sending is stopped."
    st.session_state["settings_results"] = [(True, message)]
    st.rerun()

voice = current.draft_voice
with st.form("studio_settings"):
    st.subheader("Voice of the drafts")
    tone = st.text_input("Tone", value=voice.get("tone", ""), placeholder="warm and brief")
    sign_off = st.text_input("Sign-off", value=voice.get("sign_off", ""))
    st.subheader("Quiet hours and caps (each client's local time)")
    left, right = st.columns(2)
    start = left.time_input("Send from", value=current.quiet_hours_start)
    end = right.time_input("Send until", value=current.quiet_hours_end)
    per_day = left.number_input(
        "At most per client per day", 0, 20, value=current.max_messages_per_day
    )
    per_week = right.number_input(
        "At most per client per week", 0, 50, value=current.max_messages_per_week
    )
    domains = st.text_area(
        "Link domains drafts may contain (one per line)",
        value="\n".join(current.allowed_link_domains),
    )
    saved = st.form_submit_button("Save settings", type="primary")
if saved:
    edit = replace(
        current,
        draft_voice={**voice, "tone": tone, "sign_off": sign_off},
        quiet_hours_start=start,
        quiet_hours_end=end,
        max_messages_per_day=int(per_day),
        max_messages_per_week=int(per_week),
        allowed_link_domains=domains.splitlines(),
    )
    try:
        with session.as_signed_in_user() as conn:
            changed = studio_settings.save(conn, user, edit)
    except SettingsError as problem:
        st.error(f"Not saved: {problem}.")
    else:
        done = f"Saved: {', '.join(changed).replace('_', ' ')}." if changed else "Nothing changed."
        st.session_state["settings_results"] = [(True, done)]
        st.rerun()
