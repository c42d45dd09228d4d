"""TrainU web app: sign in, then the pages your role may use."""

import streamlit as st

from streamlit_app import session

st.set_page_config(page_title="TrainU", page_icon=":material/fitness_center:", layout="wide")

user = session.current_user()
if user is None:
    pages = [st.Page("views/sign_in.py", title="Sign in", icon=":material/login:")]
else:
    pages = [st.Page("views/home.py", title="Home", icon=":material/home:", default=True)]
    with st.sidebar:
        st.caption(f"Signed in as **{user.display_name}** ({user.role})")
        if st.button("Sign out", icon=":material/logout:"):
            session.sign_out()
            st.rerun()

st.navigation(pages).run()
