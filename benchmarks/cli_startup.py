"""How long the `trainu` command takes to start, side by side with `python -c pass`.

`trainu --help` and `trainu messages classify TEXT` (a pure command: no settings, no
database) are each run as a fresh process, the installed script as a person runs it
(`.venv/bin/trainu`, not through `uv run`, which syncs first), `--runs` times after one
warm-up, in turns with the baseline so that the machine's load weighs on all alike.
Reports the median and p95 of each and whether the 0.5 s goal is met, and the CPU time the
process used (user + system; on a busy machine wall time waits for a core, CPU time less so).

Modules load from cached bytecode, as on any install. Where PYTHONDONTWRITEBYTECODE is set
(it is on the project machine) Python would compile every module from source on every start
and the figures would measure the compiler: the bytecode goes to a temporary directory
instead (PYTHONPYCACHEPREFIX), filled by the warm-up run; neither the venv nor the tree is
written to.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.support import save_results

GOAL_SECONDS = 0.5
BIN = Path(sys.executable).parent
BASELINE = "python -c pass"
COMMANDS = {
    BASELINE: [sys.executable, "-c", "pass"],
    "trainu --help": [str(BIN / "trainu"), "--help"],
    'trainu messages classify "see you tomorrow"': [
        str(BIN / "trainu"), "messages", "classify", "see you tomorrow"],
}  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def elapsed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    cpu, started = cpu_seconds(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    bytecode = tempfile.TemporaryDirectory(prefix="trainu-bench-pycache-")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = bytecode.name
    with bytecode:
        for command in COMMANDS.values():  # warm-up: the page cache, the bytecode
            elapsed(command, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
        for _ in range(args.runs):
            for name, command in COMMANDS.items():
                times[name].append(elapsed(command, env))

    results: dict[str, object] = {"runs": args.runs, "goal_seconds": GOAL_SECONDS}
    print(f"{'command':46} {'median':>9} {'p95':>9} {'CPU':>9}   ({args.runs} runs each)")
    for name, samples in times.items():
        wall = [w for w, _ in samples]
        median, p95 = statistics.median(wall), statistics.quantiles(wall, n=20)[-1]
        cpu = statistics.median(c for _, c in samples)
        met = "met" if p95 <= GOAL_SECONDS else "NOT MET"
        verdict = "" if name == BASELINE else f"   goal p95 ≤ {GOAL_SECONDS} s: {met}"
        print(f"{name:46} {median:>7.3f} s {p95:>7.3f} s {cpu:>7.3f} s{verdict}")
        results[name] = {"median_s": round(median, 4), "p95_s": round(p95, 4),
                         "cpu_median_s": round(cpu, 4)}  # fmt: skip
    print(f"results: {save_results('cli_startup', results)}")


if __name__ == "__main__":
    main()
