"""`trainu up`: the whole local stack under one supervisor.

honcho runs each service in its own process group and relays its output; on Ctrl-C
(or SIGTERM, or any service exiting) it stops them all. This process also makes
itself a child subreaper, so helpers a service forked and abandoned (code servers,
run workers) are re-parented here and reaped too: nothing outlives `trainu up`.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
from honcho.manager import Manager
from honcho.printer import Message, Printer

from trainu_dagster.db import embedded
from trainu_dagster.db.server import Database
from trainu_dagster.observability.console import ConsoleFilter
from trainu_dagster.settings import PROJECT_ROOT, Settings

PR_SET_CHILD_SUBREAPER = 36
CLEAN_STOP_CODES = {0, 130, 143}  # exited, or stopped by SIGINT / SIGTERM as asked
DAEMON, SIMULATOR = "dagster-daemon", "ghl-simulator"
FIRST_STOP_SECONDS = 5.0


class StackAlreadyRunning(RuntimeError):
    pass


def simulating(settings: Settings) -> bool:
    """Without a GHL token the stack runs against the local simulator (`ghl_simulator`)."""
    return settings.ghl_token is None


def service_commands(settings: Settings) -> dict[str, list[str]]:
    """The long-running services, in start order."""
    bin_dir = Path(sys.executable).parent
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    simulator = {
        SIMULATOR: [
            str(bin_dir / "ghl-simulator"),
            "--port",
            str(settings.simulator_port),
            "--webhook-url",
            f"http://127.0.0.1:{settings.receiver_port}/webhooks/ghl",
            "--app-data",  # goals and entries exist only in TrainU: the simulator writes them
            "--keep",  # a restart resumes the same studio, as GHL's would be
        ]
    }
    return {
        **(simulator if simulating(settings) else {}),
        "dagster-webserver": [
            str(bin_dir / "dagster-webserver"),
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.dagster_port),
            "--workspace",
            workspace,
        ],
        DAEMON: [str(bin_dir / "dagster-daemon"), "run", "--workspace", workspace],
        "receiver": [str(bin_dir / "trainu"), "receive", "--port", str(settings.receiver_port)],
        "streamlit": [
            str(bin_dir / "streamlit"),
            "run",
            str(PROJECT_ROOT / "streamlit_app" / "app.py"),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(settings.streamlit_port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--client.toolbarMode",  # no "Deploy" button for studio staff
            "minimal",
            "--runner.postScriptGC",  # a full GC after each run costs 200-300 ms a click
            "false",
        ],
    }


# The stack's Dagster instance (storage in Postgres, run lanes). Not at the repository root:
# Dagster's own CLI run there (`dagster dev -w workspace.yaml`) then falls back to a local
# instance of its own instead of demanding the stack's storage URL.
INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "stack" / "dagster.yaml"


def install_instance_config(home: Path) -> Path:
    """`home` made a DAGSTER_HOME with the stack's instance config."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


def prepare_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME lives in the state directory; its instance config is the repo's."""
    return install_instance_config(settings.dagster_home)


def simulator_environment(settings: Settings, database: Database) -> dict[str, str]:
    """Point every service at the simulator: its URL, its token, its webhook key; and
    register its studio so the scheduled pulls cover it."""
    from ghl_simulator import (
        SIMULATED_LOCATION,
        load_or_create_signing_key,
        public_pem,
        simulator_key_path,
    )

    key = load_or_create_signing_key(simulator_key_path(settings))
    with database.connect() as conn:
        conn.execute(
            """INSERT INTO app.locations (location_id, name, timezone)
               VALUES (%s, 'Simulated studio', 'America/New_York') ON CONFLICT DO NOTHING""",
            (SIMULATED_LOCATION,),
        )
    return {
        "TRAINU_GHL_BASE_URL": f"http://127.0.0.1:{settings.simulator_port}",
        "TRAINU_GHL_TOKEN": secrets.token_urlsafe(24),  # fresh per run; the simulator reads it too
        "TRAINU_WEBHOOK_ED25519_PUBLIC_KEY": public_pem(key),
    }


def service_environment(settings: Settings, database: Database) -> dict[str, str]:
    """Children get the resolved server, so none of them starts a database of its own."""
    return {
        **os.environ,
        **(simulator_environment(settings, database) if simulating(settings) else {}),
        "TRAINU_STATE_DIR": str(settings.state_dir),
        "TRAINU_DATABASE_URL": database.url(),
        "TRAINU_DAGSTER_STORAGE_URL": database.dagster_storage_url(),
        "DAGSTER_HOME": str(settings.dagster_home),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def exclusive_stack_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "stack.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StackAlreadyRunning(
                f"another `trainu up` is already running with state in {state_dir}"
            ) from exc
        yield


class StackManager(Manager):  # type: ignore[misc]  # honcho ships no types
    """honcho's manager, stopping the Dagster daemon and the simulator before the rest.
    Told to stop, the serving ingest and send runs end their pass and free their lane, and
    a daemon still up would launch the queued successor into the shutdown, to fail there;
    the simulator delivers its last webhooks while the receiver still takes them. The
    daemon's own process exits at once on SIGTERM and leaves its runs alone: then every
    service's process group, the runs with it, gets SIGTERM as usual."""

    _stopping = False

    def terminate(self) -> None:
        if self._stopping:  # a second Ctrl-C, or uv's relay of the first: this one goes on
            return
        self._stopping = True
        first: list[tuple[str, int]] = []  # those still running
        for name in (DAEMON, SIMULATOR):
            process = self._processes.get(name, {})
            if process.get("pid") and "returncode" not in process:
                first.append((name, process["pid"]))
        if first:
            names = " and ".join(name for name, _ in first)
            self._system_print(f"stopping {names} first (no run is launched from now on)\n")
            for _, pid in first:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + FIRST_STOP_SECONDS
            for _, pid in first:
                _wait_until_exited(pid, timeout=max(0.0, deadline - time.monotonic()))
        super().terminate()


def _wait_until_exited(pid: int, timeout: float) -> None:
    """Until `pid` is gone or a zombie (honcho reaps it once its output pipe closes)."""
    with suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        deadline = time.monotonic() + timeout
        while process.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)


class ConsolePrinter(Printer):  # type: ignore[misc]  # honcho ships no types
    """honcho's printer, but each service's output goes whole to `<log_dir>/<service>.log`
    and only what a person should read reaches the console (`ConsoleFilter`)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(sys.stdout)
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_dir = log_dir
        self._filters: dict[str, ConsoleFilter] = {}
        self._files: dict[str, Any] = {}

    def write(self, message: Message) -> None:
        name = message.name or "system"
        data = message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) \
            else message.data  # fmt: skip
        if name not in self._files:
            self._files[name] = open(self._log_dir / f"{name}.log", "a", buffering=1)  # noqa: SIM115
            self._filters[name] = ConsoleFilter()
        for line in data.splitlines():
            self._files[name].write(line + "\n")
            shown = self._filters[name].line(line)
            if shown is not None:
                super().write(message._replace(data=shown))

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap_descendants(timeout: float = 10.0) -> None:
    leftovers = psutil.Process().children(recursive=True)
    for proc in leftovers:
        with suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=timeout)
    for proc in alive:
        with suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)


def run_stack(settings: Settings, prepare_database: Callable[[Settings], Database]) -> int:
    with exclusive_stack_lock(settings.state_dir):
        we_started_db = (
            settings.database_url is None and not embedded.status(settings.pgdata).running
        )
        database = prepare_database(settings)
        try:
            # After the database is up: its postmaster must not become our child.
            _become_subreaper()
            prepare_dagster_home(settings)
            env = service_environment(settings, database)
            printer = ConsolePrinter(settings.state_dir / "logs")
            manager = StackManager(printer=printer)
            for name, argv in service_commands(settings).items():
                manager.add_process(
                    name, "exec " + shlex.join(argv), env=env, cwd=str(PROJECT_ROOT)
                )
            print(
                f"TrainU stack starting: Dagster UI http://127.0.0.1:{settings.dagster_port}  "
                f"Streamlit http://127.0.0.1:{settings.streamlit_port}  "
                f"webhooks http://127.0.0.1:{settings.receiver_port}/webhooks/ghl  "
                + (
                    f"GHL simulator http://127.0.0.1:{settings.simulator_port}  "
                    if simulating(settings)
                    else ""
                )
                + f"(Ctrl-C stops everything; full logs in {settings.state_dir / 'logs'})",
                flush=True,
            )
            try:
                manager.loop()
            finally:
                printer.close()
            code = manager.returncode or 0
        finally:
            _reap_descendants()
            if we_started_db:
                embedded.stop(settings.pgdata)
                print("embedded database stopped", flush=True)
    return 0 if code in CLEAN_STOP_CODES else code
