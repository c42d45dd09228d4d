"""The simulator as a running service: the API under uvicorn, the world moving in real time,
and the resulting webhooks posted to TrainU's receiver — the demo and load-test backdrop."""

from __future__ import annotations

import os
import pickle
import random
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import uvicorn

from ghl_simulator.api import create_simulator_app
from ghl_simulator.app_data import write_app_data
from ghl_simulator.studio import Studio, generate_studio
from ghl_simulator.webhooks import (
    WebhookSender,
    load_or_create_signing_key,
    public_pem,
)
from trainu_dagster.accounts import DemoAccount, create_demo_accounts
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)
TICK_SECONDS = 1.0
KEEP_SECONDS = 60.0


class LiveActivity:
    """Advances the studio to the wall clock every tick, at about `events_per_minute`."""

    def __init__(
        self,
        studio: Studio,
        sender: WebhookSender | None,
        events_per_minute: float,
        seed: int,
    ) -> None:
        self.studio, self.sender = studio, sender
        self.events_per_minute = events_per_minute
        self._rng = random.Random(seed)  # noqa: S311 - simulated behaviour, not secrets
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-activity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> int:
        """One step; returns how many changes it made."""
        expected = self.events_per_minute * TICK_SECONDS / 60
        events = int(expected) + (self._rng.random() < expected % 1)
        changes = self.studio.advance(self._rng, datetime.now(UTC), events=events)
        if self.sender is not None and changes:
            self.sender.enqueue_changes(changes, self.studio)
        return len(changes)

    def _run(self) -> None:
        total = 0
        while not self._stop.wait(TICK_SECONDS):
            made = self.tick()
            total += made
            if made:
                log.info("simulator_activity", changes=made, total_changes=total)


class StudioKeeper:
    """Keeps the studio in a file between runs, as GHL keeps a studio: a restarted
    simulator resumes the same world (same contacts, bookings and ids) where it stopped,
    instead of generating another one beside what TrainU already holds. Saved every
    minute and on stop. The file is the simulator's own, in the state directory: it is
    unpickled only when its header matches the studio asked for."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path, self.params = path, params
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> Studio | None:
        try:
            header, payload = pickle.loads(self.path.read_bytes())  # noqa: S301 - our own file
            if header != self.params:
                log.info("simulator_studio_not_kept", reason="other parameters")
                return None
            studio = pickle.loads(payload)  # noqa: S301
        except FileNotFoundError:
            return None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            log.warning("simulator_studio_unreadable", path=str(self.path), error=str(exc))
            return None
        return studio if isinstance(studio, Studio) else None

    def save(self, studio: Studio) -> None:
        with studio.lock:
            payload = pickle.dumps(studio, protocol=pickle.HIGHEST_PROTOCOL)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps((self.params, payload)))
        os.replace(partial, self.path)  # a crash mid-write leaves the last whole save

    def start(self, studio: Studio) -> None:
        def keep() -> None:
            while not self._stop.wait(KEEP_SECONDS):
                self.save(studio)

        self._thread = threading.Thread(target=keep, name="studio-keeper", daemon=True)
        self._thread.start()

    def stop(self, studio: Studio) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.save(studio)


def run_simulator(
    *,
    location_id: str,
    trainers: int,
    clients: int,
    days: int,
    seed: int,
    host: str,
    port: int,
    webhook_url: str | None,
    key_path: Path,
    events_per_minute: float,
    token: str,
    database_url: str | None = None,
    keep_path: Path | None = None,
) -> None:
    """Serve the API and run live activity until SIGINT/SIGTERM (uvicorn handles both).
    With `database_url`, first write the studio's TrainU-side data (trainers, clients,
    goals, entries) into the app tables, which no pull or webhook would bring in. With
    `keep_path`, the studio is kept there between runs (`StudioKeeper`)."""
    params = {"location_id": location_id, "trainers": trainers, "clients": clients,
              "days": days, "seed": seed}  # fmt: skip
    keeper = StudioKeeper(keep_path, params) if keep_path else None
    studio = keeper.load() if keeper else None
    if studio is None:
        studio = generate_studio(location_id, trainers=trainers, clients=clients, days=days,
                                 seed=seed)  # fmt: skip
        log.info("simulator_generated", location_id=location_id, **_counts(studio))
    else:
        log.info("simulator_resumed", location_id=location_id, since=studio.now.isoformat(),
                 **_counts(studio))  # fmt: skip
    if database_url:
        with psycopg.connect(database_url) as conn, conn.transaction():
            written = write_app_data(conn, studio)
            demo = create_demo_accounts(conn, location_id)
        log.info("simulator_app_data", location_id=location_id, **written)
        _print_demo_accounts(demo)
    sender = None
    if webhook_url:
        key = load_or_create_signing_key(key_path)
        log.info("simulator_webhooks", url=webhook_url, key_path=str(key_path))
        log.info("simulator_public_key", pem=public_pem(key))
        sender = WebhookSender(webhook_url, key, seed=seed)
        sender.start()
    activity = LiveActivity(studio, sender, events_per_minute, seed)
    activity.start()
    if keeper:
        keeper.start(studio)
    app = create_simulator_app(studio, tokens={token: location_id})
    log.info("simulator_serving", url=f"http://{host}:{port}", location_id=location_id)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; as SystemExit, the
    # `finally` below still runs, so a stopped stack keeps its studio and sends what is queued.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None)).run()
    finally:
        activity.stop()
        if keeper:
            keeper.stop(studio)
        if sender is not None:
            sender.stop()
        log.info("simulator_stopped", **(sender.counts if sender else {}))


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _counts(studio: Studio) -> dict[str, int]:
    """Records per kind, named in the plural: a key `message` is redacted from logs as PII."""
    plural = {"goal_entry": "goal_entries"}
    return {plural.get(kind, f"{kind}s"): n for kind, n in studio.summary()["counts"].items()}


def _print_demo_accounts(accounts: list[DemoAccount]) -> None:
    """Straight to the terminal, never to the logs: shown once, the first time."""
    if not accounts:
        return
    lines = [f"  {a.role:<8} {a.email:<48} {a.password}  ({a.display_name})" for a in accounts]
    print(
        "\nDemo accounts for the simulated studio (shown only this once; sign in at the "
        "Streamlit URL):\n" + "\n".join(lines) + "\n",
        flush=True,
    )
