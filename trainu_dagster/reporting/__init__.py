"""What the app shows: reads of the dbt marts (and app tables) through the signed-in
user's RLS-bound connection. Each function returns plain rows; the pages draw them."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import psycopg


def query_frame(
    conn: psycopg.Connection, sql: str, params: Mapping[str, object] | None = None
) -> pd.DataFrame:
    """A query's rows as a DataFrame with the query's column names (empty keeps them)."""
    cur = conn.execute(sql, params or {})
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])
