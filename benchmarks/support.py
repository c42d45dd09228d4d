"""What every benchmark shares: a throwaway migrated Postgres, and where results go."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from trainu_dagster.db import embedded, migrate
from trainu_dagster.db.server import Database, ensure_database_exists

RESULTS = Path(__file__).resolve().parent / "results"


def start_database(name: str) -> tuple[Database, Path]:
    """An embedded server in a new temporary directory, migrated to head (stopped and
    removed again if that fails, so a broken migration leaves no server behind)."""
    work = Path(tempfile.mkdtemp(prefix=f"trainu-bench-{name}-"))
    status = embedded.start(work / "pgdata")
    try:
        database = Database(make_url(status.url("trainu")), "trainu_dagster", {})
        ensure_database_exists(database, "trainu")
        migrate.upgrade(database)
    except BaseException:
        stop_database(work)
        raise
    return database, work


def stop_database(work: Path) -> None:
    embedded.stop(work / "pgdata")
    shutil.rmtree(work, ignore_errors=True)


def save_results(name: str, results: dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2))
    return out
