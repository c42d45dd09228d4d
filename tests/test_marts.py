"""The marts against the simulator's ground truth, computed independently in Python.

A generated studio is pulled through the real client into the raw tables, its TrainU-side
data (trainers, clients, goals) written to the app tables, and the real `dbt build` run
from the CLI with `as_of` pinned. Then: replaying every webhook twice, shuffled, gives
marts identical to one in-order load; and an incremental run after late updates equals a
full refresh.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from ghl_simulator import Change, Studio, generate_studio, write_app_data
from tests.conftest import drop_database, new_database
from tests.dbt_harness import dbt, dbt_ok
from tests.ghl_simulator_harness import (
    SIM_TOKEN,
    creation_changes,
    running_simulator,
    webhooks_for,
)
from tests.ingest_helpers import land_and_process
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.payloads import EntityChange
from trainu_dagster.ingest.apply import apply_changes
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
AS_OF = {"as_of": NOW.isoformat()}
LOCATION = "loc-marts"
LATE_CANCEL = timedelta(hours=24)


# --- one studio, pulled and built once -------------------------------------------------------


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=3, clients=150, days=70, seed=21, now=NOW)


@pytest.fixture(scope="module")
def built(
    template_database: Database, studio: Studio, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, str]]:
    """(database, dbt build output): the studio pulled, app data written, marts built."""
    database = new_database(template_database, "marts")
    options = PullOptions(since=NOW - timedelta(days=75))
    with (
        running_simulator(studio, rate_limit=None) as url,
        GhlClient(SIM_TOKEN, base_url=url) as client,
        database.connect(autocommit=True) as conn,
    ):
        for stream in STREAMS:
            pull_stream(conn, client, LOCATION, stream, options=options, now=NOW)
    with database.connect() as conn, conn.transaction():
        write_app_data(conn, studio)
    output = dbt_ok(database, tmp_path_factory.mktemp("dbt"), "build", variables=AS_OF)
    yield database, output
    drop_database(database)


def query(database: Database, sql: str) -> list[tuple[Any, ...]]:
    with database.connect() as conn:
        return conn.execute(sql).fetchall()


def test_dbt_build_from_the_cli_passes_with_unit_and_data_tests(
    built: tuple[Database, str],
) -> None:
    database, output = built
    summary = output.strip().splitlines()[-1]
    assert "ERROR=0" in summary and "WARN=0" in summary, summary
    unit_tests = [line for line in output.splitlines() if " PASS " in line and "::" in line]
    assert len(unit_tests) == 10, unit_tests  # every dbt unit test ran, and passed
    assert query(database, "SELECT count(*) FROM marts.bookings")[0][0] > 1000


# --- the truth, computed independently -------------------------------------------------------


def truth_outcome(appointment: dict[str, Any]) -> str:
    status = appointment["appointmentStatus"]
    if status == "cancelled":
        notice = datetime.fromisoformat(appointment["startTime"]) - datetime.fromisoformat(
            appointment["dateUpdated"]
        )
        return "late_cancelled" if notice < LATE_CANCEL else "cancelled"
    return {"showed": "showed", "noshow": "no_show", "invalid": "invalid"}.get(status, "open")


def truth_bookings(studio: Studio) -> list[dict[str, Any]]:
    tz = studio.tz
    bookings = []
    for a in studio.truth()["appointment"].values():
        if a["deleted"]:
            continue  # calendar events never list deleted ones: pulls cannot see them
        start = datetime.fromisoformat(a["startTime"])
        local = start.astimezone(tz).replace(tzinfo=None)
        bookings.append(
            {
                "id": a["id"],
                "trainer": a["assignedUserId"],
                "contact": a["contactId"],
                "outcome": truth_outcome(a),
                "end": datetime.fromisoformat(a["endTime"]),
                "local_date": local.date(),
                "week": local.date() - timedelta(days=local.weekday()),
                "month": local.date().replace(day=1),
            }
        )
    return bookings


def rate(showed: int, held: int) -> Decimal | None:
    if held == 0:
        return None
    return (Decimal(showed) / Decimal(held)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def truth_show_rates(studio: Studio, period: str, by_trainer: bool) -> list[tuple[Any, ...]]:
    counts: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    for b in truth_bookings(studio):
        if b["outcome"] == "invalid":
            continue
        outcome = b["outcome"]
        if outcome == "open":
            outcome = "unmarked" if b["end"] <= NOW else "upcoming"
        key = (b["trainer"], b[period]) if by_trainer else (b[period],)
        counts[key][outcome] += 1
    rows = []
    for key, c in counts.items():
        held = c["showed"] + c["no_show"] + c["late_cancelled"]
        rows.append(
            (*key, sum(c.values()), c["showed"], c["no_show"], c["cancelled"],
             c["late_cancelled"], c["unmarked"], c["upcoming"], rate(c["showed"], held))
        )  # fmt: skip
    return sorted(rows)


@pytest.mark.parametrize(
    ("mart", "period", "by_trainer"),
    [
        ("show_rate_by_location_weekly", "week", False),
        ("show_rate_by_location_monthly", "month", False),
        ("show_rate_by_trainer_weekly", "week", True),
        ("show_rate_by_trainer_monthly", "month", True),
    ],
)
def test_show_rate_marts_equal_the_truth(
    built: tuple[Database, str], studio: Studio, mart: str, period: str, by_trainer: bool
) -> None:
    database, _ = built
    keys = "trainer_user_id, period_start" if by_trainer else "period_start"
    rows = query(
        database,
        f"""SELECT {keys}, booked, showed, no_shows, cancelled, late_cancelled, unmarked,
                   upcoming, show_rate
            FROM marts.{mart} ORDER BY {keys}""",  # noqa: S608 - fixed names
    )
    expected = truth_show_rates(studio, period, by_trainer)
    assert rows == expected
    assert any(r[-1] is not None and r[-1] < 1 for r in rows)  # a real mix, not all shows


def test_bookings_classify_every_appointment_like_the_truth(
    built: tuple[Database, str], studio: Studio
) -> None:
    database, _ = built
    rows = query(
        database,
        "SELECT appointment_id, outcome, local_date FROM marts.bookings WHERE NOT is_deleted",
    )
    expected = {(b["id"], b["outcome"], b["local_date"]) for b in truth_bookings(studio)}
    assert set(rows) == expected
    assert {outcome for _, outcome, _ in rows} >= {"showed", "no_show", "late_cancelled"}


def truth_retention(studio: Studio) -> list[tuple[Any, ...]]:
    """Per local month from the first attended session through NOW's: active, new,
    retained, reactivated, churned, from who attended which months."""
    months: dict[date, set[str]] = defaultdict(set)
    for b in truth_bookings(studio):
        if b["outcome"] == "showed" and b["contact"]:
            months[b["month"]].add(b["contact"])
    month, last = min(months), NOW.astimezone(studio.tz).date().replace(day=1)
    seen: set[str] = set()
    rows = []
    while month <= last:
        before = months[(month - timedelta(days=1)).replace(day=1)]
        active = months[month]
        rows.append(
            (month, len(active), len(active - seen), len(active & before),
             len((active & seen) - before), len(before - active))
        )  # fmt: skip
        seen |= active
        month = (month + timedelta(days=31)).replace(day=1)
    return rows


def test_client_retention_equals_the_truth(built: tuple[Database, str], studio: Studio) -> None:
    database, _ = built
    rows = query(
        database,
        """SELECT local_month, active, new, retained, reactivated, churned
           FROM marts.client_retention ORDER BY local_month""",
    )
    assert rows == truth_retention(studio)
    assert sum(r[4] for r in rows) and sum(r[5] for r in rows)  # some came back, some left


def least_squares_slope(points: list[tuple[datetime, Decimal]]) -> float:
    """Value per day over the points, fitted by ordinary least squares."""
    xs = [at.timestamp() / 86400 for at, _ in points]
    ys = [float(v) for _, v in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def truth_goal_progress(studio: Studio) -> list[tuple[Any, ...]]:
    truth = studio.truth()
    today = NOW.astimezone(studio.tz).date()
    entries: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for e in truth["goal_entry"].values():
        at = datetime.fromisoformat(e["recorded_at"])
        if at <= NOW:
            entries[e["goal_id"]].append((at, Decimal(e["value"])))
    rows = []
    for goal in truth["goal"].values():
        baseline, target = Decimal(goal["baseline_value"]), Decimal(goal["target_value"])
        seen = sorted(entries[goal["id"]])
        latest = seen[-1][1] if seen else baseline
        progress = (latest - baseline) / (target - baseline)
        start, end = date.fromisoformat(goal["start_date"]), date.fromisoformat(goal["target_date"])
        expected = min(max(Fraction((today - start).days, (end - start).days), 0), 1)
        expected_decimal = Decimal(expected.numerator) / Decimal(expected.denominator)
        recent = [(at, v) for at, v in seen if at > NOW - timedelta(days=28)]
        if len(recent) >= 2:
            pace = least_squares_slope(recent) * 7 / float(target - baseline)
            trend = "improving" if pace > 0.01 else "regressing" if pace < -0.01 else "flat"
        else:
            trend = "insufficient_data"
        clamped = min(max(progress, Decimal(0)), Decimal(1))
        rows.append(
            (
                goal["id"],
                latest,
                len(seen),
                progress.quantize(Decimal("0.0001"), ROUND_HALF_UP),
                (100 * clamped).quantize(Decimal("0.1"), ROUND_HALF_UP),
                expected_decimal.quantize(Decimal("0.0001"), ROUND_HALF_UP),
                goal["status"] == "achieved" or progress >= expected_decimal - Decimal("0.10"),
                trend,
            )
        )
    return sorted(rows)


def test_goal_progress_equals_the_truth(built: tuple[Database, str], studio: Studio) -> None:
    database, _ = built
    rows = query(
        database,
        """SELECT goal_id::text, latest_value, entries, progress, percent_complete,
                  expected_progress, is_on_track, trend
           FROM marts.goal_progress ORDER BY 1""",
    )
    expected = truth_goal_progress(studio)
    assert [r[:7] for r in rows] == [e[:7] for e in expected]
    # The trend's slope is float arithmetic on both sides: labels may only differ at a
    # threshold, which a seeded studio does not hit.
    assert [r[7] for r in rows] == [e[7] for e in expected]
    trends = Counter(r[7] for r in rows)
    assert trends["improving"] and trends["flat"] and trends["regressing"], trends
    on_track = Counter(r[6] for r in rows)
    assert on_track[True] and on_track[False]


# --- replay invariance and incremental runs --------------------------------------------------

MARTS = (
    "marts.bookings",
    "marts.messages",
    "marts.goal_progress",
    "marts.client_activity",
    "marts.message_metrics",
    "marts.show_rate_by_location_weekly",
    "marts.show_rate_by_location_monthly",
    "marts.show_rate_by_trainer_weekly",
    "marts.show_rate_by_trainer_monthly",
    "marts.message_funnel",
    "marts.client_retention",
    "marts.risk_bands_daily",
    "intermediate.int_bookings__daily",
    "intermediate.int_attendance__monthly",
)
# When a row reached us or was last rebuilt, and the app's own surrogate ids, which each
# database draws at random (natural keys stay in).
NOT_COMPARED = ("landed_at", "changed_at", "counted_through", "counted_as_of", "client_id",
                "trainer_id")  # fmt: skip


def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every mart's rows (and the daily rollup's), sorted, without NOT_COMPARED."""
    tables = {}
    with database.connect() as conn:
        for table in MARTS:
            schema, name = table.split(".")
            columns = [
                row[0]
                for row in conn.execute(
                    """SELECT column_name FROM information_schema.columns
                       WHERE table_schema = %s AND table_name = %s
                         AND column_name <> ALL(%s)
                       ORDER BY ordinal_position""",
                    (schema, name, list(NOT_COMPARED)),
                )
            ]
            select = ", ".join(columns)
            tables[table] = conn.execute(
                f"SELECT {select} FROM {table} ORDER BY {select}"  # noqa: S608 - catalog names
            ).fetchall()
    return tables


@pytest.fixture(scope="module")
def replay_studio() -> tuple[Studio, list[Change], list[Change]]:
    """A small studio; its generated history; the changes of the next two weeks."""
    studio = generate_studio("loc-replay", trainers=2, clients=40, days=35, seed=5, now=NOW)
    created = creation_changes(studio)
    later = studio.advance(random.Random(5), NOW + timedelta(days=14), events=150)
    return studio, created, list(later)


def test_replaying_every_webhook_twice_shuffled_leaves_every_mart_identical(
    template_database: Database, replay_studio: tuple[Studio, list[Change], list[Change]],
    tmp_path: Path,
) -> None:  # fmt: skip
    studio, created, later = replay_studio
    payloads = webhooks_for(studio, created + later)
    assert len(later) > 100 and {c.event_type for c in later} >= {"AppointmentUpdate"}
    replayed = [
        {**payload, "webhookId": f"{payload['webhookId']}-{copy}"}
        for copy in ("a", "b")
        for payload in payloads
    ]
    random.Random(7).shuffle(replayed)
    marts = []
    for label, stream in (("in-order", payloads), ("replayed", replayed)):
        database = new_database(template_database, f"replay-{label}")
        try:
            land_and_process(database, stream)
            with database.connect() as conn, conn.transaction():
                write_app_data(conn, studio)
            dbt_ok(database, tmp_path / label, "build", variables=AS_OF)
            marts.append(snapshot(database))
        finally:
            drop_database(database)
    in_order, replayed_marts = marts
    assert sum(len(rows) for rows in in_order.values()) > 500
    assert replayed_marts == in_order


def test_an_incremental_run_after_late_updates_equals_a_full_refresh(
    template_database: Database, tmp_path: Path
) -> None:
    studio = generate_studio("loc-incr", trainers=2, clients=40, days=35, seed=8, now=NOW)
    database = new_database(template_database, "incremental")
    try:
        land_and_process(database, webhooks_for(studio, creation_changes(studio)))
        with database.connect() as conn, conn.transaction():
            write_app_data(conn, studio)
        dbt_ok(database, tmp_path / "first", "build", variables=AS_OF)
        before = snapshot(database)
        # Two weeks later: sessions marked, cancellations, moves and deletes of old bookings;
        # and sessions nobody marked have turned from upcoming to unmarked.
        later_at = NOW + timedelta(days=14)
        later = studio.advance(random.Random(9), later_at, events=120)
        late = webhooks_for(studio, list(later))
        land_and_process(database, [{**p, "webhookId": f"late-{p['webhookId']}"} for p in late])
        as_of_later = {"as_of": later_at.isoformat()}
        dbt_ok(database, tmp_path / "incremental", "build", variables=as_of_later)
        incremental = snapshot(database)
        every_row = {**as_of_later, "recent_rows_hours": None}
        dbt_ok(database, tmp_path / "full", "build", "--full-refresh", variables=every_row)
        assert incremental == snapshot(database)
        assert incremental["marts.bookings"] != before["marts.bookings"]
        moved = query(database, "SELECT count(*) FROM marts.bookings WHERE was_rescheduled")
        assert moved[0][0] > 0
    finally:
        drop_database(database)


# --- what a routine run reads ---------------------------------------------------------------


def booking(appointment: str, start: datetime, at: datetime, **columns: Any) -> EntityChange:
    """An appointment change as the one apply path receives it from webhooks and pulls."""
    values = {"contact_id": "c-1", "assigned_user_id": "u-1", "status": "confirmed",
              "start_time": start, "end_time": start + timedelta(hours=1), **columns}  # fmt: skip
    return EntityChange("appointment", "loc-days", appointment, at, False, values, {})


def test_the_daily_rollup_recounts_the_day_a_booking_left(
    template_database: Database, tmp_path: Path
) -> None:
    """A day whose only booking moves away must disappear from the incremental rollup,
    not keep its old count."""
    monday, thursday = datetime(2026, 11, 9, 9, tzinfo=UTC), datetime(2026, 11, 12, 9, tzinfo=UTC)
    database = new_database(template_database, "rollup-days")
    rollup = """SELECT local_date, booked, showed FROM intermediate.int_bookings__daily
                ORDER BY local_date"""
    try:
        with database.connect() as conn, conn.transaction():
            conn.execute("INSERT INTO app.locations (location_id, name, timezone)"
                         " VALUES ('loc-days', 'Days', 'UTC')")  # fmt: skip
            apply_changes(conn, [booking("a-1", monday, NOW, status="showed"),
                                 booking("a-2", thursday, NOW)], source="webhook")  # fmt: skip
        dbt_ok(database, tmp_path / "first", "build", variables=AS_OF)
        assert query(database, rollup) == [(monday.date(), 1, 1), (thursday.date(), 1, 0)]

        with database.connect() as conn, conn.transaction():  # Monday's session moves to Friday
            friday = monday + timedelta(days=4)
            later = NOW + timedelta(minutes=5)
            apply_changes(conn, [booking("a-1", friday, later, status="showed")], source="webhook")
        dbt_ok(database, tmp_path / "incremental", "build", variables=AS_OF)
        assert query(database, rollup) == [(thursday.date(), 1, 0), (friday.date(), 1, 1)]
        moved = "SELECT was_rescheduled FROM marts.bookings WHERE appointment_id = 'a-1'"
        assert query(database, moved) == [(True,)]
    finally:
        drop_database(database)


def score(conn: Any, client: Any, at: datetime, band: str) -> None:  # noqa: ANN401
    conn.execute(
        """INSERT INTO app.insights (location_id, client_id, scored_at, risk_score, risk_band,
                                     reasons, model_version)
           VALUES ('loc-risk', %s, %s, 0.5, %s, '[]', 'test')""",
        (client, at, band),
    )


def test_risk_bands_recount_the_recent_days_incrementally_like_a_full_refresh(
    template_database: Database, tmp_path: Path
) -> None:
    """Later scores (a re-score late in a local day, the next day's) recount their days
    in place; older days keep their counts; the result is a full refresh's."""
    database = new_database(template_database, "risk-bands")
    bands = "SELECT local_date, risk_band, clients FROM marts.risk_bands_daily ORDER BY 1, 2"
    build = ("build", "--select", "+risk_bands_daily", "--indirect-selection", "buildable")
    day = timedelta(days=1)
    try:
        with database.connect() as conn:
            conn.execute("INSERT INTO app.locations (location_id, name, timezone)"
                         " VALUES ('loc-risk', 'Risk', 'America/New_York')")  # fmt: skip
            clients = [
                conn.execute(
                    """INSERT INTO app.clients (location_id, ghl_contact_id, name)
                       VALUES ('loc-risk', %s, %s) RETURNING id""",
                    (f"c-{n}", f"Client {n}"),
                ).fetchone()[0]
                for n in range(3)
            ]
            score(conn, clients[0], NOW - 5 * day, "low")
            score(conn, clients[1], NOW - 2 * day, "high")
            score(conn, clients[2], NOW - day - timedelta(hours=1), "low")
            score(conn, clients[0], NOW - day, "medium")
        dbt_ok(database, tmp_path / "first", *build, variables=AS_OF)
        oid = "SELECT 'marts.risk_bands_daily'::regclass::oid"
        first_oid = query(database, oid)
        with database.connect() as conn:
            score(conn, clients[0], NOW - day + timedelta(hours=12), "high")  # 22:00 local
            score(conn, clients[2], NOW, "low")
            score(conn, clients[1], NOW, "medium")
        dbt_ok(database, tmp_path / "incremental", *build, variables=AS_OF)
        incremental = query(database, bands)
        assert query(database, oid) == first_oid  # merged in place
        assert incremental == [
            (date(2026, 11, 15), "low", 1),
            (date(2026, 11, 18), "high", 1),
            (date(2026, 11, 19), "high", 1),  # c0's last score that day, not medium
            (date(2026, 11, 19), "low", 1),  # the day recounted whole: c2 is still in it
            (date(2026, 11, 20), "low", 1),
            (date(2026, 11, 20), "medium", 1),
        ]
        dbt_ok(database, tmp_path / "full", *build, "--full-refresh", variables=AS_OF)
        assert query(database, bands) == incremental
    finally:
        drop_database(database)


def test_routine_runs_test_only_recently_loaded_rows_and_the_nightly_every_row(
    template_database: Database, tmp_path: Path
) -> None:
    database = new_database(template_database, "recent-rows")
    bad_status = "INSERT INTO raw.ghl_appointments (location_id, appointment_id, status," \
                 " source_updated_at, payload, source, landed_at)" \
                 " VALUES ('loc-x', %s, %s, now(), '{}', 'pull', %s)"  # fmt: skip
    source_tests = ("test", "--select", "source:raw.ghl_appointments")
    every_row = {"recent_rows_hours": None}
    try:
        with database.connect() as conn, conn.transaction():
            conn.execute(bad_status, ("old", "postponed", datetime.now(UTC) - timedelta(days=3)))
        assert dbt(database, tmp_path / "routine", *source_tests).returncode == 0
        nightly = dbt(database, tmp_path / "nightly", *source_tests, variables=every_row)
        assert nightly.returncode == 1 and "accepted_values" in nightly.stdout

        with database.connect() as conn, conn.transaction():
            conn.execute(bad_status, ("new", "pending", datetime.now(UTC)))
        routine = dbt(database, tmp_path / "routine-again", *source_tests)
        assert routine.returncode == 1 and "Got 1 result" in routine.stdout  # 'pending' only
        nightly = dbt(database, tmp_path / "nightly-again", *source_tests, variables=every_row)
        assert "Got 2 results" in nightly.stdout
    finally:
        drop_database(database)
