"""Webhook ingestion benchmark: signed, durable, idempotent deliveries per second.

Runs, on this machine and in one go: the real receiver (uvicorn + Starlette + Ed25519 +
group commit into an embedded Postgres) and a Starlette hello world under the same
uvicorn settings, each driven by wrk with the same connection count; then an open-loop
run at a fixed rate for latency percentiles. Finally every acknowledged delivery is
checked to be in the database.

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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.support import save_results, start_database, stop_database
from ghl_simulator.webhooks import public_pem
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


async def open_loop(
    base: str, deliveries: list[tuple[str, bytes]], rate: int, connections: int
) -> dict:
    """Send at a fixed rate; latency is measured from each request's scheduled time.

    The client's own garbage collector is paused meanwhile: this process holds the signed
    deliveries, and a full collection here would be booked as the server's latency.
    """
    host, port = base.removeprefix("http://").split(":")
    queue: asyncio.Queue[tuple[float, str, bytes]] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while True:
            scheduled, sig, body = await queue.get()
            writer.write(
                b"POST /webhooks/ghl HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                + f"x-ghl-signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
            queue.task_done()

    gc.collect()
    gc.disable()
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i, (sig, body) in enumerate(deliveries):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, sig, body))
    await queue.join()
    elapsed = time.perf_counter() - start
    gc.enable()
    for w in workers:
        w.cancel()
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
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk (make bench-webhooks does it)")

    database, work = start_database("webhooks")
    key = Ed25519PrivateKey.generate()
    env = {
        **os.environ,
        "TRAINU_DATABASE_URL": database.url(),
        "TRAINU_STATE_DIR": str(work),
        "TRAINU_WEBHOOK_ED25519_PUBLIC_KEY": public_pem(key),
        "TRAINU_WEBHOOK_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    print(f"signing {args.deliveries} deliveries...", flush=True)
    data = work / "deliveries.tsv"
    with data.open("wb") as out:
        for sig, body in signed_deliveries(key, args.deliveries, "wrk"):
            out.write(sig.encode() + b"\t" + body + b"\n")
    latency_set = signed_deliveries(key, args.rate * args.latency_seconds, "rate")

    results: dict[str, object] = {
        "machine": {"cores": os.cpu_count()},
        "workers": args.workers,
        "started": datetime.now(UTC).isoformat(),
    }
    # Per server: first the fixed-rate latency run (steady state), then the wrk flood.
    print("hello world...", flush=True)
    hello_env = {**env, "PYTHONPATH": str(HERE)}
    hello_args = ["hello_world:app", "--app-dir", str(HERE), "--workers", str(args.workers)]
    with server(hello_args, hello_env, free_port()) as base:
        results["hello_world_fixed_rate"] = asyncio.run(open_loop(base, latency_set, args.rate, 32))
        results["hello_world"] = run_wrk(
            base, data, connections=args.connections, seconds=args.seconds, stride=1
        )
    print("receiver...", flush=True)
    receiver_args = [
        "trainu_dagster.ingest.receiver:create_app",
        "--factory",
        "--workers",
        str(args.workers),
    ]
    with server(receiver_args, env, free_port()) as base:
        results["receiver_fixed_rate"] = asyncio.run(open_loop(base, latency_set, args.rate, 32))
        results["receiver"] = run_wrk(
            base, data, connections=args.connections, seconds=args.seconds, stride=1
        )

    with database.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM raw.webhook_events").fetchone()[0]
    wrk_result, fixed = results["receiver"], results["receiver_fixed_rate"]
    acked_distinct = min(wrk_result["requests"] - wrk_result["non_2xx"], args.deliveries)  # type: ignore[index]
    expected = acked_distinct + fixed["statuses"].get(200, 0)  # type: ignore[index]
    results["durability"] = {
        "rows_stored": stored,
        "distinct_acknowledged": expected,
        "all_durable": stored >= expected,
    }
    ratio = wrk_result["requests_per_second"] / results["hello_world"]["requests_per_second"]  # type: ignore[index]
    results["receiver_vs_hello_world"] = round(ratio, 3)
    stop_database(work)

    out = save_results("webhooks", results)
    for name in ("hello_world", "receiver"):
        r = results[name]
        print(
            f"{name:14}{r['requests_per_second']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  non-2xx {r['non_2xx']}  cores {r['cores_used']}"
        )
    print(f"ratio         receiver = {ratio:.0%} of hello world")
    for name in ("hello_world_fixed_rate", "receiver_fixed_rate"):
        r = results[name]
        print(
            f"{name:23}{r['achieved_rps']:.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.1f} ms  statuses {r['statuses']}"
        )
    print(f"durability    {stored} rows for {expected} distinct acknowledged deliveries")
    print(f"results       {out}")


if __name__ == "__main__":
    main()
