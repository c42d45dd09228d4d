"""`trainu up`'s console: one readable line per event, the noise left to the log files.
The lines are the shapes the stack's services really print (taken from a running stack)."""

from __future__ import annotations

import pytest

from trainu_dagster.observability.console import ConsoleFilter

RUN = "0ba69b1a-1d8c-4c25-a2db-25a6c458aa42"
SHOWN = [
    (
        '{"event_id": 66, "event_type": "AppointmentCreate", "status": "processed", "flag": null,'
        ' "event": "webhook_processed", "correlation_id": "63cd", "level": "info",'
        ' "logger": "trainu_dagster.ingest.process", "timestamp": "2026-12-03T18:03:15Z"}',
        "INFO    webhook_processed event_id=66 event_type=AppointmentCreate status=processed "
        "correlation_id=63cd",
    ),
    (
        f"\x1b[32m2026-12-03 18:03:25 +0000\x1b[0m - dagster - \x1b[34mINFO\x1b[0m - "
        f"ingest_webhook_events - {RUN} - apply_webhook_deliveries - drafts: 1 pending approval",
        "INFO    ingest_webhook_events - 0ba69b1a - apply_webhook_deliveries - drafts: 1 pending "
        "approval",
    ),
    (
        "2026-12-03 18:03:25 +0000 - dagster.daemon.SensorDaemon - WARNING - Sensor slow",
        "WARNING Sensor slow",
    ),
    (
        '{"event": "HTTP Request: POST http://x/y \\"HTTP/1.1 500\\"", "level": "warning",'
        ' "logger": "httpx", "timestamp": "t"}',
        'WARNING HTTP Request: POST http://x/y "HTTP/1.1 500"',
    ),
    ("18:02:51  Done. PASS=23 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=23",) * 2,
    ("  You can now view your Streamlit app in your browser.",) * 2,
    ("not json {", "not json {"),
]
HIDDEN = [
    '{"event": "HTTP Request: POST http://127.0.0.1:8000/webhooks/ghl \\"HTTP/1.1 200 OK\\"",'
    ' "level": "info", "logger": "httpx", "timestamp": "t"}',
    '{"event": "detail", "level": "debug", "logger": "trainu_dagster.x", "timestamp": "t"}',
    "2026-12-03 18:03:15 +0000 - dagster.daemon.SensorDaemon - INFO - Checking for new runs for"
    " sensor: outbox_sensor",
    "2026-12-03 18:03:16 +0000 - dagster.daemon.QueuedRunCoordinatorDaemon - INFO - Priority "
    "sorting and checking tag concurrency limits for queued runs.",
    f"2026-12-03 18:03:16 +0000 - dagster - DEBUG - __ASSET_JOB - {RUN} - 14652 - STEP_START",
    "2026-12-03 18:24:53 +0000 - dagster - WARNING - /x/trainu_dagster/assets/dbt.py:66: "
    "BetaWarning: Parameter `include_sources` is currently in beta",
    '{"event": "/x/dagster/sensor_definition.py:809: BetaWarning: Parameter `owners` is beta",'
    ' "level": "warning", "logger": "py.warnings", "timestamp": "t"}',
    "18:02:40  1 of 23 START sql view model staging.stg_ghl__contacts ......... [RUN]",
    "18:02:41  1 of 23 OK created sql view model staging.stg_ghl__contacts .... [CREATE VIEW]",
    "   ",
]


@pytest.mark.parametrize(("raw", "shown"), SHOWN)
def test_events_worth_reading_get_one_short_line(raw: str, shown: str) -> None:
    assert ConsoleFilter().line(raw) == shown


@pytest.mark.parametrize("raw", HIDDEN)
def test_routine_noise_stays_in_the_log_files(raw: str) -> None:
    assert ConsoleFilter().line(raw) is None


def test_a_library_warning_goes_with_its_source_line_and_a_traceback_stays_whole() -> None:
    console = ConsoleFilter()
    lines = [
        "/x/trainu_dagster/assets/dbt.py:43: BetaWarning: Parameter `include_sources` is beta",
        '  AssetSelection.key_prefixes("raw", "app", include_sources=True)',
        "2026-12-03 18:10:56 +0000 - dagster - ERROR - send_messages - run failed",
        "Traceback (most recent call last):",
        '  File "/x/trainu_dagster/jobs.py", line 110, in send_due_messages',
        "psycopg.OperationalError: the connection is lost",
    ]
    assert (
        [console.line(line) for line in lines]
        == [
            None,
            None,
            "ERROR   send_messages - run failed",
            None,  # a traceback is held until its last line says what it was...
            None,
            "\n".join(lines[3:]),  # ...then shown whole
        ]
    )


def test_the_traceback_of_a_process_asked_to_stop_is_left_out() -> None:
    """Ctrl-C: dagster-daemon dies of the interrupt it was sent, which is no error."""
    console = ConsoleFilter()
    lines = [
        "Traceback (most recent call last):",
        '  File "<frozen runpy>", line 198, in _run_module_as_main',
        '  File "/x/dagster/_cli/__init__.py", line 50, in main',
        "    cli(auto_envvar_prefix=ENV_PREFIX)",
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "dagster._core.errors.DagsterExecutionInterruptedError",
        "INFO    Stopping server once all current RPC calls terminate or 60 seconds pass",
        "Traceback (most recent call last):",
        '  File "/x/streamlit/web/bootstrap.py", line 3, in run',
        "KeyboardInterrupt",
    ]
    shown = [console.line(line) for line in lines]
    assert shown == [None] * 6 + [lines[6]] + [None] * 3


def test_a_logged_exception_is_shown_under_its_event_and_long_values_are_cut() -> None:
    raw = ('{"event": "after_batch_failed", "level": "error", "note": "' + "x" * 200 + '",'
           ' "exception": "Traceback (most recent call last):\\nValueError: bad"}')  # fmt: skip
    shown = ConsoleFilter().line(raw)
    head, *rest = shown.splitlines()
    assert head == "ERROR   after_batch_failed note=" + "x" * 79 + "…"
    assert rest == ["Traceback (most recent call last):", "ValueError: bad"]


def test_the_demo_accounts_are_shown_whole_even_right_after_a_hidden_line() -> None:
    console = ConsoleFilter()
    hidden = (
        '{"event": "HTTP Request: POST http://x \\"200 OK\\"", "level": "info", "logger": "httpx"}'
    )
    lines = [
        hidden,
        "Demo accounts for the simulated studio (shown only this once; sign in at the URL):",
        "  owner    owner@sim-studio.demo.trainu.example     drfxXSuiGTVTodYH  (Studio owner)",
        "  trainer  trainer1@sim-studio.demo.trainu.example  ceerR8aBGdudDjTO  (Kristina Davis)",
    ]
    assert [console.line(line) for line in lines] == [None, *lines[1:]]


def test_dagster_saying_a_process_stops_as_asked_stays_in_the_log_file() -> None:
    """A finished run's code server, no longer needed, and the daemon stopped by Ctrl-C say
    so as warnings, in Dagster's format or (logged where our code runs) as JSON."""
    stopping = [
        "2026-12-07 01:33:21 +0000 - dagster.code_server - WARNING - No heartbeat received in"
        " 20 seconds, shutting down",
        '{"event": "No heartbeat received in 45 seconds, shutting down", "level": "warning",'
        ' "logger": "dagster.code_server", "timestamp": "t"}',
        "2026-12-07 01:40:02 +0000 - dagster.daemon - WARNING - Shutting down daemon threads due"
        " to DagsterExecutionInterruptedError...",
    ]
    assert [ConsoleFilter().line(line) for line in stopping] == [None] * 3
    crashed = (
        "2026-12-07 01:40:02 +0000 - dagster.daemon - WARNING - Shutting down daemon threads due"
        " to OperationalError..."
    )
    assert ConsoleFilter().line(crashed) == (
        "WARNING Shutting down daemon threads due to OperationalError..."
    )
