"""The simulator as an agency of several studios: one companyId, each studio its own seeded
world and its own per-location rate limit; `ghl-simulator --studios N` serves them with
GHL's OAuth in front, installable the way a real agency admin installs an app."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from ghl_simulator import RateLimit, create_agency_app, generate_agency, generate_studio
from ghl_simulator.oauth import DEFAULT_CLIENT_ID
from ghl_simulator.studio import default_company_id
from ghl_simulator.webhooks import load_or_create_signing_key
from tests.cli_harness import GHL_SIMULATOR
from tests.ghl_simulator_harness import WebhookInbox
from tests.receiver_harness import free_port, serving

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
FIRST = "agency-studio"


def test_an_agency_is_seeded_and_shares_one_company() -> None:
    agency = generate_agency(FIRST, 3, trainers=2, clients=15, days=10, seed=7, now=NOW)
    again = generate_agency(FIRST, 3, trainers=2, clients=15, days=10, seed=7, now=NOW)
    assert [s.location_id for s in agency] == [FIRST, f"{FIRST}-2", f"{FIRST}-3"]
    assert [s.truth() for s in agency] == [s.truth() for s in again]  # same seed, same agency
    assert {s.location["companyId"] for s in agency} == {default_company_id(FIRST)}
    assert len({s.location["name"] for s in agency}) == 3
    alone = generate_studio(FIRST, trainers=2, clients=15, days=10, seed=7, now=NOW)
    assert agency[0].truth() == alone.truth() and agency[0].location == alone.location


def test_each_studio_has_its_own_rate_limit() -> None:
    first, second = generate_agency(FIRST, 2, trainers=2, clients=5, days=5, seed=1, now=NOW)
    app = create_agency_app(
        [first, second],
        tokens={"a": first.location_id, "b": second.location_id},
        rate_limit=RateLimit(3, 60.0),
    )
    with serving(app) as url:

        def read(token: str, location_id: str) -> int:
            headers = {"Authorization": f"Bearer {token}", "Version": "2021-07-28"}
            return httpx.get(f"{url}/locations/{location_id}", headers=headers).status_code

        assert [read("a", first.location_id) for _ in range(4)] == [200, 200, 200, 429]
        assert [read("b", second.location_id) for _ in range(3)] == [200, 200, 200]
        assert read("a", second.location_id) == 429  # A's token spends A's budget
        stats = httpx.get(f"{url}/_sim/stats", params={"locationId": second.location_id})
        assert stats.json()["total"] == 3


def test_the_command_serves_an_agency_installed_the_oauth_way(tmp_path: Path) -> None:
    """`ghl-simulator --studios 2`: an agency install through the consent page gives tokens
    for both studios, GHL's signed INSTALL events arrive, tokens expire as configured."""
    port, redirect, secret = free_port(), "http://127.0.0.1:9/callback", "agency-secret"
    inbox = WebhookInbox()
    env = {**os.environ, "TRAINU_STATE_DIR": str(tmp_path), "TRAINU_GHL_TOKEN": "static",
           "GHL_SIMULATOR_CLIENT_SECRET": secret}  # fmt: skip
    log = tmp_path / "simulator.log"
    with inbox.serving() as hook, log.open("wb") as out:
        proc = subprocess.Popen(
            [GHL_SIMULATOR, "--location", FIRST, "--studios", "2", "--trainers", "2",
             "--clients", "12", "--days", "7", "--port", str(port), "--webhook-url", hook,
             "--redirect-uri", redirect, "--token-lifetime", "3", "--events-per-minute", "0"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                try:
                    httpx.get(url + "/_sim/stats").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            query = {
                "response_type": "code",
                "client_id": DEFAULT_CLIENT_ID,
                "redirect_uri": redirect,
                "scope": "locations.readonly oauth.write",
            }
            approved = httpx.post(url + "/oauth/chooselocation", params=query,
                                  data={"target": "company"})  # fmt: skip
            code = parse_qs(urlparse(approved.headers["location"]).query)["code"][0]
            installed = httpx.post(url + "/oauth/token", headers={"Version": "v3"}, data={
                "clientId": query["client_id"], "clientSecret": secret, "code": code,
                "grantType": "authorization_code", "userType": "Company", "redirectUri": redirect,
            })  # fmt: skip
            assert installed.status_code == 200, installed.text
            company = installed.json()
            assert company["approvedLocations"] == [FIRST, f"{FIRST}-2"]
            assert company["expiresIn"] == 3
            minted = httpx.post(url + "/oauth/locationToken",
                                headers={"Authorization": f"Bearer {company['accessToken']}",
                                         "Version": "2021-07-28"},
                                data={"companyId": company["companyId"],
                                      "locationId": f"{FIRST}-2"})  # fmt: skip
            access = minted.json()["access_token"]
            headers = {"Authorization": f"Bearer {access}", "Version": "2021-07-28"}
            shown = httpx.get(f"{url}/locations/{FIRST}-2", headers=headers)
            assert shown.json()["location"]["companyId"] == company["companyId"]
            assert httpx.get(f"{url}/locations/{FIRST}", headers=headers).status_code == 403

            events = inbox.bodies("INSTALL", count=3, timeout=20)
            assert {e.get("locationId") for e in events} >= {None, FIRST, f"{FIRST}-2"}
            key = load_or_create_signing_key(tmp_path / "simulator" / "ed25519.pem")
            for raw, signature in inbox.received:
                key.public_key().verify(base64.b64decode(signature), raw)
            time.sleep(3.2)
            assert httpx.get(f"{url}/locations/{FIRST}-2", headers=headers).status_code == 401
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            proc.kill()
    logged = log.read_text()
    assert secret not in logged and company["accessToken"] not in logged and access not in logged
