"""Dagster's own CLI against our code location prints each event once, and a code server
stopping as it should stays off `trainu up`'s console (and in its log file).

The process is a real code server, started as the Dagster daemon and webserver start one for
`trainu up` and `dagster dev` (`dagster api grpc --heartbeat`), loading the code location at
once; with no caller sending heartbeats it shuts itself down a second after it is up, with
the "No heartbeat received" warning every finished run's code server logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from honcho.printer import Message

from trainu_dagster.observability.console import ANSI, DAGSTER
from trainu_dagster.settings import PROJECT_ROOT
from trainu_dagster.stack import ConsolePrinter

DAGSTER_CLI = str(Path(sys.executable).parent / "dagster")
HEARTBEAT = "No heartbeat received in 1 seconds, shutting down"
STARTED = "Started Dagster code server for module trainu_dagster.definitions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def code_server_output(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Its stdout and stderr as one stream, as the stack's supervisor reads them."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run(
        [DAGSTER_CLI, "api", "grpc", "-m", "trainu_dagster.definitions",
         "--port", str(free_port()), "--heartbeat", "--heartbeat-timeout", "1"],
        cwd=PROJECT_ROOT, env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    return result.stdout.splitlines()


def event(line: str) -> str | None:
    """What a log line says, in either format: our JSON's event or Dagster's message."""
    text = ANSI.sub("", line)
    if text.startswith("{"):
        return str(orjson.loads(text)["event"]).splitlines()[0]
    dagster = DAGSTER.match(text)
    return dagster["message"] if dagster else None


def test_each_event_of_a_code_server_is_printed_once(code_server_output: list[str]) -> None:
    events = Counter(e for e in map(event, code_server_output) if e is not None)
    assert events[HEARTBEAT] == 1, code_server_output
    assert sum(n for e, n in events.items() if e.startswith(STARTED)) == 1, code_server_output
    assert [e for e, n in events.items() if n > 1] == [], code_server_output


def test_its_heartbeat_warning_is_in_the_log_file_not_on_the_console(
    code_server_output: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printer = ConsolePrinter(tmp_path)
    for line in code_server_output:
        printer.write(Message("line", line + "\n", datetime.now(), "dagster-daemon", None))
    printer.close()
    console = capsys.readouterr().out
    assert HEARTBEAT in (tmp_path / "dagster-daemon.log").read_text()
    assert "No heartbeat" not in console
    assert STARTED in console  # the rest of what it said is still shown
