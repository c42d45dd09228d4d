"""The `trainu` command line, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli_harness import run
from trainu_dagster.cli import app
from trainu_dagster.db.server import Database

COMMANDS = [
    [],
    ["db"],
    ["db", "start"],
    ["db", "stop"],
    ["db", "status"],
    ["db", "url"],
    ["db", "env"],
    ["db", "psql"],
    ["db", "migrate"],
    ["users"],
    ["users", "add"],
    ["users", "list"],
    ["locations"],
    ["locations", "add"],
    ["up"],
    ["receive"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "retry"],
    ["dlq", "repair"],
    ["dlq", "discard"],
    ["messages", "classify"],
    ["drafts", "validate"],
    ["insights", "backtest"],
    ["outbox"],
    ["outbox", "status"],
    ["outbox", "pause"],
    ["outbox", "resume"],
    ["outbox", "send-now"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "trainu")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_installed_command_runs() -> None:
    result = run("--help")
    assert result.returncode == 0 and "db" in result.stdout


def test_status_without_a_running_server_says_how_to_start_it(tmp_path: Path) -> None:
    result = run("db", "status", env={"TRAINU_STATE_DIR": str(tmp_path)})
    assert result.returncode == 3
    assert "stopped" in result.stdout
    result = run("db", "url", env={"TRAINU_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "trainu db start" in result.stderr


def test_locations_and_users_round_trip(database: Database) -> None:
    added = run(
        "locations",
        "add",
        "loc-1",
        "--name",
        "Lift Lab",
        "--timezone",
        "America/Chicago",
        database=database,
    )
    assert added.returncode == 0, added.stderr
    created = run(
        "users",
        "add",
        "Coach@Example.com",
        "--location",
        "loc-1",
        "--role",
        "trainer",
        "--name",
        "Coach Carter",
        "--password-stdin",
        database=database,
        stdin="a very good password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created trainer coach@example.com" in created.stdout
    listed = run("users", "list", "--location", "loc-1", database=database)
    assert listed.stdout.splitlines() == ["loc-1\ttrainer\tcoach@example.com\tCoach Carter"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["locations", "add", "loc-2", "--name", "X", "--timezone", "Mars/Olympus"],
            None,
            "unknown timezone 'Mars/Olympus'",
        ),
        (
            [
                "users",
                "add",
                "x@example.com",
                "--location",
                "nowhere",
                "--role",
                "owner",
                "--name",
                "X",
                "--password-stdin",
            ],
            "a very good password\n",
            "unknown location 'nowhere'",
        ),
        (
            [
                "users",
                "add",
                "x@example.com",
                "--location",
                "loc-1",
                "--role",
                "owner",
                "--name",
                "X",
                "--password-stdin",
            ],
            "short\n",
            "at least 10 characters",
        ),
        (["db", "url", "--role", "root"], None, "--role must be one of admin, app, auth"),
    ],
)
def test_bad_input_gets_a_clear_error(
    database: Database, args: list[str], stdin: str | None, message: str
) -> None:
    result = run(*args, database=database, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_psql_and_env_reach_the_database(database: Database) -> None:
    result = run("db", "psql", "-tA", "-c", "SELECT current_database()", database=database)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == database.name
    exports = run("db", "env", database=database).stdout
    assert f"export PGDATABASE='{database.name}'" in exports
    app_url = run("db", "url", "--role", "app", database=database).stdout.strip()
    assert app_url.startswith(f"postgresql://trainu_app@/{database.name}?host=")


def test_classify_and_validate_print_one_json_line_without_a_database(tmp_path: Path) -> None:
    """The same functions the pipeline uses, for owners and support: exit 0 whatever the
    verdict, one JSON object on one line, no server anywhere."""
    nowhere = {"TRAINU_STATE_DIR": str(tmp_path), "TRAINU_DATABASE_URL": "postgresql://x@/none"}
    checks = [
        (["messages", "classify", "I think I pulled my hamstring"],
         {"opt_out": False, "escalation": "injury"}),
        (["messages", "classify", "STOP"], {"opt_out": True, "escalation": None}),
        (["messages", "classify", "I need to cancel tomorrow"],
         {"opt_out": False, "escalation": None, "intent": "cancel"}),
        (["drafts", "validate", "--channel", "SMS", "Hi Sam, 20% off this week!"],
         {"ok": False, "failed": ["promise"], "sms_segments": 1}),
        (["drafts", "validate", "--channel", "Email", "Hi Sam, see you Thursday!"],
         {"ok": True, "failed": [], "sms_segments": None}),
    ]  # fmt: skip
    for args, expected in checks:
        result = run(*args, env=nowhere)
        assert result.returncode == 0, result.stderr
        [line] = result.stdout.splitlines()
        assert json.loads(line).items() >= expected.items(), line
    bad = run("drafts", "validate", "--channel", "Fax", "hello", env=nowhere)
    assert bad.returncode != 0 and "SMS or Email" in bad.stderr
