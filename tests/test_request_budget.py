"""GHL's request budget shared through Postgres: clients in different processes (each with
its own budget object and connections) keep one location under GHL's limit together, as
the simulator's own limiter sees it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import psycopg
import pytest

from ghl_simulator import generate_studio
from ghl_simulator.ratelimit import RateLimit
from ghl_simulator.studio import Studio
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from trainu_dagster.connections.request_budget import PostgresRequestBudget
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.errors import DailyLimitReached, GhlError
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource

# GHL's limit scaled down (100 per 10 s there): the same rule, a test that takes seconds.
LIMIT = RateLimit(10, 1.0, daily=200_000)
Budgets = Callable[..., PostgresRequestBudget]


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio("loc-budget", trainers=1, clients=10, days=3, seed=5)


@pytest.fixture
def budgets(database: Database) -> Iterator[Callable[..., PostgresRequestBudget]]:
    """Budgets as separate processes would hold them: no state shared but the database."""
    made: list[PostgresRequestBudget] = []

    def make(**options: float) -> PostgresRequestBudget:
        budget = PostgresRequestBudget(lambda: database.connect(autocommit=True), **options)
        made.append(budget)
        return budget

    yield make
    for budget in made:
        budget.close()
    with database.connect() as conn:
        conn.execute("TRUNCATE ops.ghl_requests, ops.ghl_request_budget")


def hammer(clients: list[GhlClient], location_id: str, each: int) -> list[Exception]:
    """Every client at once, `each` requests apiece, as fast as its budget lets it."""
    errors: list[Exception] = []

    def run(client: GhlClient) -> None:
        for _ in range(each):
            try:
                client.pipelines(location_id)
            except GhlError as error:
                errors.append(error)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_clients_with_shared_budgets_never_exceed_the_limit_together(
    studio: Studio, budgets: Budgets
) -> None:
    with running_simulator(studio, rate_limit=LIMIT) as url, ExitStack() as stack:
        # no retries: a 429 would surface as an error instead of being waited out
        clients = [
            stack.enter_context(GhlClient(SIM_TOKEN, base_url=url, max_attempts=1,
                                          budget=budgets(requests=10, window=1.0)))
            for _ in range(2)
        ]  # fmt: skip
        started = time.monotonic()
        errors = hammer(clients, studio.location_id, each=30)
        elapsed = time.monotonic() - started
        stats = httpx.get(url + "/_sim/stats").json()
    assert errors == []
    assert (stats["total"], stats["rateLimited"]) == (60, 0)
    assert elapsed >= 5.0  # 60 requests at 10 per second: they really were paced together


def test_two_budgets_of_their_own_would_exceed_it(studio: Studio) -> None:
    """The control: the same two clients, each with a budget of its own (what separate
    processes had before), are refused by GHL."""
    with running_simulator(studio, rate_limit=LIMIT) as url, ExitStack() as stack:
        clients = [
            stack.enter_context(GhlClient(SIM_TOKEN, base_url=url, max_attempts=1,
                                          budget=RequestBudget(requests=10, window=1.0)))
            for _ in range(2)
        ]  # fmt: skip
        errors = hammer(clients, studio.location_id, each=30)
        stats = httpx.get(url + "/_sim/stats").json()
    assert stats["rateLimited"] > 0
    assert len(errors) == stats["rateLimited"]


def test_a_request_holds_its_slot_while_in_flight_and_counts_from_its_answer(
    budgets: Budgets,
) -> None:
    first, second = budgets(requests=1, window=0.5), budgets(requests=1, window=0.5)
    took: list[float] = []

    def other_process() -> None:
        with second.slot("loc"):
            took.append(time.monotonic())

    with first.slot("loc"):
        waiting = threading.Thread(target=other_process)
        waiting.start()
        time.sleep(0.3)  # the request is in flight: its slot is taken however long it takes
        assert took == []
    answered = time.monotonic()
    waiting.join()
    assert took[0] - answered >= 0.5 - 0.02  # the window runs from the answer
    with second.slot("another-location"):  # budgets are per location
        pass


def test_the_daily_quota_is_shared_too(budgets: Budgets) -> None:
    first, second = budgets(daily=3), budgets(daily=3)
    for budget in (first, second, first):
        with budget.slot("loc"):
            pass
    for budget in (first, second):
        with pytest.raises(DailyLimitReached, match="daily limit"), budget.slot("loc"):
            pass
    first.exhaust_day("loc-2")  # GHL said the day is gone: every process stops asking
    with pytest.raises(DailyLimitReached), second.slot("loc-2"):
        pass
    with second.slot("loc-3"):
        pass


def test_a_slot_left_in_flight_by_a_dead_process_frees_itself(
    database: Database, budgets: Budgets
) -> None:
    with database.connect() as conn:  # a process took the slot, then died mid-request
        conn.execute("INSERT INTO ops.ghl_requests (location_id, holder) VALUES ('loc', 'dead')")
    survivor = budgets(requests=1, window=0.2, abandoned_after=0.6)
    started = time.monotonic()
    with survivor.slot("loc"):
        waited = time.monotonic() - started
    assert 0.4 <= waited < 3.0
    with database.connect() as conn:
        holders = conn.execute("SELECT holder FROM ops.ghl_requests").fetchall()
    assert [h for (h,) in holders if h == "dead"] == []  # swept once out of every window


def test_the_app_role_cannot_read_the_budget(database: Database) -> None:
    with database.connect(role=APP_ROLE) as conn:
        for table in ("ops.ghl_requests", "ops.ghl_request_budget"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            conn.rollback()


def test_the_resource_gives_the_pipelines_the_shared_budget(
    database: Database, studio: Studio
) -> None:
    with running_simulator(studio, rate_limit=LIMIT) as url:
        resource = GhlResource(base_url=url, token=SIM_TOKEN)
        with resource.client(PostgresResource(database_url=database.url())) as client:
            assert isinstance(client.budget, PostgresRequestBudget)
            client.pipelines(studio.location_id)
        with resource.client() as client:  # no database (the CLI, tests): its own
            assert isinstance(client.budget, RequestBudget)
    with database.connect() as conn:
        logged = conn.execute(
            "SELECT count(*), count(answered_at) FROM ops.ghl_requests WHERE location_id = %s",
            (studio.location_id,),
        ).fetchone()
        conn.execute("TRUNCATE ops.ghl_requests, ops.ghl_request_budget")
    assert logged == (1, 1)
