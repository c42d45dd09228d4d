"""A long-lived run in its own process, for the shutdown tests: the test tells it to
stop (SIGTERM, as `trainu up`'s Ctrl-C and Kubernetes do) while it waits for work.

    python -m tests.stopped_run ingest|send DATABASE_URL GHL_URL

Left alone it would serve for two minutes; it prints `success=True|False` when its run
is over.
"""

from __future__ import annotations

import sys

from tests.job_harness import ingest_job, send_job
from trainu_dagster.db.server import connect_database
from trainu_dagster.settings import Settings


def main() -> None:
    job, database_url, ghl_url = sys.argv[1:4]
    database = connect_database(Settings(database_url=database_url), start_embedded=False)
    if job == "send":
        result = send_job(database, ghl_url, idle_seconds=120.0, max_seconds=120.0)
    else:
        result = ingest_job(database, idle_seconds=120.0, max_seconds=120.0)
    print(f"success={result.success}", flush=True)


if __name__ == "__main__":
    main()
