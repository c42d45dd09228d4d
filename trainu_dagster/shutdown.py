"""A long-lived run asked to stop ends its pass and returns, instead of dying mid-pass.

The ingest and send runs serve for minutes. When their process is told to stop (SIGTERM
from `trainu up`'s Ctrl-C, a deploy, Kubernetes; SIGINT from a terminal) they finish the
pass they are in and return, so the run ends as a success with everything reported,
rather than as "interrupted" (a failure that owners would see in sync health). Nothing
depends on it for safety: a pass cut short is rolled back or reconciled anyway.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set when this process is asked to stop, while the block runs; the
    handlers that were there before (Dagster's, which raise) come back after it."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # only the main thread may handle signals; then nothing is caught
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, lambda _number, _frame: stop.set())
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
