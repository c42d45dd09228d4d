"""The dbt project connects with its documented profile and parses its sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trainu_dagster.db.server import Database
from trainu_dagster.settings import PROJECT_ROOT

DBT = str(Path(sys.executable).parent / "dbt")
PROJECT = str(PROJECT_ROOT / "dbt_project")


def dbt(database: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **database.libpq_env(),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    return subprocess.run(
        [DBT, *args, "--project-dir", PROJECT, "--profiles-dir", PROJECT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


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
