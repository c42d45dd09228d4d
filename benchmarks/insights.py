"""Risk scoring at scale, and the backtest against the studios' baselines.

1. `scoring`: 100,000 clients end to end through `insights.history.score_clients`: their
   features read from a `marts.client_activity` of that size, scored, and today's history
   rows written to `app.insights` (goal ≤ 5 s).
2. `backtest`: for each of several simulator seeds, a studio's whole history landed the
   way TrainU lands it (REST pulls from the simulator), marts built by the real dbt, then
   the backtest: AUC and precision/recall at the top 10%, the score against "no visit in
   10 days" and days since the last visit.

    make bench-insights      # or: uv run python benchmarks/insights.py --help
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.support import save_results, start_database, stop_database
from ghl_simulator import create_simulator_app, generate_studio, write_app_data
from tests.dbt_harness import dbt_ok
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.insights.backtest import backtest
from trainu_dagster.insights.features import load_history
from trainu_dagster.insights.history import score_clients
from trainu_dagster.risk_config import RiskConfig

# A client_activity of `n` clients with varied, plausible features (deterministic).
SYNTHETIC_ACTIVITY = [
    """INSERT INTO app.locations (location_id, name, timezone)
       VALUES ('bench', 'Bench studio', 'America/New_York')""",
    """INSERT INTO app.clients (id, location_id, ghl_contact_id, name)
       SELECT md5('client' || n)::uuid, 'bench', 'contact-' || n, 'Client ' || n
       FROM generate_series(1, %(n)s) AS n""",
    "CREATE SCHEMA marts",
    """CREATE TABLE marts.client_activity AS
SELECT md5('client' || n)::uuid AS client_id, 'bench'::text AS location_id,
       'contact-' || n AS contact_id, n %% 50 = 0 AS is_opted_out,
       CASE WHEN n %% 17 = 0 THEN NULL ELSE (n * 7) %% 60 END AS days_since_last_attended,
       CASE WHEN n %% 5 = 0 THEN NULL ELSE 3 + (n %% 11) END::numeric AS usual_gap_days,
       (n %% 9) AS attended_last_28d, ((n * 3) %% 9) AS attended_prior_28d,
       (n %% 4) AS no_shows_last_28d, (n %% 3) AS late_cancellations_last_28d,
       CASE WHEN n %% 3 = 0 THEN NULL ELSE now() + interval '2 days' END AS next_booking_at,
       n %% 7 = 0 AS has_stalled_goal
FROM generate_series(1, %(n)s) AS n""",
]


def bench_scoring(clients: int) -> dict[str, object]:
    database, work = start_database("insights")
    try:
        with database.connect() as conn:
            for statement in SYNTHETIC_ACTIVITY:
                conn.execute(statement, {"n": clients} if "%(n)s" in statement else None)
            conn.commit()
            started = time.perf_counter()
            run = score_clients(conn, RiskConfig(), as_of=datetime.now(UTC))
            conn.commit()
            elapsed = time.perf_counter() - started
            again = time.perf_counter()
            score_clients(conn, RiskConfig(), as_of=datetime.now(UTC))  # the same day: nothing
            conn.commit()
            rerun = time.perf_counter() - again
    finally:
        stop_database(work)
    print(f"scoring: {run.scored} clients, {run.written} written in {elapsed:.2f} s "
          f"(re-run the same day {rerun:.2f} s); bands {dict(run.bands)}", flush=True)  # fmt: skip
    return {"clients": run.scored, "written": run.written, "seconds": round(elapsed, 2),
            "rerun_same_day_seconds": round(rerun, 2), "bands": dict(run.bands)}  # fmt: skip


def studio_marts(database: Database, seed: int, clients: int, days: int, now: datetime) -> None:
    """The seed's studio pulled through the real client, app data written, marts built."""
    from tests.receiver_harness import serving  # noqa: PLC0415 - the test harness's server

    studio = generate_studio(f"seed-{seed}", trainers=5, clients=clients, days=days,
                             seed=seed, now=now)  # fmt: skip
    options = PullOptions(since=now - timedelta(days=days + 30))
    with (
        serving(create_simulator_app(studio, tokens={"bench": studio.location_id},
                                     rate_limit=None)) as url,
        GhlClient("bench", base_url=url, budget=RequestBudget(requests=10**6)) as client,
        database.connect(autocommit=True) as conn,
    ):  # fmt: skip
        for stream in STREAMS:
            pull_stream(conn, client, studio.location_id, stream, options=options, now=now)
    with database.connect() as conn, conn.transaction():
        write_app_data(conn, studio)
    work = Path(tempfile.mkdtemp(prefix="trainu-bench-dbt-"))
    dbt_ok(database, work, "build", "--exclude-resource-type", "unit_test",
           variables={"as_of": now.isoformat()})  # fmt: skip


def bench_backtest(seeds: list[int], clients: int, days: int, backtest_days: int) -> list[dict]:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for seed in seeds:
        database, work = start_database(f"backtest-{seed}")
        try:
            studio_marts(database, seed, clients, days, now)
            with database.connect() as conn:
                history = load_history(conn)
            result = backtest(history, RiskConfig(), days=backtest_days, until=pd.Timestamp(now))
        finally:
            stop_database(work)
        print(f"seed {seed}: {result.days} days, {result.pairs} client-days, "
              f"{result.positives} slipped", flush=True)  # fmt: skip
        print(pd.DataFrame(result.table()).to_string(index=False), flush=True)
        rows.append({"seed": seed, "days": result.days, "pairs": result.pairs,
                     "positives": result.positives, "table": result.table()})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100_000, help="for the scoring benchmark")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--studio-clients", type=int, default=400)
    parser.add_argument("--studio-days", type=int, default=240)
    parser.add_argument("--backtest-days", type=int, default=90)
    args = parser.parse_args()
    results: dict[str, object] = {"scoring": bench_scoring(args.clients)}
    if args.seeds:
        results["backtest"] = bench_backtest(args.seeds, args.studio_clients, args.studio_days,
                                             args.backtest_days)  # fmt: skip
    print(f"results {save_results('insights', results)}")


if __name__ == "__main__":
    main()
