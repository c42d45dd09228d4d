"""A send run killed outright (SIGKILL: no exception, no cleanup, its connections cut) at
one step of the send, for the outbox's crash tests:

    python -m tests.killed_send_run DATABASE_URL SIM_URL STEP NTH LEASE_SECONDS

It drains the outbox as a send run does and kills itself the NTH time a message reaches
STEP (`outbox.checkpoint`'s names); if fewer messages reach it, it ends normally.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from uuid import UUID

import psycopg

from tests.ghl_simulator_harness import SIM_TOKEN
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.messaging import outbox


def main() -> None:
    database_url, sim_url, step, nth, lease = sys.argv[1:6]
    reached = 0

    def die_at(at: str, message_id: UUID) -> None:
        nonlocal reached
        if at == step:
            reached += 1
            if reached == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)

    outbox.checkpoint = die_at
    budget = RequestBudget(requests=1_000_000, window=1.0)
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        GhlClient(SIM_TOKEN, base_url=sim_url, budget=budget) as client,
    ):
        outbox.drain(conn, client, run_id=f"killed-at-{step}", cap=500,
                     approval_expiry=timedelta(hours=48),
                     lease=timedelta(seconds=float(lease)))  # fmt: skip


if __name__ == "__main__":
    main()
