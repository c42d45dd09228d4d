"""Pull throughput against GHL's rate limit, and records/s into Postgres.

Starts an embedded Postgres (temporary) and, in its own process as GHL would be, the GHL
simulator (`ghl-simulator`) with GHL's real limits (100 requests per 10 s per location)
and a large generated studio, then runs a full backfill of every stream with the
production client and reports:
- sustained requests/s as a share of the 10 requests/s ceiling, measured over whole 10 s
  windows after the first one (the first 10 s may legitimately burst 100 requests);
- 429s the simulator had to answer (the client's own budget should make this 0);
- records/s landed in Postgres through the shared last-write-wins path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.support import save_results, start_database, stop_database
from tests.receiver_harness import free_port
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.messaging.inbound import record_pulled

CEILING = 100 / 10.0  # requests per second
LOCATION = "bench-location"
TOKEN = "bench-token"  # noqa: S105 - the local simulator's token


@contextmanager
def simulator_process(args: argparse.Namespace, state_dir: Path) -> Iterator[str]:
    """`ghl-simulator` with no live activity; yields its URL once the studio is served."""
    port = free_port()
    options = {"location": LOCATION, "trainers": 8, "clients": args.clients, "days": args.days,
               "seed": args.seed, "port": port, "events-per-minute": 0}  # fmt: skip
    simulator = Path(sys.executable).with_name("ghl-simulator")
    command = [str(simulator), *(f"--{k}={v}" for k, v in options.items())]
    env = {**os.environ, "TRAINU_GHL_TOKEN": TOKEN, "TRAINU_STATE_DIR": str(state_dir)}
    log_file = (state_dir / "simulator.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the simulator exited with {process.returncode}")
            try:
                httpx.get(url + "/_sim/stats").raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def sample_requests(url: str, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    with httpx.Client() as http:
        while not stop.is_set():
            samples.append((time.monotonic(), http.get(url + "/_sim/stats").json()["total"]))
            stop.wait(1.0)


def requests_at(samples: list[tuple[float, int]], moment: float) -> float:
    """Requests served by `moment`, interpolated between the 1 s samples."""
    for (ta, na), (tb, nb) in zip(samples, samples[1:], strict=False):
        if ta <= moment <= tb:
            return na + (nb - na) * (moment - ta) / (tb - ta)
    raise ValueError("moment outside the sampled run")


def sustained_rate(samples: list[tuple[float, int]], started: float) -> float:
    """Requests/s over whole 10 s windows after the first one. GHL's limit holds for any
    10 s window, so only a span of whole windows can be compared with the ceiling: a
    shorter or ragged span may legitimately contain more than 10 requests per second."""
    t0 = started + 10.0
    windows = int((samples[-1][0] - t0) // 10.0)
    if windows < 1:
        raise SystemExit("the pull ended within two windows: use a larger --clients")
    t1 = t0 + 10.0 * windows
    return (requests_at(samples, t1) - requests_at(samples, t0)) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    database, work = start_database("pulls")
    now = datetime.now(UTC)
    print(f"generating a studio with {args.clients} clients, {args.days} days...", flush=True)
    options = PullOptions(since=now - timedelta(days=args.days))
    results: dict[str, object] = {"started": now.isoformat(), "clients": args.clients}
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    with simulator_process(args, work) as url:
        sampler = threading.Thread(target=sample_requests, args=(url, samples, stop))
        with (
            GhlClient(TOKEN, base_url=url) as client,
            database.connect(autocommit=True) as conn,
        ):
            started = time.monotonic()
            sampler.start()
            records = {}
            for stream in STREAMS:
                began = time.monotonic()
                result = pull_stream(conn, client, LOCATION, stream, options=options,
                                     on_messages=record_pulled)  # fmt: skip
                records[stream] = result.records
                print(
                    f"  {stream:14} {result.records:>8} records in {result.pages:>4} pages, "
                    f"{time.monotonic() - began:5.1f} s",
                    flush=True,
                )
            elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        stats = httpx.get(url + "/_sim/stats").json()
    stop_database(work)

    sustained = sustained_rate(samples, started)
    total_records = sum(records.values())
    results |= {
        "elapsed_s": round(elapsed, 1),
        "requests": stats["total"],
        "rate_limited_429": stats["rateLimited"],
        "failed": stats["failed"],
        "sustained_requests_per_s": round(sustained, 2),
        "share_of_ceiling": round(sustained / CEILING, 3),
        "records": records,
        "records_per_s": round(total_records / elapsed, 1),
    }
    out = save_results("pulls", results)
    print(
        f"requests   {stats['total']} in {elapsed:.1f} s; sustained {sustained:.2f}/s = "
        f"{sustained / CEILING:.1%} of the 100 per 10 s ceiling; 429s {stats['rateLimited']}; "
        f"failed {stats['failed']}"
    )
    print(f"records    {total_records} = {total_records / elapsed:.0f} records/s into Postgres")
    print(f"results    {out}")


if __name__ == "__main__":
    main()
