"""The dbt project connects with its documented profile and parses its sources."""

from __future__ import annotations

import json
from pathlib import Path

from tests.dbt_harness import dbt
from trainu_dagster.db.server import Database


def test_dbt_debug_connects_through_the_socket_directory(
    database: Database, tmp_path: Path
) -> None:
    result = dbt(database, tmp_path, "debug")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection test: [OK connection ok]" in result.stdout


def test_dbt_parse_declares_the_raw_and_app_sources(database: Database, tmp_path: Path) -> None:
    result = dbt(database, tmp_path, "parse")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    sources = {(s["schema"], s["name"]) for s in manifest["sources"].values()}
    with database.connect() as conn:
        tables = set(conn.execute("SELECT schemaname, tablename FROM pg_tables").fetchall())
    assert sources <= tables, sources - tables
    assert ("raw", "ghl_appointments") in sources
