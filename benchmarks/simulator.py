"""How fast the GHL simulator generates a large studio (`make bench-simulator`).

`make up`, the pull and outbox benchmarks and several tests start from a generated studio,
so its generation time is part of their start-up. Goal: 10,000 clients over 90 days in
at most 20 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from ghl_simulator import generate_studio

GOAL_SECONDS = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    now = datetime.now(UTC)
    took = []
    for seed in range(1, args.runs + 1):
        started = time.perf_counter()
        studio = generate_studio("bench-studio", clients=args.clients, seed=seed, now=now)
        took.append(time.perf_counter() - started)
        print(f"seed {seed}: {len(studio.contacts):,} clients in {took[-1]:.1f} s")
    median = statistics.median(took)
    verdict = "met" if median <= GOAL_SECONDS else "NOT met"
    print(f"median {median:.1f} s over {args.runs} runs (goal <= {GOAL_SECONDS:.0f} s: {verdict})")


if __name__ == "__main__":
    main()
