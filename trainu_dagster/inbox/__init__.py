"""The AI Inbox: the drafts a trainer must decide on, and the decisions themselves.

Every function takes a connection already bound to the signed-in user (RLS decides what
it sees and may change), so the Streamlit pages only render and call.
"""
