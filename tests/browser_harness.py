"""The real Streamlit app in a real headless browser: Debian's Chromium driven by Playwright.

Playwright's own browser download (`playwright install`) comes from a CDN that CI cannot
reach, so the tests drive the system `chromium` instead; `make test` installs it with
apt-get (the Makefile's `browser` target). A missing Chromium fails the tests: it never
skips them, so a CI machine without it cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from trainu_dagster.settings import PROJECT_ROOT

APP = PROJECT_ROOT / "streamlit_app" / "app.py"
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
STARTUP_SECONDS = 120
VIEWPORT = {"width": 1400, "height": 1600}


def chromium_path() -> str:
    """Debian's Chromium; fail (never skip) when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "Chromium is not installed: the browser tests drive Debian's `chromium` "
            "(`make test` installs it: apt-get install chromium).",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_streamlit(database_url: str, log_dir: Path) -> Iterator[str]:
    """`streamlit run` on the app against `database_url`; yields the app's base URL."""
    port = free_port()
    log = log_dir / "streamlit.log"
    env = os.environ | {"TRAINU_DATABASE_URL": database_url}
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"Streamlit exited ({proc.returncode}):\n{_tail(log)}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Streamlit was not healthy in time:\n{_tail(log)}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium (no sandbox: CI runs as root)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context: its own cookies, so its own Streamlit session."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def wait_for_run(page: Page) -> None:
    """Wait until Streamlit has finished its current run and dropped the previous run's
    (stale) elements. Call it after seeing something only the awaited run draws: right
    after a click the old run's page may still be on screen, marked "not running"."""
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.locator("[data-stale='true']")).to_have_count(0)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
