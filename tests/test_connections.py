"""Studios' GHL connections: secrets sealed at rest, each studio its own Private Integration
token, the app role kept from the secrets (real Postgres, real HTTP to the simulator, the
real `trainu` command)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from ghl_simulator import generate_studio
from tests.cli_harness import run
from tests.conftest import drop_database, new_database
from tests.ghl_simulator_harness import running_simulator
from tests.rls_world import World, build_world
from trainu_dagster import accounts
from trainu_dagster.cli import app
from trainu_dagster.connections import secret_box, store
from trainu_dagster.connections.credentials import CACHE_SECONDS, DatabaseCredentials
from trainu_dagster.connections.secret_box import SecretBox, SecretUnreadable, new_key
from trainu_dagster.db import embedded
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.errors import GhlError
from trainu_dagster.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
PIT_A, PIT_A2, PIT_B = "pit-a-4f1c9e", "pit-a2-77d0b3", "pit-b-9a2e51"
STALE = "pit-stale-0c3b8d"  # one GHL no longer accepts
UNLIMITED = RequestBudget(requests=1_000_000, window=1.0)


def checked_by(sim_url: str | None) -> tuple[list[str], dict[str, str]]:
    """Ask the simulator whether a token reaches its location, or (no GHL here) do not ask."""
    return ([], {"TRAINU_GHL_BASE_URL": sim_url}) if sim_url else (["--no-check"], {})


def add_studio(database: Database, location_id: str, token: str | None = None, *,
               sim_url: str | None = None, **env: str):  # fmt: skip
    args = ["locations", "add", location_id, "--name", f"Studio {location_id}"]
    check, ghl = checked_by(sim_url)
    result = run(*args, *(["--token-stdin", *check] if token else []), database=database,
                 stdin=f"{token}\n" if token else None, env={**ghl, **env})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def set_token(database: Database, location_id: str, token: str, *, sim_url: str | None = None):
    check, ghl = checked_by(sim_url)
    result = run("locations", "set-token", location_id, "--token-stdin", *check,
                 database=database, stdin=f"{token}\n", env=ghl)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def connect_to(database: Database):
    return lambda: database.connect(autocommit=True)


def default_box() -> SecretBox:
    return secret_box.secret_box(Settings())  # the tests' state directory, as the CLI's


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recording(httpx.HTTPTransport):
    """Real HTTP; notes the bearer token each request carried."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers["authorization"].removeprefix("Bearer "))
        return super().handle_request(request)


# --- sealing ---------------------------------------------------------------------------


def test_a_sealed_secret_opens_only_with_its_key_and_errors_never_show_it() -> None:
    box = SecretBox([new_key()])
    sealed = box.seal(PIT_A)
    assert PIT_A not in sealed and box.open(sealed, what="row 1") == PIT_A
    with pytest.raises(SecretUnreadable) as refused:
        SecretBox([new_key()]).open(sealed, what="app.ghl_connections 42 access token")
    assert "app.ghl_connections 42 access token" in str(refused.value)
    assert PIT_A not in str(refused.value) and sealed not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    sealed = secret_box.secret_box(settings).seal(PIT_A)
    key_file = tmp_path / secret_box.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_box.secret_box(settings).open(sealed, what="row") == PIT_A


def test_bad_keys_in_settings_are_refused_without_showing_them() -> None:
    with pytest.raises(ValueError, match="key 2 is not a Fernet key") as refused:
        secret_box.secret_box(Settings(secret_keys=f"{new_key()},not-a-key"))
    assert "not-a-key" not in str(refused.value)


@pytest.fixture
def fresh(template_database: Database) -> Iterator[Database]:
    """A database of this test's own: every secret in it sealed by this test's keys."""
    database = new_database(template_database, "connections_fresh")
    yield database
    drop_database(database)


def test_rotating_settings_keys_reseals_everything_and_the_old_key_can_go(
    fresh: Database,
) -> None:
    database = fresh
    old, new = new_key(), new_key()
    add_studio(database, "loc-rot", PIT_A, TRAINU_SECRET_KEYS=old)
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO app.workflow_webhook_secrets (location_id, secret_sealed) VALUES (%s, %s)",
            ("loc-rot", SecretBox([old]).seal("hook-secret-1")),
        )
    rotated = run("secrets", "rotate", database=database,
                  env={"TRAINU_SECRET_KEYS": f"{new},{old}"})  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert "sealed with the newest key" in rotated.stdout
    only_new = SecretBox([new])
    credentials = DatabaseCredentials(connect_to(database), only_new)
    assert credentials.token_for("loc-rot") == PIT_A
    with database.connect() as conn:
        [hook] = conn.execute(
            "SELECT secret_sealed FROM app.workflow_webhook_secrets WHERE location_id = 'loc-rot'"
        ).fetchone()
    assert only_new.open(hook, what="hook") == "hook-secret-1"
    with pytest.raises(SecretUnreadable):
        SecretBox([old]).open(hook, what="hook")
    assert PIT_A not in rotated.stdout + rotated.stderr


def test_rotating_the_key_file_replaces_its_key(fresh: Database, tmp_path: Path) -> None:
    database, state = fresh, {"TRAINU_STATE_DIR": str(tmp_path)}
    add_studio(database, "loc-file", PIT_B, **state)
    add_studio(database, "loc-lost", PIT_A, TRAINU_SECRET_KEYS=new_key())  # a key long gone
    key_file = tmp_path / secret_box.KEY_FILE_NAME
    [before] = secret_box.read_key_file(key_file)

    refused = run("secrets", "rotate", database=database, env=state)
    assert refused.returncode == 1
    assert "app.ghl_connections" in refused.stderr and "older keys stay" in refused.stderr
    assert PIT_A not in refused.stderr
    assert len(secret_box.read_key_file(key_file)) == 2  # nothing lost: both still open

    with database.connect() as conn:
        conn.execute("DELETE FROM app.ghl_connections WHERE location_id = 'loc-lost'")
    rotated = run("secrets", "rotate", database=database, env=state)
    assert rotated.returncode == 0, rotated.stderr
    [after] = secret_box.read_key_file(key_file)
    assert after != before
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    box = SecretBox([after])
    assert DatabaseCredentials(connect_to(database), box).token_for("loc-file") == PIT_B


def test_a_dump_of_the_database_holds_no_token_in_plain_text(database: Database) -> None:
    add_studio(database, "loc-dump", PIT_A)
    set_token(database, "loc-dump", PIT_A2)
    dump = subprocess.run(
        [str(embedded.psql_path().with_name("pg_dump")), "--data-only", database.url()],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with database.connect() as conn:
        [sealed] = conn.execute(
            "SELECT access_token_sealed FROM app.ghl_connections WHERE location_id = 'loc-dump'"
        ).fetchone()
    assert sealed in dump  # the dump has the row, sealed
    assert PIT_A not in dump and PIT_A2 not in dump


# --- who may read a connection ---------------------------------------------------------


@pytest.fixture(scope="module")
def world(database: Database) -> World:
    world = build_world(database)
    with database.connect() as conn:
        for location, token in (("L1", PIT_A), ("L2", PIT_B)):
            store.save_private_integration(conn, default_box(), location, token)
    return world


@pytest.fixture
def app_conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect(role=APP_ROLE) as conn:
        yield conn


@pytest.mark.parametrize(
    "query",
    [
        "SELECT access_token_sealed FROM app.ghl_connections",
        "SELECT refresh_token_sealed FROM app.ghl_connections",
        "SELECT * FROM app.ghl_connections",
        "SELECT secret_sealed FROM app.workflow_webhook_secrets",
    ],
)
def test_the_app_role_cannot_read_a_secret_column(
    world: World, app_conn: psycopg.Connection, query: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # noqa: SIM117
        with accounts.as_user(app_conn, world.token("owner-L1")) as conn:
            conn.execute(query)


def test_an_owner_sees_only_their_studios_connection_and_no_one_else_any(
    world: World, app_conn: psycopg.Connection
) -> None:
    query = "SELECT location_id, kind, status FROM app.ghl_connections"
    with accounts.as_user(app_conn, world.token("owner-L1")) as conn:
        assert conn.execute(query).fetchall() == [("L1", "private_integration", "active")]
    for who in ("trainer-A", "client-a1"):
        with accounts.as_user(app_conn, world.token(who)) as conn:
            assert conn.execute(query).fetchall() == []
    assert app_conn.execute(query).fetchall() == []  # no session


# --- the client, each studio its own token -------------------------------------------------


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    studio = generate_studio("loc-a", trainers=1, clients=5, days=7, seed=3, now=NOW)
    tokens = {PIT_A: "loc-a", PIT_A2: "loc-a", PIT_B: "loc-b"}
    with running_simulator(studio, tokens=tokens, rate_limit=None) as url:
        yield url


def test_two_studios_each_reach_only_their_own_location(database: Database, sim_url: str) -> None:
    add_studio(database, "loc-a", PIT_A, sim_url=sim_url)
    add_studio(database, "loc-b", PIT_B, sim_url=sim_url)
    transport = Recording()
    credentials = DatabaseCredentials(connect_to(database), default_box())
    with GhlClient(credentials, base_url=sim_url, budget=UNLIMITED, transport=transport) as ghl:
        assert ghl.location("loc-a")["id"] == "loc-a"
        ghl.location("loc-b")  # B's own token: GHL lets it in
        assert transport.tokens == [PIT_A, PIT_B]

    # A's token given to B: GHL refuses it, so the command stores nothing
    refused = run("locations", "set-token", "loc-b", "--token-stdin", database=database,
                  stdin=f"{PIT_A}\n", env={"TRAINU_GHL_BASE_URL": sim_url})  # fmt: skip
    assert refused.returncode == 1
    assert "GHL refused this token for location loc-b (GHL 403" in refused.stderr
    assert "nothing stored" in refused.stderr and PIT_A not in refused.stderr
    assert DatabaseCredentials(connect_to(database), default_box()).token_for("loc-b") == PIT_B

    with database.connect() as conn:  # stored anyway (unchecked): GHL refuses it on B
        store.save_private_integration(conn, default_box(), "loc-b", PIT_A)
    credentials = DatabaseCredentials(connect_to(database), default_box())
    with GhlClient(credentials, base_url=sim_url, budget=UNLIMITED) as ghl:
        with pytest.raises(GhlError) as refused:
            ghl.location("loc-b")
        assert refused.value.status == 403
        with pytest.raises(GhlError, match="has no GHL connection") as missing:
            ghl.location("loc-none")
        assert missing.value.status == 401


def test_a_replaced_token_is_used_without_a_restart(database: Database, sim_url: str) -> None:
    add_studio(database, "loc-a", PIT_A, sim_url=sim_url)
    clock, transport = Clock(), Recording()
    credentials = DatabaseCredentials(connect_to(database), default_box(), clock=clock)
    with GhlClient(credentials, base_url=sim_url, budget=UNLIMITED, transport=transport) as ghl:
        ghl.location("loc-a")
        set_token(database, "loc-a", PIT_A2, sim_url=sim_url)  # rotate later: both valid
        ghl.location("loc-a")  # the cached one, still valid
        clock.now += CACHE_SECONDS + 1
        ghl.location("loc-a")
        assert transport.tokens == [PIT_A, PIT_A, PIT_A2]

        # GHL refuses the cached token (rotated now): the client takes the stored one at once
        set_token(database, "loc-a", STALE)
        clock.now += CACHE_SECONDS + 1
        credentials.token_for("loc-a")
        set_token(database, "loc-a", PIT_A, sim_url=sim_url)
        transport.tokens.clear()
        ghl.location("loc-a")
        assert transport.tokens == [STALE, PIT_A]

        # refused with no other token to try: the error stands and the owner sees it
        set_token(database, "loc-a", STALE)
        clock.now += CACHE_SECONDS + 1
        with pytest.raises(GhlError) as refused:
            ghl.location("loc-a")
    assert refused.value.status == 401
    status = run("locations", "status", database=database)
    [line] = [x for x in status.stdout.splitlines() if x.startswith("loc-a\tconnection")]
    assert line.startswith("loc-a\tconnection private_integration active\trefreshed ")
    assert line.endswith("\tGHL refused the token (401)")


# --- the command line --------------------------------------------------------------------


def test_locations_status_shows_each_connection_and_never_a_secret(database: Database) -> None:
    add_studio(database, "loc-s1", PIT_B)
    add_studio(database, "loc-s2")
    env = {"TRAINU_GHL_TOKEN": PIT_A2}
    status = run("locations", "status", database=database, env=env)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    [s1] = [x for x in lines if x.startswith("loc-s1\t")]
    assert s1.startswith("loc-s1\tconnection private_integration active\trefreshed ")
    assert "loc-s2\tconnection TRAINU_GHL_TOKEN" in lines
    without = run("locations", "status", database=database, env={"TRAINU_GHL_TOKEN": ""})
    assert "loc-s2\tconnection not connected" in without.stdout.splitlines()
    for token in (PIT_A, PIT_A2, PIT_B):
        assert token not in status.stdout + status.stderr


def test_the_token_comes_from_stdin_only_and_is_never_logged(database: Database) -> None:
    secret = "pit-only-on-stdin-5e0f"
    debug = {"TRAINU_LOG_LEVEL": "DEBUG"}
    nowhere = {"TRAINU_GHL_BASE_URL": "http://127.0.0.1:9"}  # nothing listens: no GHL to ask
    added = run("locations", "add", "loc-in", "--name", "In", "--token-stdin", "--no-check",
                database=database, stdin=f"{secret}\n", env=debug)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "own Private Integration token" in added.stdout
    assert secret not in added.stdout + added.stderr
    for args, stdin, message in [
        (["locations", "set-token", "loc-in"], secret, "pass --token-stdin"),
        (["locations", "set-token", "loc-in", "--token-stdin"], "\n", "no token on stdin"),
        (["locations", "set-token", "nowhere", "--token-stdin"], secret, "unknown studio"),
        (["locations", "set-token", "loc-in", "--token-stdin"], "pit-other", "reach GHL at"),
        (["locations", "add", "loc-un", "--name", "U", "--token-stdin"], secret, "reach GHL"),
    ]:
        result = run(*args, database=database, stdin=stdin, env=nowhere)
        assert result.returncode == 1 and message in result.stderr
        assert secret not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert DatabaseCredentials(connect_to(database), default_box()).token_for("loc-in") == secret
    with database.connect() as conn:  # GHL could not check it: nothing stored, not even the studio
        assert (
            conn.execute("SELECT 1 FROM app.locations WHERE location_id = 'loc-un'").fetchone()
            is None
        )
    assert os.environ.get("TRAINU_SECRET_KEYS") is None  # the tests run on the key file


@pytest.mark.parametrize(
    "command",
    [["secrets"], ["secrets", "rotate"], ["secrets", "new-key"], ["locations", "set-token"]],
    ids=" ".join,
)
def test_the_new_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_new_key_prints_a_key_that_seals() -> None:
    result = run("secrets", "new-key")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert SecretBox([key]).open(SecretBox([key]).seal(PIT_A), what="row") == PIT_A
