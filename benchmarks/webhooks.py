"""Webhook ingestion benchmark: signed, durable, idempotent deliveries per second.

Runs, on this machine and in one go: a Starlette hello world and the real receiver
(uvicorn + Starlette + Ed25519 + group commit into an embedded Postgres) under the same
uvicorn settings, each first at a fixed rate for latency percentiles, then flooded by wrk
with the same connection count; the pair `--rounds` times, each phase with the machine's
load average, since other work on the same cores moves every figure. Finally every
acknowledged delivery is checked to be in the database.

    make bench-webhooks            # or: uv run python benchmarks/webhooks.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx
import orjson
import psutil
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.support import save_results, start_database, stop_database
from ghl_simulator.webhooks import public_pem
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.signatures import sign_ed25519

HERE = Path(__file__).resolve().parent
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
    "--host",
    "127.0.0.1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen([*UVICORN, "--port", str(port), *args], env=env, cwd=HERE.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server {args} did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def signed_deliveries(key: Ed25519PrivateKey, count: int, tag: str) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    out = []
    for i in range(count):
        body = orjson.dumps(
            {
                "type": "AppointmentUpdate",
                "locationId": "bench-location",
                "webhookId": str(uuid.uuid4()),
                "timestamp": now,
                "appointment": {
                    "id": f"{tag}-{i}",
                    "calendarId": "cal-1",
                    "contactId": f"contact-{i % 5000}",
                    "appointmentStatus": "confirmed",
                    "assignedUserId": "user-1",
                    "startTime": "2026-12-01T10:00:00+00:00",
                    "endTime": "2026-12-01T11:00:00+00:00",
                    "dateUpdated": now,
                },
            }
        )
        out.append((sign_ed25519(body, key), body))
    return out


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the servers under test and by Postgres (where the cores go)."""
    totals = {"server": 0.0, "postgres": 0.0}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        if proc.info["name"] == "postgres":
            totals["postgres"] += times.user + times.system
        elif "uvicorn" in " ".join(proc.info["cmdline"] or []):
            totals["server"] += times.user + times.system
    return totals


def run_wrk(base: str, data: Path, *, connections: int, seconds: int, stride: int) -> dict:
    before = cpu_seconds()
    output = subprocess.run(
        [
            "wrk",
            f"-t{stride}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / "wrk_deliveries.lua"),
            base,
            "--",
            str(data),
            str(stride),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = cpu_seconds()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "requests_per_second": rps,
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "cores_used": {k: round((after[k] - before[k]) / seconds, 2) for k in after},
    }


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the fixed-rate client: a request at a time, its
    response read straight off the socket (no stream reader per line: the client's own CPU
    competes with the server's on a 2-core machine)."""

    def __init__(self, finished: Callable[[_Connection, int], None]) -> None:
        self._finished = finished
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self._buffer[: head_end + 2]).lower()  # each header line ends in CRLF
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
        if len(self._buffer) < head_end + 4 + length:
            return
        del self._buffer[: head_end + 4 + length]
        self._finished(self, int(head[9:12]))


async def open_loop(
    base: str, deliveries: list[tuple[str, bytes]], rate: int, connections: int
) -> dict:
    """Send at a fixed rate; latency is measured from each request's scheduled time, so a
    request that waits for a free connection is late by that wait too.

    Requests are encoded before the clock starts, and the client's own garbage collector is
    paused meanwhile: this process holds the signed deliveries, and a full collection here
    would be booked as the server's latency.
    """
    host, port = base.removeprefix("http://").split(":")
    requests = [
        b"POST /webhooks/ghl HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"x-ghl-signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
        for sig, body in deliveries
    ]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent_at: dict[_Connection, float] = {}
    idle: deque[_Connection] = deque()
    waiting: deque[tuple[float, bytes]] = deque()
    all_done = loop.create_future()

    def send(connection: _Connection, scheduled: float, request: bytes) -> None:
        sent_at[connection] = scheduled
        assert connection.transport is not None
        connection.transport.write(request)

    def finished(connection: _Connection, status: int) -> None:
        latencies.append((time.perf_counter() - sent_at.pop(connection)) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        if waiting:
            send(connection, *waiting.popleft())
        else:
            idle.append(connection)
        if len(latencies) == len(requests) and not all_done.done():
            all_done.set_result(None)

    for _ in range(connections):
        _, connection = await loop.create_connection(lambda: _Connection(finished), host, port)
        idle.append(connection)

    gc.collect()
    gc.disable()
    start = time.perf_counter()
    for i, request in enumerate(requests):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            send(idle.popleft(), scheduled, request)
        else:
            waiting.append((scheduled, request))
    await all_done
    elapsed = time.perf_counter() - start
    gc.enable()
    for connection in idle:
        assert connection.transport is not None
        connection.transport.close()
    latencies.sort()
    return {
        "rate": rate,
        "requests": len(latencies),
        "achieved_rps": len(latencies) / elapsed,
        "statuses": statuses,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def disk_flushes(directory: Path, seconds: float = 3.0) -> dict:
    """How long this disk takes to make an 8 kB write durable (`fdatasync`, as Postgres
    flushes its WAL), just before a server is measured: no durable answer comes faster,
    and on a shared machine other work's writes slow it down too."""
    times = []
    fd = os.open(directory / "flush-probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            os.pwrite(fd, os.urandom(8192), 0)
            os.fdatasync(fd)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        os.close(fd)
        (directory / "flush-probe").unlink()
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}


def settle(database: Database) -> None:
    """Postgres done with the previous flood: its rows vacuumed and on disk. Otherwise the
    next fixed-rate phase measures the WAL flushes queued behind the checkpoint's writes of
    the tens of thousands of rows wrk just landed, not the receiver's steady state."""
    with database.connect(autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) raw.webhook_events")
        conn.execute("CHECKPOINT")


def measure(
    args: argparse.Namespace,
    server_args: list[str],
    env: dict[str, str],
    data: Path,
    latency_set: list[tuple[str, bytes]],
    database: Database,
) -> dict:
    """One server: the fixed-rate latency run first (steady state), then the wrk flood,
    with the machine's load average as the phase began (other work shares the cores)."""
    with server(server_args, env, free_port()) as base:
        settle(database)
        flushes = disk_flushes(data.parent)
        load = os.getloadavg()[0]
        fixed = uvloop.run(open_loop(base, latency_set, args.rate, 32))
        flood = run_wrk(base, data, connections=args.connections, seconds=args.seconds, stride=1)
    return {"load_1min": round(load, 2), "disk_flush": flushes, "fixed_rate": fixed, "wrk": flood}


def measure_rounds(args: argparse.Namespace, database: Database, work: Path) -> tuple[list, int]:
    """Every round, side by side; and the rows stored at the end."""
    key = Ed25519PrivateKey.generate()
    env = {
        **os.environ,
        "TRAINU_DATABASE_URL": database.url(),
        "TRAINU_STATE_DIR": str(work),
        "TRAINU_WEBHOOK_ED25519_PUBLIC_KEY": public_pem(key),
        "TRAINU_WEBHOOK_RATE_LIMIT_PER_MINUTE": "100000000",
        # wrk's bodies are signed once, up front: still fresh in the last round
        "TRAINU_WEBHOOK_REPLAY_WINDOW_SECONDS": "86400",
    }
    print(f"signing {args.deliveries} deliveries...", flush=True)
    data = work / "deliveries.tsv"
    with data.open("wb") as out:
        for sig, body in signed_deliveries(key, args.deliveries, "wrk"):
            out.write(sig.encode() + b"\t" + body + b"\n")

    hello_env = {**env, "PYTHONPATH": str(HERE)}
    hello_args = ["hello_world:app", "--app-dir", str(HERE), "--workers", str(args.workers)]
    receiver_args = [
        "trainu_dagster.ingest.receiver:create_app",
        "--factory",
        "--workers",
        str(args.workers),
    ]
    rounds = []
    for n in range(1, args.rounds + 1):
        latency_set = signed_deliveries(key, args.rate * args.latency_seconds, f"rate{n}")
        print(f"round {n}: hello world, then the receiver...", flush=True)
        hello = measure(args, hello_args, hello_env, data, latency_set, database)
        receiver = measure(args, receiver_args, env, data, latency_set, database)
        ratio = receiver["wrk"]["requests_per_second"] / hello["wrk"]["requests_per_second"]
        rounds.append({"hello_world": hello, "receiver": receiver, "ratio": round(ratio, 3)})
        for name, r in (("hello world", hello), ("receiver", receiver)):
            w, f, d = r["wrk"], r["fixed_rate"], r["disk_flush"]
            print(
                f"  {name:12} load {r['load_1min']:5.2f}  disk flush p50/p99 {d['p50_ms']:.1f}/"
                f"{d['p99_ms']:.1f} ms  wrk {w['requests_per_second']:>6.0f} req/s (cores "
                f"{w['cores_used']})  at {args.rate}/s: p50 {f['p50_ms']:.2f} ms p99 "
                f"{f['p99_ms']:.2f} ms max {f['max_ms']:.1f} ms  statuses {f['statuses']}"
            )
        print(f"  receiver = {ratio:.0%} of the hello world", flush=True)

    with database.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM raw.webhook_events").fetchone()[0]
    return rounds, stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration per server")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--deliveries", type=int, default=250_000, help="distinct signed bodies for wrk"
    )
    parser.add_argument("--rate", type=int, default=1000, help="open-loop requests/s for latency")
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes, the same for both servers"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="hello world then receiver, this many times"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk (make bench-webhooks does it)")

    database, work = start_database("webhooks")
    try:
        rounds, stored = measure_rounds(args, database, work)
    finally:
        stop_database(work)  # a failed run leaves no server behind
    # Every round's wrk replays the same bodies from the first: the acknowledged ones are
    # the first n of the file. Each round's fixed-rate bodies are its own.
    acked = max(r["receiver"]["wrk"]["requests"] - r["receiver"]["wrk"]["non_2xx"] for r in rounds)
    expected = min(acked, args.deliveries) + sum(
        r["receiver"]["fixed_rate"]["statuses"].get(200, 0) for r in rounds
    )
    summary = {
        "ratio_median": median([r["ratio"] for r in rounds]),
        "receiver_p99_ms_median": median([r["receiver"]["fixed_rate"]["p99_ms"] for r in rounds]),
        "hello_world_p99_ms_median": median(
            [r["hello_world"]["fixed_rate"]["p99_ms"] for r in rounds]
        ),
        "load_1min": [[r["hello_world"]["load_1min"], r["receiver"]["load_1min"]] for r in rounds],
    }
    results = {
        "machine": {"cores": os.cpu_count()},
        "workers": args.workers,
        "started": datetime.now(UTC).isoformat(),
        "rounds": rounds,
        "summary": summary,
        "durability": {
            "rows_stored": stored,
            "distinct_acknowledged": expected,
            "all_durable": stored >= expected,
        },
    }
    out = save_results("webhooks", results)
    p99, ratio = summary["receiver_p99_ms_median"], summary["ratio_median"]
    print(
        f"median of {args.rounds}: receiver p99 {p99:.2f} ms at {args.rate}/s "
        f"(hello world {summary['hello_world_p99_ms_median']:.2f} ms; goal <= 10 ms: "
        f"{'met' if p99 <= 10 else 'NOT met'}), throughput {ratio:.0%} of the hello world "
        f"(goal >= 40%: {'met' if ratio >= 0.40 else 'NOT met'})"
    )
    print(f"durability    {stored} rows for {expected} distinct acknowledged deliveries")
    print(f"results       {out}")


if __name__ == "__main__":
    main()
