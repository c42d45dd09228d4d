"""The installed `trainu` command, run as a real subprocess against a test database (and
where `ghl-simulator` is installed beside it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trainu_dagster.db.server import Database

TRAINU = str(Path(sys.executable).parent / "trainu")
GHL_SIMULATOR = str(Path(sys.executable).parent / "ghl-simulator")


def run(
    *args: str,
    database: Database | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if database is not None:
        full_env["TRAINU_DATABASE_URL"] = database.url()
    return subprocess.run(
        [TRAINU, *args], env=full_env, input=stdin, capture_output=True, text=True, timeout=120
    )
