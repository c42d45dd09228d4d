"""One embedded Postgres per test session; each test module gets its own database,
cloned from a migrated template, so tests are isolated and never touch a developer's
data (the state directory is redirected to a temporary folder before anything loads).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import structlog
from psycopg import sql
from sqlalchemy.engine import make_url

os.environ["TRAINU_STATE_DIR"] = tempfile.mkdtemp(prefix="trainu-test-state-")
os.environ.pop("TRAINU_DATABASE_URL", None)

from tests.receiver_harness import Signer, receiver_settings, running_receiver  # noqa: E402
from trainu_dagster.db import embedded, migrate  # noqa: E402
from trainu_dagster.db.server import Database, ensure_database_exists  # noqa: E402
from trainu_dagster.observability.logging import configure_logging  # noqa: E402

TEMPLATE = "trainu_template"
_numbers = itertools.count(1)

# `make test` spreads the modules over two processes (pytest-xdist, --dist loadfile
# --no-loadscope-reorder), which take whole modules in collection order: the longest start
# first, so neither process is left with a long module at the end while the other waits.
SLOWEST_FIRST = (  # by their time in `make test` on 2026-12-07
    "test_stack",
    "test_marts",
    "test_dbt_assets",
    "test_outbox",
    "test_studio_backfill",
    "test_ghl_misbehaving",
    "test_mart_rls",
    "test_end_to_end",
    "test_state_drafts",
    "test_browser",
    "test_insights",
    "test_dagster_definitions",
    "test_run_shutdown",
    "test_pulls",
    "test_client_goals",
    "test_dashboard",
    "test_receiver_durability",
    "test_cli",
    "test_dead_letters",
    "test_ghl_simulator",
    "test_dbt_project",
    "test_drafts",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedStatus]:
    pgdata = tmp_path_factory.mktemp("pg") / "pgdata"
    status = embedded.start(pgdata)
    yield status
    embedded.stop(pgdata)


@pytest.fixture(scope="session")
def template_database(pg_server: embedded.EmbeddedStatus) -> Database:
    database = Database(
        admin_url=make_url(pg_server.url(TEMPLATE)),
        dagster_database="trainu_dagster_test",
        role_passwords={},
    )
    ensure_database_exists(database, TEMPLATE)
    migrate.upgrade(database)
    return database


def drop_database(database: Database) -> None:
    with psycopg.connect(database.url(database="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )


def new_database(template_database: Database, label: str, *, migrated: bool = True) -> Database:
    name = f"t{next(_numbers)}_{label}"[:63]
    ensure_database_exists(template_database, name, template=TEMPLATE if migrated else None)
    database = replace(template_database, admin_url=template_database.admin_url.set(database=name))
    if migrated:
        migrate.upgrade(database)  # a no-op for the schema; sets database-level privileges
    return database


@pytest.fixture(scope="module")
def database(template_database: Database, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated database of this module's own."""
    db = new_database(template_database, request.module.__name__.rsplit(".", 1)[-1])
    yield db
    drop_database(db)


@pytest.fixture
def empty_database(template_database: Database) -> Iterator[Database]:
    db = new_database(template_database, "empty", migrated=False)
    yield db
    drop_database(db)


@pytest.fixture
def admin_conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect() as conn:
        yield conn


@pytest.fixture(scope="module")
def signer() -> Signer:
    """Keys to sign deliveries as GHL (and our workflow HMAC) would."""
    return Signer()


@pytest.fixture(scope="module")
def receiver_url(
    database: Database, signer: Signer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real receiver under uvicorn, writing to this module's database."""
    settings = receiver_settings(database.url(), signer, tmp_path_factory.mktemp("receiver"))
    with running_receiver(settings) as url:
        yield url


@pytest.fixture
def stderr_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Configure logging for one test, then put the process back as it was."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging()
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    yield read
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    structlog.reset_defaults()
