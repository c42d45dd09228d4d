"""Run the real dbt CLI against a test database, as the README documents it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainu_dagster.db.server import Database
from trainu_dagster.settings import PROJECT_ROOT

DBT = str(Path(sys.executable).parent / "dbt")
PROJECT = str(PROJECT_ROOT / "dbt_project")


def dbt(
    database: Database, work: Path, *args: str, variables: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """`dbt <args>` with the project's profile pointed at `database`; artifacts in `work`."""
    env = {
        **os.environ,
        **database.libpq_env(),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    extra = ["--vars", json.dumps(variables)] if variables else []
    return subprocess.run(
        [DBT, *args, *extra, "--project-dir", PROJECT, "--profiles-dir", PROJECT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def dbt_ok(database: Database, work: Path, *args: str, **kwargs: Any) -> str:
    result = dbt(database, work, *args, **kwargs)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result.stdout
