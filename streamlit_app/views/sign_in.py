import streamlit as st

from streamlit_app import session

st.title("TrainU")
st.write("Sign in with the account your studio created for you.")
with st.form("sign_in"):
    email = st.text_input("Email", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary")
if submitted:
    if session.sign_in(email, password):
        st.rerun()
    else:
        st.error("That email and password do not match an active account.")
