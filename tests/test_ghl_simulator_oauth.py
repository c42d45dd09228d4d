"""The simulator speaks GHL's Marketplace OAuth as GHL's specs say, over real HTTP: the
consent page and its redirect, the token endpoint in both dialects (v2 snake_case, v3
camelCase) with rotating single-use refresh tokens, an agency's installed locations and
per-location tokens, INSTALL / UNINSTALL webhooks signed and delivered, and GHL's own SDK
exchanging and refreshing against it. Every answer validates against the matching spec."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from highlevel import HighLevel
from highlevel.error import GHLError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from ghl_simulator import Studio, WebhookSender
from ghl_simulator.agency import AgencyApp, create_agency_app, generate_agency
from ghl_simulator.api import DEFAULT_TOKEN
from ghl_simulator.oauth import MarketplaceApp
from tests.ghl_simulator_harness import WebhookInbox
from tests.receiver_harness import serving

SPECS = Path(__file__).parent / "data" / "ghl" / "openapi"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
REDIRECT = "http://127.0.0.1:8090/oauth/callback"
APP = MarketplaceApp(client_secret="s3cret-for-tests", redirect_uris=(REDIRECT,))
SCOPE = "contacts.readonly locations.readonly oauth.readonly oauth.write"
AGENCY_VERSIONS = {"v2": "2021-07-28", "v3": "v3"}
INSTALLED = {"v2": "/oauth/installedLocations", "v3": "/oauth/installed-locations"}
LOCATION_TOKEN = {"v2": "/oauth/locationToken", "v3": "/oauth/location-token"}
FIELDS = {  # the token request's field names in each dialect
    "v2": {"client_id": "client_id", "client_secret": "client_secret", "grant_type":
           "grant_type", "code": "code", "refresh_token": "refresh_token",
           "user_type": "user_type", "redirect_uri": "redirect_uri"},
    "v3": {"client_id": "clientId", "client_secret": "clientSecret", "grant_type": "grantType",
           "code": "code", "refresh_token": "refreshToken", "user_type": "userType",
           "redirect_uri": "redirectUri"},
}  # fmt: skip
ANSWER = {  # the answer's token fields in each dialect
    "v2": ("access_token", "refresh_token", "expires_in"),
    "v3": ("accessToken", "refreshToken", "expiresIn"),
}


# --- the specs ---------------------------------------------------------------------------


def spec_uri(version: str) -> str:
    return f"https://ghl.test/{version}/openapi/oauth.json"


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Each version's OAuth spec and its common schemas, under URIs that resolve
    `../common/common-schemas.json` to that version's file."""
    resources = []
    for version, folder in (("v2", SPECS), ("v3", SPECS / "v3")):
        resources.append((spec_uri(version), json.loads((folder / "oauth.json").read_text())))
        common = json.loads((folder / "common-schemas.json").read_text())
        resources.append((f"https://ghl.test/{version}/common/common-schemas.json", common))
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT4)) for uri, doc in resources
    )


def check(registry: Registry, version: str, path: str, method: str, answer: httpx.Response) -> None:
    """`answer` is one the `version` spec documents for (path, method), in its schema."""
    status = str(answer.status_code)
    documented = registry.contents(spec_uri(version))["paths"][path][method]["responses"]
    assert status in documented, f"{path} {status} undocumented: {answer.text}"
    escaped = path.replace("~", "~0").replace("/", "~1")
    pointer = f"/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
    schema = {"$ref": f"{spec_uri(version)}#{pointer}"}
    OAS30Validator(schema, registry=registry).validate(answer.json())


def unauthorized(registry: Registry, answer: httpx.Response) -> None:
    """GHL's 401 body (the specs' UnauthorizedDTO) for an expired or revoked token."""
    assert answer.status_code == 401
    schema = {"$ref": "https://ghl.test/v2/common/common-schemas.json#/components/schemas/"
                      "UnauthorizedDTO"}  # fmt: skip
    OAS30Validator(schema, registry=registry).validate(answer.json())
    assert answer.json()["message"] == "Invalid token: access token is invalid"


# --- the simulated agency and a webhook receiver -------------------------------------------


@pytest.fixture(scope="module")
def studios() -> list[Studio]:
    return generate_agency("oauth-studio", 3, trainers=2, clients=12, days=14, seed=5, now=NOW)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[WebhookInbox, str]]:
    inbox = WebhookInbox()
    with inbox.serving() as url:
        yield inbox, url


def agency(studios: list[Studio], on_event: Any = None, **options: Any) -> AgencyApp:
    return create_agency_app(studios, app=APP, rate_limit=None, on_event=on_event, **options)


@pytest.fixture(scope="module")
def sim(
    studios: list[Studio], key: Ed25519PrivateKey, hooks: tuple[WebhookInbox, str]
) -> Iterator[str]:
    sender = WebhookSender(hooks[1], key, duplicate_rate=0, reorder_rate=0,
                           rate_per_second=None, burst_every=0)  # fmt: skip
    sender.start()
    try:
        with serving(agency(studios, lambda body: sender.enqueue(orjson.dumps(body)))) as url:
            yield url
    finally:
        sender.stop()


@pytest.fixture(scope="module")
def brief(studios: list[Studio]) -> Iterator[str]:
    """An agency whose codes and access tokens last a second."""
    with serving(agency(studios, token_lifetime=1, code_lifetime=1)) as url:
        yield url


# --- speaking to it ----------------------------------------------------------------------


def consent_query(**overrides: str) -> dict[str, str]:
    query = {"response_type": "code", "client_id": APP.client_id, "redirect_uri": REDIRECT,
             "scope": SCOPE, "state": "state-42"}  # fmt: skip
    return {**query, **overrides}


def approve(url: str, target: str, path: str = "/oauth/chooselocation") -> str:
    """Approve the consent page for `target` without a browser; the code it redirects with."""
    answer = httpx.post(url + path, params=consent_query(), data={"target": target})
    assert answer.status_code == 302, answer.text
    redirected = urlparse(answer.headers["location"])
    assert f"{redirected.scheme}://{redirected.netloc}{redirected.path}" == REDIRECT
    query = parse_qs(redirected.query)
    assert query["state"] == ["state-42"]
    return query["code"][0]


def token(url: str, version: str, **fields: str) -> httpx.Response:
    """POST /oauth/token, form-encoded, in `version`'s field names and Version header."""
    names = FIELDS[version]
    form = {names["client_id"]: APP.client_id, names["client_secret"]: APP.client_secret}
    form |= {names[k]: v for k, v in fields.items()}
    headers = {"Version": "v3"} if version == "v3" else {}
    return httpx.post(url + "/oauth/token", data=form, headers=headers, timeout=10)


def exchange(url: str, version: str, code: str, user_type: str = "Location") -> httpx.Response:
    return token(url, version, grant_type="authorization_code", code=code,
                 user_type=user_type, redirect_uri=REDIRECT)  # fmt: skip


def refresh(url: str, version: str, refresh_token: str) -> httpx.Response:
    return token(url, version, grant_type="refresh_token", refresh_token=refresh_token,
                 user_type="Location")  # fmt: skip


def location(url: str, access: str, location_id: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access}", "Version": "2021-07-28"}
    return httpx.get(f"{url}/locations/{location_id}", headers=headers, timeout=10)


def agency_call(
    url: str, version: str, method: str, path: str, access: str, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access}", "Version": AGENCY_VERSIONS[version]}
    return httpx.request(method, url + path, headers=headers, timeout=10, **kw)


# --- consent -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/oauth/chooselocation", "/v2/oauth/chooselocation"])
def test_the_consent_page_lists_the_agency_and_redirects_with_a_code(
    sim: str, studios: list[Studio], path: str
) -> None:
    page = httpx.get(sim + path, params=consent_query())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for studio in studios:
        assert studio.location["name"] in page.text and studio.location_id in page.text
    assert "Fitness Group: the agency" in page.text and "<form method='post'" in page.text
    code = approve(sim, studios[0].location_id, path)
    assert len(code) >= 32


@pytest.mark.parametrize(("change", "problem"), [
    ({"client_id": "nope-app"}, "No Marketplace app has this client_id"),
    ({"redirect_uri": "https://evil.example/callback"}, "not registered for the app"),
    ({"scope": "contacts.readonly payments.write"}, "does not have these scopes"),
    ({"response_type": "token"}, "response_type must be code"),
])  # fmt: skip
def test_the_consent_page_refuses_what_the_app_did_not_register(
    sim: str, studios: list[Studio], change: dict[str, str], problem: str
) -> None:
    for method in ("GET", "POST"):
        answer = httpx.request(method, sim + "/oauth/chooselocation",
                               params=consent_query(**change),
                               data={"target": studios[0].location_id})  # fmt: skip
        assert answer.status_code == 400 and "location" not in answer.headers
        assert problem in answer.text


# --- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_code_then_refresh_then_refresh_again(
    sim: str, studios: list[Studio], registry: Registry, version: str
) -> None:
    access_key, refresh_key, expires_key = ANSWER[version]
    studio = studios[1].location_id
    first = exchange(sim, version, approve(sim, studio))
    assert first.status_code == 200, first.text
    check(registry, version, "/oauth/token", "post", first)
    pair = first.json()
    assert pair[expires_key] == 86399 and pair["userType"] == "Location"
    assert pair["locationId"] == studio and pair["companyId"] == studios[0].location["companyId"]
    assert pair["scope"] == SCOPE and pair["userId"]
    tokens = [pair]
    for _ in range(2):
        again = refresh(sim, version, tokens[-1][refresh_key])
        assert again.status_code == 200, again.text
        check(registry, version, "/oauth/token", "post", again)
        tokens.append(again.json())
    assert len({t[access_key] for t in tokens}) == 3 == len({t[refresh_key] for t in tokens})
    for pair in tokens:  # every access token works until it expires, on its own studio only
        assert location(sim, pair[access_key], studio).status_code == 200
        assert location(sim, pair[access_key], studios[0].location_id).status_code == 403
    for spent in tokens[:2]:  # a refresh token is single-use
        reused = refresh(sim, version, spent[refresh_key])
        assert reused.status_code == 400
        check(registry, version, "/oauth/token", "post", reused)
        assert reused.json()["error"] == "invalid_grant"
        assert reused.json()["message"] == "Invalid grant: refresh token is invalid"
    assert refresh(sim, version, tokens[-1][refresh_key]).status_code == 200


def test_a_code_is_single_use_and_bound_to_its_client_and_redirect(
    sim: str, studios: list[Studio], registry: Registry
) -> None:
    code = approve(sim, studios[0].location_id)
    wrong_secret = token(sim, "v2", grant_type="authorization_code", code=code,
                         redirect_uri=REDIRECT, client_secret="guessed")  # fmt: skip
    assert wrong_secret.status_code == 401
    check(registry, "v2", "/oauth/token", "post", wrong_secret)
    wrong_redirect = token(sim, "v3", grant_type="authorization_code", code=code,
                           redirect_uri="http://127.0.0.1:9999/elsewhere")  # fmt: skip
    assert wrong_redirect.status_code == 400
    check(registry, "v3", "/oauth/token", "post", wrong_redirect)
    assert wrong_redirect.json()["error"] == "invalid_grant"
    assert exchange(sim, "v3", code).status_code == 200
    used = exchange(sim, "v2", code)
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"
    check(registry, "v2", "/oauth/token", "post", used)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_each_dialect_takes_only_its_own_field_names(
    sim: str, studios: list[Studio], registry: Registry, version: str
) -> None:
    other = "v3" if version == "v2" else "v2"
    names = FIELDS[other]
    form = {names["client_id"]: APP.client_id, names["client_secret"]: APP.client_secret,
            names["grant_type"]: "authorization_code",
            names["code"]: approve(sim, studios[0].location_id),
            names["redirect_uri"]: REDIRECT}  # fmt: skip
    headers = {"Version": "v3"} if version == "v3" else {}
    answer = httpx.post(sim + "/oauth/token", data=form, headers=headers)
    assert answer.status_code == 400
    check(registry, version, "/oauth/token", "post", answer)
    assert answer.json()["message"] == f"Missing parameter: {FIELDS[version]['client_id']}"


def test_v3_takes_json_too_and_a_code_gives_only_its_own_user_type(
    sim: str, studios: list[Studio], registry: Registry
) -> None:
    code = approve(sim, studios[0].location_id)
    as_company = exchange(sim, "v2", code, user_type="Company")
    assert as_company.status_code == 400
    check(registry, "v2", "/oauth/token", "post", as_company)
    body = {"clientId": APP.client_id, "clientSecret": APP.client_secret, "code": code,
            "grantType": "authorization_code", "redirectUri": REDIRECT}  # fmt: skip
    answer = httpx.post(sim + "/oauth/token", json=body, headers={"Version": "v3"})
    assert answer.status_code == 200, answer.text
    check(registry, "v3", "/oauth/token", "post", answer)
    assert answer.json()["userType"] == "Location"


def test_codes_and_access_tokens_expire(
    brief: str, studios: list[Studio], registry: Registry
) -> None:
    studio = studios[0].location_id
    stale_code = approve(brief, studio)
    fresh = exchange(brief, "v3", approve(brief, studio))
    assert fresh.status_code == 200 and fresh.json()["expiresIn"] == 1
    access = fresh.json()["accessToken"]
    assert location(brief, access, studio).status_code == 200
    time.sleep(1.3)
    expired_code = exchange(brief, "v2", stale_code)
    assert expired_code.status_code == 400 and expired_code.json()["error"] == "invalid_grant"
    unauthorized(registry, location(brief, access, studio))
    renewed = refresh(brief, "v3", fresh.json()["refreshToken"])  # the refresh token lives on
    assert renewed.status_code == 200
    assert location(brief, renewed.json()["accessToken"], studio).status_code == 200


def test_static_tokens_keep_working(sim: str, studios: list[Studio]) -> None:
    assert location(sim, DEFAULT_TOKEN, studios[0].location_id).status_code == 200
    assert location(sim, DEFAULT_TOKEN, studios[1].location_id).status_code == 403
    unknown = location(sim, "never-issued", studios[0].location_id)
    assert unknown.status_code == 401 and unknown.json()["statusCode"] == 401


# --- an agency install -------------------------------------------------------------------


def test_an_agency_install_gives_a_token_per_location(
    sim: str, studios: list[Studio], registry: Registry, hooks: tuple[WebhookInbox, str]
) -> None:
    company = studios[0].location["companyId"]
    installed = exchange(sim, "v2", approve(sim, "company"), user_type="Company")
    assert installed.status_code == 200, installed.text
    check(registry, "v2", "/oauth/token", "post", installed)
    agency_token = installed.json()
    ids = [s.location_id for s in studios]
    assert agency_token["userType"] == "Company" and "locationId" not in agency_token
    assert agency_token["companyId"] == company and agency_token["approvedLocations"] == ids
    access = agency_token["access_token"]
    query = {"companyId": company, "appId": APP.app_id, "isInstalled": "true"}
    for version in ("v2", "v3"):
        listed = agency_call(sim, version, "GET", INSTALLED[version], access, params=query)
        assert listed.status_code == 200, listed.text
        check(registry, version, INSTALLED[version], "get", listed)
        rows = listed.json()["locations" if version == "v2" else "items"]
        assert [r["_id"] for r in rows] == ids and all(r["isInstalled"] for r in rows)
    paged = agency_call(sim, "v3", "GET", INSTALLED["v3"], access,
                        params={**query, "pageSize": 2})  # fmt: skip
    more = paged.json()["pagination"]
    assert more["hasNextPage"] and more["totalRecords"] == 3
    rest = agency_call(
        sim,
        "v3",
        "GET",
        INSTALLED["v3"],
        access,
        params={**query, "pageSize": 2, "pageToken": more["nextPageToken"]},
    )
    assert [r["_id"] for r in rest.json()["items"]] == ids[2:]  # fmt: skip
    other_app = agency_call(sim, "v3", "GET", INSTALLED["v3"], access,
                            params={**query, "appId": "0000"})  # fmt: skip
    assert other_app.status_code == 404
    check(registry, "v3", INSTALLED["v3"], "get", other_app)

    minted = {}
    for version, studio in (("v2", ids[0]), ("v3", ids[2])):
        answer = agency_call(sim, version, "POST", LOCATION_TOKEN[version], access,
                             data={"companyId": company, "locationId": studio})  # fmt: skip
        assert answer.status_code == 200, answer.text
        check(registry, version, LOCATION_TOKEN[version], "post", answer)
        body = answer.json()
        assert body["locationId"] == studio and body["appId"] == APP.app_id
        assert ("refreshToken" in body) == (version == "v3") and "refresh_token" not in body
        minted[studio] = body[ANSWER[version][0]]
    for studio, location_access in minted.items():
        assert location(sim, location_access, studio).status_code == 200
        other = next(i for i in ids if i != studio)
        assert location(sim, location_access, other).status_code == 403
        refused = agency_call(sim, "v2", "GET", INSTALLED["v2"], location_access, params=query)
        assert refused.status_code == 401
        check(registry, "v2", INSTALLED["v2"], "get", refused)
    assert location(sim, access, ids[0]).status_code == 401  # a Company token reads no studio

    events = hooks[0].bodies("INSTALL", count=4)
    agency_wide = [e for e in events if e.get("installType") == "Company"]
    assert agency_wide and agency_wide[-1]["companyId"] == company
    assert {e["locationId"] for e in events if "locationId" in e} >= set(ids)
    assert all(e["appId"] == APP.app_id and e["webhookId"] and e["timestamp"] for e in events)


def test_uninstall_sends_a_signed_uninstall_and_revokes_the_tokens(
    sim: str,
    studios: list[Studio],
    registry: Registry,
    hooks: tuple[WebhookInbox, str],
    key: Ed25519PrivateKey,
) -> None:
    studio = studios[2].location_id
    pair = exchange(sim, "v2", approve(sim, studio)).json()
    company = exchange(sim, "v3", approve(sim, "company"), user_type="Company").json()
    assert location(sim, pair["access_token"], studio).status_code == 200
    gone = httpx.post(sim + "/_sim/uninstall", json={"locationId": studio})
    assert gone.status_code == 200 and gone.json()["revoked"] >= 2

    (uninstall,) = [e for e in hooks[0].bodies("UNINSTALL") if e["locationId"] == studio]
    assert uninstall["type"] == "UNINSTALL" and uninstall["appId"] == APP.app_id
    raw, signature = next(
        (b, s) for b, s in hooks[0].received if orjson.loads(b).get("type") == "UNINSTALL"
    )
    key.public_key().verify(base64.b64decode(signature), raw)  # raises if not GHL-signed

    unauthorized(registry, location(sim, pair["access_token"], studio))
    revoked = refresh(sim, "v2", pair["refresh_token"])
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
    refused = agency_call(
        sim,
        "v3",
        "POST",
        LOCATION_TOKEN["v3"],
        company["accessToken"],
        data={"companyId": company["companyId"], "locationId": studio},
    )
    assert refused.status_code == 400  # fmt: skip
    check(registry, "v3", LOCATION_TOKEN["v3"], "post", refused)
    listed = agency_call(
        sim,
        "v2",
        "GET",
        INSTALLED["v2"],
        company["accessToken"],
        params={"companyId": company["companyId"], "appId": APP.app_id},
    )
    shown = {row["_id"]: row["isInstalled"] for row in listed.json()["locations"]}  # fmt: skip
    assert shown[studio] is False and shown[studios[0].location_id] is True
    assert studio not in httpx.get(sim + "/_sim/installations").json()["installed"]
    # a reinstall works again
    again = exchange(sim, "v3", approve(sim, studio))
    assert location(sim, again.json()["accessToken"], studio).status_code == 200


# --- GHL's own SDK -----------------------------------------------------------------------


async def sdk_flow(url: str, code: str, location_id: str) -> dict[str, Any]:
    """What an app built on GHL's SDK does: exchange the code, refresh, refresh again."""
    ghl = HighLevel(client_id=APP.client_id, client_secret=APP.client_secret)
    ghl.http_client.base_url = url
    try:
        first = await ghl.oauth.get_access_token({
            "clientId": APP.client_id, "clientSecret": APP.client_secret,
            "grantType": "authorization_code", "code": code, "userType": "Location",
            "redirectUri": REDIRECT,
        })  # fmt: skip
        second = await ghl.oauth.refresh_token(
            first["refreshToken"], APP.client_id, APP.client_secret, "refresh_token", "Location"
        )
        third = await ghl.oauth.refresh_token(
            second["refreshToken"], APP.client_id, APP.client_secret, "refresh_token", "Location"
        )
        try:
            await ghl.oauth.refresh_token(
                first["refreshToken"], APP.client_id, APP.client_secret, "refresh_token", "Location"
            )
        except GHLError as error:
            reused: Any = (error.status_code, error.response)
        # the SDK's own refresh, from its session storage, when a stored token is stale
        await ghl.session_storage.set_session(location_id, {**third, "expiresIn": 1})
        shown = await ghl.locations.get_location(location_id)
        stored = await ghl.session_storage.get_session(location_id)
    finally:
        await ghl.http_client.aclose()
    return {"tokens": [first, second, third], "reused": reused, "shown": shown,
            "stored": stored}  # fmt: skip


def test_ghls_sdk_exchanges_and_refreshes(sim: str, studios: list[Studio]) -> None:  # fmt: skip
    studio = studios[1].location_id
    seen = asyncio.run(sdk_flow(sim, approve(sim, studio), studio))
    tokens = seen["tokens"]
    assert all(t["locationId"] == studio and t["expiresIn"] == 86399 for t in tokens)
    assert len({t["accessToken"] for t in tokens}) == 3
    assert seen["reused"][0] == 400 and seen["reused"][1]["error"] == "invalid_grant"
    assert seen["shown"]["location"]["id"] == studio
    # it refreshed the stale pair itself, with the third refresh token, and uses the new one
    assert seen["stored"]["accessToken"] not in {t["accessToken"] for t in tokens}
    assert location(sim, seen["stored"]["accessToken"], studio).status_code == 200
