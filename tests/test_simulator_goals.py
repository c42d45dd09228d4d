"""The simulator's TrainU-side data: seeded goals with believable trajectories, written into
the app tables exactly as the truth has them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from ghl_simulator import Studio, generate_studio, write_app_data
from ghl_simulator.cli import app
from ghl_simulator.studio import INTERNAL_FIELDS
from trainu_dagster.db.server import Database

LOCATION = "Gq8mTz2LrX5bNc7VdK3w"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
THREE_WEEKS = timedelta(weeks=3)
# How far an entry may sit from its plan: the noise each goal type is generated with.
NOISE = {"kg": Decimal("0.9"), "sessions": Decimal("0.5")}
PLATEAU = {"kg": Decimal("0.5"), "sessions": Decimal("0")}


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=4, clients=1000, seed=5, now=NOW)


def entries_by_goal(studio: Studio) -> dict[str, list[dict[str, Any]]]:
    by_goal: dict[str, list[dict[str, Any]]] = {goal_id: [] for goal_id in studio.goals}
    for entry in studio.goal_entries.values():
        by_goal[entry["goal_id"]].append(entry)
    for entries in by_goal.values():
        entries.sort(key=lambda e: e["recorded_at"])
    return by_goal


def at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["recorded_at"])


def progress(goal: dict[str, Any], value: Decimal) -> Decimal:
    """How far `value` is from the baseline in the goal's direction."""
    moved = value - goal["baseline_value"]
    return moved if goal["direction"] == "increase" else -moved


# --- generation --------------------------------------------------------------------------


def test_same_seed_same_goals_different_seed_different_goals(studio: Studio) -> None:
    again = generate_studio(LOCATION, trainers=4, clients=1000, seed=5, now=NOW)
    other = generate_studio(LOCATION, trainers=4, clients=1000, seed=6, now=NOW)
    truth = studio.truth()
    assert again.truth()["goal"] == truth["goal"]
    assert again.truth()["goal_entry"] == truth["goal_entry"]
    assert other.goals != studio.goals and other.goal_entries != studio.goal_entries
    assert studio.summary()["counts"]["goal"] == len(studio.goals) > 0
    assert studio.summary()["counts"]["goal_entry"] == len(studio.goal_entries) > 0


def test_goals_belong_to_clients_and_satisfy_the_app_tables_rules(studio: Studio) -> None:
    tz = studio.tz
    today = NOW.astimezone(tz).date()
    window = today - timedelta(days=121)
    for goal in studio.goals.values():
        UUID(goal["id"])
        assert goal["contact_id"] in studio.profiles, "clients only, never leads"
        assert goal["goal_type"] in {"body_weight", "strength", "sessions_per_month"}
        assert goal["unit"] == ("sessions" if goal["goal_type"] == "sessions_per_month" else "kg")
        assert goal["direction"] == (
            "decrease" if goal["goal_type"] == "body_weight" else "increase"
        )
        assert (goal["direction"] == "increase") == (goal["target_value"] > goal["baseline_value"])
        for value in (goal["baseline_value"], goal["target_value"]):
            assert isinstance(value, Decimal) and value.as_tuple().exponent == -1
        start, end = date.fromisoformat(goal["start_date"]), date.fromisoformat(goal["target_date"])
        assert window <= start < today
        assert 8 * 7 <= (end - start).days <= 26 * 7
        assert goal["status"] in {"active", "achieved", "abandoned"}
        assert goal["trajectory"] in {"on_track", "stalled", "regressing"}
    share = len({g["contact_id"] for g in studio.goals.values()}) / len(studio.profiles)
    assert 0.7 < share < 0.9
    per_client = Counter(g["contact_id"] for g in studio.goals.values())
    assert set(per_client.values()) == {1, 2}
    assert "trajectory" in INTERNAL_FIELDS
    assert not {"goal", "goal_entry"} & set(studio.entities), "TrainU's data: never served"


def test_entries_run_from_the_baseline_to_now_weekly_or_monthly(studio: Studio) -> None:
    tz = studio.tz
    for goal_id, entries in entries_by_goal(studio).items():
        goal = studio.goals[goal_id]
        assert entries, "every goal has at least its baseline entry"
        first = at(entries[0]).astimezone(tz)
        assert first.date().isoformat() == goal["start_date"] and 6 <= first.hour <= 10
        assert entries[0]["value"] == goal["baseline_value"]
        assert all(at(e) <= NOW and e["contact_id"] == goal["contact_id"] for e in entries)
        assert all(e["recorded_at"].endswith("Z") for e in entries)
        assert all(e["value"].as_tuple().exponent == -1 for e in entries)
        days = [at(e).astimezone(tz).date() for e in entries]
        gaps = {(b - a).days for a, b in zip(days, days[1:], strict=False)}
        monthly = goal["goal_type"] == "sessions_per_month"
        assert gaps <= (set(range(28, 33)) if monthly else set(range(5, 11)))
        if monthly:
            assert all(e["value"] == e["value"].to_integral_value() for e in entries)
        reached = progress(goal, entries[-1]["value"]) >= progress(goal, goal["target_value"])
        assert (goal["status"] == "achieved") == reached
    pairs = Counter((e["goal_id"], e["recorded_at"]) for e in studio.goal_entries.values())
    assert max(pairs.values()) == 1


def test_trajectories_are_mixed_and_at_risk_clients_struggle_more(studio: Studio) -> None:
    goals = list(studio.goals.values())
    mix = Counter(g["trajectory"] for g in goals)
    share = {name: n / len(goals) for name, n in mix.items()}
    assert 0.45 < share["on_track"] < 0.65
    assert 0.17 < share["stalled"] < 0.33
    assert 0.12 < share["regressing"] < 0.28
    struggling: Counter[bool] = Counter()
    total: Counter[bool] = Counter()
    for goal in goals:
        risky = studio.profiles[goal["contact_id"]].at_risk
        total[risky] += 1
        struggling[risky] += goal["trajectory"] != "on_track"
    assert struggling[True] / total[True] > 1.3 * struggling[False] / total[False]


def test_trajectories_behave_as_named(studio: Studio) -> None:
    tz = studio.tz
    checked: Counter[str] = Counter()
    for goal_id, entries in entries_by_goal(studio).items():
        goal, last = studio.goals[goal_id], entries[-1]
        unit = goal["unit"]
        if goal["trajectory"] == "on_track":
            start, end = (date.fromisoformat(goal[k]) for k in ("start_date", "target_date"))
            elapsed = (at(last).astimezone(tz).date() - start).days / (end - start).days
            planned = progress(goal, goal["target_value"]) * Decimal(min(1.0, elapsed))
            assert progress(goal, last["value"]) >= planned - NOISE[unit], goal
            checked["on_track"] += 1
            continue
        earlier = [e for e in entries if at(e) <= at(last) - THREE_WEEKS]
        if not earlier:
            continue  # younger than three weeks: nothing to compare yet
        if goal["trajectory"] == "regressing":
            assert progress(goal, last["value"]) < progress(goal, earlier[-1]["value"]), goal
        else:
            recent = [e["value"] for e in entries if at(e) >= at(last) - THREE_WEEKS]
            assert max(recent) - min(recent) <= PLATEAU[unit], goal
        checked[goal["trajectory"]] += 1
    assert min(checked.values()) > 50, checked


def test_churned_clients_stop_logging_and_leave_goals_unfinished(studio: Studio) -> None:
    churned = {c["id"] for c in studio.contacts.values() if "churned" in c["tags"]}
    last_session: dict[str, datetime] = {}
    for a in studio.appointments.values():
        if a["contactId"] in churned:
            start = datetime.fromisoformat(a["startTime"])
            last_session[a["contactId"]] = max(start, last_session.get(a["contactId"], start))
    goals = [g for g in studio.goals.values() if g["contact_id"] in churned]
    assert goals
    assert {g["status"] for g in goals} <= {"abandoned", "achieved"}
    for entry in studio.goal_entries.values():
        if entry["contact_id"] in last_session:  # (a short stay may fit no session)
            assert at(entry) <= last_session[entry["contact_id"]] + timedelta(days=8)


# --- the app tables ----------------------------------------------------------------------


def read_back(conn: psycopg.Connection, location_id: str) -> dict[str, dict[str, Any]]:
    params = {"location": location_id}
    trainers = {
        row[0]: {"name": row[1], "email": row[2], "timezone": row[3]}
        for row in conn.execute(
            "SELECT ghl_user_id, name, email, timezone FROM app.trainers "
            "WHERE location_id = %(location)s",
            params,
        )
    }
    client_columns = ("trainer", "name", "email", "phone", "timezone", "opted_out_at")
    clients = {
        row[0]: dict(zip(client_columns, row[1:], strict=True))
        for row in conn.execute(
            """SELECT c.ghl_contact_id, t.ghl_user_id, c.name, c.email, c.phone, c.timezone,
                      c.opted_out_at
               FROM app.clients c LEFT JOIN app.trainers t ON t.id = c.trainer_id
               WHERE c.location_id = %(location)s""",
            params,
        )
    }
    goal_columns = (
        "contact_id", "goal_type", "title", "unit", "direction", "baseline_value",
        "target_value", "start_date", "target_date", "status",
    )  # fmt: skip
    goals = {
        str(row[0]): dict(zip(goal_columns, row[1:], strict=True))
        for row in conn.execute(
            """SELECT g.id, c.ghl_contact_id, g.goal_type, g.title, g.unit, g.direction,
                      g.baseline_value, g.target_value, g.start_date::text,
                      g.target_date::text, g.status
               FROM app.goals g JOIN app.clients c ON c.id = g.client_id
               WHERE g.location_id = %(location)s""",
            params,
        )
    }
    entries = {
        str(row[0]): {"goal_id": str(row[1]), "contact_id": row[2], "value": row[3], "at": row[4]}
        for row in conn.execute(
            """SELECT e.id, e.goal_id, c.ghl_contact_id, e.value, e.recorded_at
               FROM app.goal_entries e JOIN app.clients c ON c.id = e.client_id
               WHERE e.location_id = %(location)s""",
            params,
        )
    }
    location = conn.execute(
        "SELECT name, timezone FROM app.locations WHERE location_id = %(location)s", params
    ).fetchone()
    return {
        "location": {"row": location},
        "trainers": trainers,
        "clients": clients,
        "goals": goals,
        "entries": entries,
    }


def expected(studio: Studio) -> dict[str, dict[str, Any]]:
    truth = studio.truth()
    location = truth["location"][studio.location_id]
    clients = {
        contact_id: {
            "trainer": c["assignedTo"],
            "name": f"{c['firstName']} {c['lastName']}",
            "email": c["email"],
            "phone": c["phone"],
            "timezone": c["timezone"],
            "opted_out_at": datetime.fromisoformat(c["dateUpdated"]) if c["dnd"] else None,
        }
        for contact_id, c in truth["contact"].items()
        if contact_id in studio.profiles and not c["deleted"]
    }
    return {
        "location": {"row": (location["name"], location["timezone"])},
        "trainers": {
            user_id: {"name": u["name"], "email": u["email"], "timezone": location["timezone"]}
            for user_id, u in truth["user"].items()
        },
        "clients": clients,
        "goals": {
            goal_id: {k: v for k, v in g.items() if k not in ("id", "trajectory")}
            for goal_id, g in truth["goal"].items()
        },
        "entries": {
            entry_id: {
                "goal_id": e["goal_id"],
                "contact_id": e["contact_id"],
                "value": e["value"],
                "at": datetime.fromisoformat(e["recorded_at"]),
            }
            for entry_id, e in truth["goal_entry"].items()
        },
    }


def counts(conn: psycopg.Connection, location_id: str) -> dict[str, int]:
    tables = ("locations", "trainers", "clients", "goals", "goal_entries")
    return {
        table: conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE location_id = %s").format(
                sql.Identifier("app", table)
            ),
            (location_id,),
        ).fetchone()[0]
        for table in tables
    }


def test_write_app_data_writes_exactly_the_truth_and_is_idempotent(
    studio: Studio, database: Database
) -> None:
    with database.connect() as conn:
        with conn.transaction():
            written = write_app_data(conn, studio)
        assert read_back(conn, LOCATION) == expected(studio)
        assert any(c["opted_out_at"] for c in expected(studio)["clients"].values())
        before = counts(conn, LOCATION)
        assert written == {
            "locations": 1,
            "trainers": len(studio.users),
            "clients": len(expected(studio)["clients"]),
            "goals": len(studio.goals),
            "goal_entries": len(studio.goal_entries),
        }
        assert before == written
        with conn.transaction():
            assert write_app_data(conn, studio) == written
        assert counts(conn, LOCATION) == before
        assert read_back(conn, LOCATION) == expected(studio)


def test_a_registered_studio_keeps_its_name(database: Database) -> None:
    small = generate_studio("sim-named", trainers=2, clients=30, seed=2, now=NOW)
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO app.locations (location_id, name, timezone) VALUES (%s, %s, 'UTC')",
            ("sim-named", "Simulated studio"),
        )
        with conn.transaction():
            write_app_data(conn, small)
        row = conn.execute(
            "SELECT name, timezone FROM app.locations WHERE location_id = 'sim-named'"
        ).fetchone()
    assert row == ("Simulated studio", "America/New_York")


def test_simulate_offers_app_data() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--app-data" in result.output and "--no-app-data" in result.output
