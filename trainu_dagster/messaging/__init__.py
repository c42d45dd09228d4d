"""Messaging domain code: reading client replies, checking and drafting outreach.

Plain functions only: nothing here imports Dagster or Streamlit. `classify` and `safety` are
pure as well (no database, no network), so ingest, drafting and the CLI share one set of rules.
"""
