"""TrainU web app: sign in, then the pages your role may use.

Which pages are listed is convenience only: every page reads through the signed-in
user's RLS-bound connection, so a page reached some other way still shows nothing the
database would not.
"""

import streamlit as st

from streamlit_app import session
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

st.set_page_config(page_title="TrainU", page_icon=":material/fitness_center:", layout="wide")

HOME = st.Page("views/home.py", title="Home", icon=":material/home:", default=True)
INBOX = st.Page("views/inbox.py", title="AI Inbox", icon=":material/inbox:")
DASHBOARD = st.Page("views/dashboard.py", title="Dashboard", icon=":material/monitoring:")
ESCALATIONS = st.Page("views/escalations.py", title="Escalations", icon=":material/priority_high:")
SYNC = st.Page("views/sync_health.py", title="Sync health", icon=":material/sync:")
MY_GOALS = st.Page("views/my_goals.py", title="My goals", icon=":material/flag:")
SETTINGS = st.Page("views/settings.py", title="Settings", icon=":material/settings:")
PAGES = {
    "owner": [HOME, DASHBOARD, INBOX, ESCALATIONS, SYNC, SETTINGS],
    "trainer": [HOME, INBOX],
    "client": [HOME, MY_GOALS],
}

user = session.current_user()
if user is None:
    pages = [st.Page("views/sign_in.py", title="Sign in", icon=":material/login:")]
else:
    pages = PAGES[user.role]
    with st.sidebar:
        st.text(f"Signed in as {user.display_name} ({user.role})")
        if st.button("Sign out", icon=":material/logout:"):
            session.sign_out()
            st.rerun()

try:
    st.navigation(pages).run()
except Exception:
    log.exception("page_failed")
    st.error("Something went wrong on this page. It has been logged; please try again.")
