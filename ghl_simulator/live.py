"""The simulator as a running service: the API (and GHL's OAuth) under uvicorn, the agency's
studios moving in real time, and the resulting webhooks posted to TrainU's receiver — the
demo and load-test backdrop."""

from __future__ import annotations

import os
import pickle
import random
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import psycopg
import uvicorn

from ghl_simulator.agency import agency_plan, create_agency_app
from ghl_simulator.app_data import write_app_data
from ghl_simulator.oauth import ACCESS_TOKEN_SECONDS, MarketplaceApp
from ghl_simulator.studio import Studio, default_company_id, generate_studio
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
    studios: int = 1,
    oauth_app: MarketplaceApp | None = None,
    token_lifetime: float = ACCESS_TOKEN_SECONDS,
) -> None:
    """Serve the API and run live activity until SIGINT/SIGTERM (uvicorn handles both).
    `studios`: an agency of that many studios (`agency.py`: `location_id`, then
    `location_id-2`...), each with its own data, rate limit and activity; the static `token`
    reads the first, OAuth (`oauth_app`, access tokens lasting `token_lifetime` seconds)
    any. With `database_url`, first write each studio's TrainU-side data (trainers,
    clients, goals, entries) into the app tables, which no pull or webhook would bring in.
    With `keep_path`, each studio is kept between runs (`StudioKeeper`), the first there,
    the others beside it."""
    served: list[tuple[Studio, StudioKeeper | None, int]] = []  # (studio, keeper, seed)
    for studio_id, studio_seed, company in agency_plan(location_id, studios, seed):
        params: dict[str, Any] = {
            "location_id": studio_id,
            "trainers": trainers,
            "clients": clients,
            "days": days,
            "seed": studio_seed,
        }
        if company != default_company_id(studio_id):
            params["company_id"] = company  # fmt: skip
        path = keep_path if studio_id == location_id else None
        if keep_path is not None and path is None:
            path = keep_path.with_name(f"{studio_id}.studio")
        keeper = StudioKeeper(path, params) if path else None
        studio = keeper.load() if keeper else None
        if studio is None:
            studio = generate_studio(studio_id, trainers=trainers, clients=clients, days=days,
                                     seed=studio_seed, company_id=company)  # fmt: skip
            log.info("simulator_generated", location_id=studio_id, **_counts(studio))
        else:
            log.info("simulator_resumed", location_id=studio_id,
                     since=studio.now.isoformat(), **_counts(studio))  # fmt: skip
        served.append((studio, keeper, studio_seed))
    worlds = [studio for studio, _, _ in served]
    if database_url:
        for studio in worlds:
            with psycopg.connect(database_url) as conn, conn.transaction():
                written = write_app_data(conn, studio)
                demo = create_demo_accounts(conn, studio.location_id)
            log.info("simulator_app_data", location_id=studio.location_id, **written)
            _print_demo_accounts(demo)
    sender = None
    if webhook_url:
        key = load_or_create_signing_key(key_path)
        log.info("simulator_webhooks", url=webhook_url, key_path=str(key_path))
        log.info("simulator_public_key", pem=public_pem(key))
        sender = WebhookSender(webhook_url, key, seed=seed)
        sender.start()
    activities = [LiveActivity(s, sender, events_per_minute, n) for s, _, n in served]
    for activity in activities:
        activity.start()
    for studio, keeper, _ in served:
        if keeper:
            keeper.start(studio)
    app = create_agency_app(
        worlds,
        app=oauth_app,
        tokens={token: location_id},
        token_lifetime=token_lifetime,
        on_event=_lifecycle_sender(sender),
    )
    log.info("simulator_serving", url=f"http://{host}:{port}", location_id=location_id,
             studios=len(worlds), company_id=app.server.agency.company_id)  # fmt: skip
    # uvicorn re-raises the SIGTERM it caught once it has shut down; as SystemExit, the
    # `finally` below still runs, so a stopped stack keeps its studio and sends what is queued.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None)).run()
    finally:
        for activity in activities:
            activity.stop()
        for studio, keeper, _ in served:
            if keeper:
                keeper.stop(studio)
        if sender is not None:
            sender.stop()
        log.info("simulator_stopped", **(sender.counts if sender else {}))


def _lifecycle_sender(sender: WebhookSender | None) -> Callable[[dict[str, Any]], None] | None:
    """INSTALL / UNINSTALL events go out signed beside the studios' own webhooks."""
    if sender is None:
        return None

    def send(body: dict[str, Any]) -> None:
        log.info("simulator_app_event", type=body["type"], location_id=body.get("locationId"),
                 company_id=body.get("companyId"))  # fmt: skip
        sender.enqueue(orjson.dumps(body))

    return send


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
