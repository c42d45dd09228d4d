"""The HTTP face of the simulator's OAuth (`oauth.py`), in both of GHL's dialects.

- `GET /oauth/chooselocation` (and `/v2/oauth/chooselocation`, the marketplace host's path):
  the consent page, listing the agency's locations and the agency itself; its Approve button
  POSTs the same path, which redirects (302) to `redirect_uri?code=...&state=...`. Tests and
  the stack approve without a browser by POSTing the query's fields as a form with `target`
  (a location id, or `company`). An unknown client_id or an unregistered redirect_uri gets
  an error page and no redirect.
- `POST /oauth/token`: v2 (no `Version`, or a dated one) takes snake_case form fields and
  answers snake_case (`access_token`, `expires_in`...); `Version: v3` takes camelCase
  (`clientId`, `grantType`, `refreshToken`..., form or JSON) and answers camelCase.
- Agency calls with a Company token: `GET /oauth/installedLocations` and
  `POST /oauth/locationToken` (`Version: 2021-07-28`), `GET /oauth/installed-locations` and
  `POST /oauth/location-token` (`Version: v3`, AIP paging and error envelopes). v2's location
  token comes without a refresh token, v3's with one, as their specs say.
- `POST /_sim/uninstall` (`{"locationId"}` or `{"companyId"}`) uninstalls the app there;
  `GET /_sim/installations` lists where it is installed.
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ghl_simulator.api import V3, ApiError, json_response, unprocessable
from ghl_simulator.oauth import AuthorizationServer, Grant

AGENCY_VERSION = "2021-07-28"  # the v2 spec's Version for the agency calls
# The token request's fields: v2's form names, and v3's.
V2_FIELDS = {
    "client_id": "client_id",
    "client_secret": "client_secret",
    "grant_type": "grant_type",
    "code": "code",
    "refresh_token": "refresh_token",
    "user_type": "user_type",
    "redirect_uri": "redirect_uri",
}
V3_FIELDS = {
    "client_id": "clientId",
    "client_secret": "clientSecret",
    "grant_type": "grantType",
    "code": "code",
    "refresh_token": "refreshToken",
    "user_type": "userType",
    "redirect_uri": "redirectUri",
}
# Answers: v2's names -> v3's.
V3_ANSWER_NAMES = {
    "access_token": "accessToken",
    "token_type": "tokenType",
    "expires_in": "expiresIn",
    "refresh_token": "refreshToken",
}
CONSENT_FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state")
UNSIMULATED_INSTALL_FILTERS = ("onTrial", "planId")


class AipError(Exception):
    """v3's AIP error envelope (the installed-locations call's 400 and 404)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def form_fields(request: Request) -> dict[str, str]:
    """A form-encoded (or, for v3's token call, JSON) body; the first of repeated fields."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "Request body must be JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return {str(k): str(v) for k, v in body.items() if v is not None}
    fields: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else ""


def token_answer(grant: Grant, access: str, refresh: str | None, lifetime: float, v3: bool,
                 **extra: Any) -> dict[str, Any]:  # fmt: skip
    """GetAccessCodeSuccessfulResponseDto (v2) / GetAccessTokenSuccessfulResponseDto (v3)."""
    answer: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": round(lifetime),
        "scope": grant.scope,
        **extra,
        "userId": grant.user_id,
    }
    if refresh is not None:
        answer["refresh_token"] = refresh
    if grant.location_id is not None:
        answer["locationId"] = grant.location_id
    else:
        answer.update(
            approvedLocations=list(grant.approved),
            isBulkInstallation=True,
            installToFutureLocations=False,
            approveAllLocations=True,
        )
    return {V3_ANSWER_NAMES.get(k, k): v for k, v in answer.items()} if v3 else answer


def oauth_routes(server: AuthorizationServer) -> list[Route]:
    """The OAuth endpoints and the install controls, for the agency's app."""
    agency, app = server.agency, server.app

    # --- consent ---------------------------------------------------------------------

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
            status_code=status,
        )

    def refusal(params: dict[str, str]) -> HTMLResponse | None:
        if params.get("response_type") != "code":
            problem = "response_type must be code."
        else:
            problem = server.check_request(
                params.get("client_id", ""), params.get("redirect_uri", ""),
                params.get("scope", ""),
            )  # fmt: skip
        if not problem:
            return None
        return page("Cannot install this app", f"<p id='error'>{html.escape(problem)}</p>", 400)

    async def choose_location(request: Request) -> Response:
        """The consent page (GET) and its approval (POST)."""
        params = dict(request.query_params)
        if request.method == "POST":
            raw = await request.body()
            params |= dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if (refused := refusal(params)) is not None:
            return refused
        if request.method == "GET":
            return consent_page(request.url.path, params)
        target = params.get("target", "")
        try:
            code = server.approve(target, params["redirect_uri"], params["scope"])
        except ValueError:
            return page("Cannot install this app", "<p id='error'>Choose a location.</p>", 400)
        answer = {"code": code} | ({"state": params["state"]} if "state" in params else {})
        uri = params["redirect_uri"]
        return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{urlencode(answer)}", 302)

    def consent_page(path: str, params: dict[str, str]) -> HTMLResponse:
        hidden = "".join(
            f"<input type='hidden' name='{name}' value='{html.escape(params[name], quote=True)}'>"
            for name in CONSENT_FIELDS
            if name in params
        )
        choices = [(f"location:{i}", i, f"{s['name']} ({s['address']})")
                   for i, s in agency.locations.items()]  # fmt: skip
        choices.append(("company", "company", f"{agency.name}: the agency, all its locations"))
        options = "".join(
            f"<p><label><input type='radio' id='{html.escape(key, quote=True)}' name='target' "
            f"value='{html.escape(value, quote=True)}'{' checked' if n == 0 else ''}> "
            f"{html.escape(label)}</label></p>"
            for n, (key, value, label) in enumerate(choices)
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in params["scope"].split())
        return page(
            "Choose an account",
            f"<p>The app <b>{html.escape(app.client_id)}</b> asks for:</p><ul>{scopes}</ul>"
            f"<form method='post' action='{html.escape(path, quote=True)}'>{hidden}{options}"
            "<button type='submit' id='approve'>Approve</button></form>",
        )

    # --- tokens ----------------------------------------------------------------------

    async def token(request: Request) -> Response:
        v3 = request.headers.get("version") == V3
        names = V3_FIELDS if v3 else V2_FIELDS
        try:
            form = await form_fields(request)

            def field(name: str, required: bool = False) -> str | None:
                value = form.get(names[name]) or None
                if required and value is None:
                    raise ApiError(400, f"Missing parameter: {names[name]}")
                return value

            client_id, secret = field("client_id", True), field("client_secret", True)
            grant_type, user_type = field("grant_type", True), field("user_type")
            if grant_type not in ("authorization_code", "refresh_token"):
                raise ApiError(400, f"Invalid parameter: {names['grant_type']}")
            if user_type not in (None, "Location", "Company"):
                raise ApiError(400, f"Invalid parameter: {names['user_type']}")
            server.check_client(client_id or "", secret or "")
            if grant_type == "authorization_code":
                grant, access, refresh = server.exchange_code(
                    field("code", True) or "", field("redirect_uri"), user_type
                )
            else:
                grant, access, refresh = server.refresh(field("refresh_token", True) or "",
                                                        user_type)  # fmt: skip
        except ApiError as error:
            return json_response(error.body(), error.status)
        answer = token_answer(grant, access, refresh, server.token_lifetime, v3,
                              userType=grant.user_type, companyId=grant.company_id)  # fmt: skip
        return json_response(answer)

    # --- the agency's calls ----------------------------------------------------------

    Handler = Callable[[Request, Grant, bool], Awaitable[Response]]

    def agency_call(path: str, handler: Handler, scope: str, v3: bool, method: str) -> Route:
        version = V3 if v3 else AGENCY_VERSION

        async def run(request: Request) -> Response:
            try:
                grant = server.company_grant(bearer(request), scope)
                if request.headers.get("version") != version:
                    raise ApiError(400, f"Version header must be {version} for this endpoint")
                return await handler(request, grant, v3)
            except AipError as error:
                body = {"error": {"code": error.code, "message": error.message}}
                return json_response(body, error.status)
            except ApiError as error:
                if v3 and method == "GET" and error.status == 400:  # AIP on installed-locations
                    body = {"error": {"code": "INVALID_ARGUMENT", "message": error.message}}
                    return json_response(body, 400)
                return json_response(error.body(), error.status)

        return Route(path, run, methods=[method])

    def own_company(grant: Grant, company_id: str) -> None:
        if company_id != grant.company_id:
            raise ApiError(401, "The token does not have access to this company.", "Unauthorized")

    async def installed_locations(request: Request, grant: Grant, v3: bool) -> Response:
        params = dict(request.query_params)
        for name in ("companyId", "appId"):
            if not params.get(name):
                if v3:
                    raise AipError(400, "INVALID_ARGUMENT", f"{name} is required")
                raise unprocessable(f"{name} should not be empty")
        own_company(grant, params["companyId"])
        if params["appId"] != app.app_id:
            if v3:
                raise AipError(404, "RESOURCE_NOT_FOUND",
                               f"The requested App '{params['appId']}' was not found.")  # fmt: skip
            raise ApiError(400, "App not found")
        asked = [name for name in UNSIMULATED_INSTALL_FILTERS if name in params]
        if asked:
            raise ApiError(400, f"The simulator does not support {', '.join(asked)}")
        installed = server.installations()
        wanted = params.get("isInstalled")
        query = params.get("query", "").lower()
        rows = []
        for location_id, shown in agency.locations.items():
            row: dict[str, Any] = {"_id": location_id, "name": shown["name"],
                                   "address": shown["address"],
                                   "isInstalled": location_id in installed}  # fmt: skip
            if row["isInstalled"]:
                row.update(versionId=app.version_id, installedAt=installed[location_id])
            if (
                (wanted is None or str(row["isInstalled"]).lower() == wanted.lower())
                and query in shown["name"].lower()
                and params.get("locationId") in (None, location_id)
                and params.get("versionId") in (None, app.version_id)
            ):
                rows.append(row)
        skip, size = paging(params, v3)
        found = rows[skip : skip + size]
        if not v3:
            return json_response(
                {"locations": found, "count": len(rows), "installToFutureLocations": False}
            )
        pagination: dict[str, Any] = {
            "totalRecords": len(rows),
            "hasNextPage": skip + size < len(rows),
            "hasPrevPage": skip > 0,
            "currentPageSize": len(found),
        }
        if pagination["hasNextPage"]:
            pagination["nextPageToken"] = page_token(skip + size)
        if skip > 0:
            pagination["prevPageToken"] = page_token(max(0, skip - size))
        applied = {k: params[k] for k in ("companyId", "isInstalled", "query") if k in params}
        return json_response({
            "items": found,
            "pagination": pagination,
            "metadata": {"filterApplied": applied, "sortApplied": {"name": "asc"}},
            "installToFutureLocations": False,
        })  # fmt: skip

    async def location_token(request: Request, grant: Grant, v3: bool) -> Response:
        form = await form_fields(request)
        for name in ("companyId", "locationId"):
            if not form.get(name):
                raise unprocessable(f"{name} should not be empty")
        own_company(grant, form["companyId"])
        minted, access, refresh = server.location_token(grant, form["locationId"])
        answer = token_answer(minted, access, refresh if v3 else None, server.token_lifetime,
                              v3, appId=app.app_id, versionId=app.version_id)  # fmt: skip
        return json_response(answer)

    # --- controls --------------------------------------------------------------------

    async def uninstall(request: Request) -> Response:
        spec = orjson.loads(await request.body() or b"{}")
        try:
            revoked = server.uninstall(
                location_id=spec.get("locationId"), company_id=spec.get("companyId")
            )
        except ValueError as exc:
            return json_response({"statusCode": 404, "message": str(exc)}, 404)
        return json_response({"revoked": revoked})

    async def installations(request: Request) -> Response:
        return json_response({"installed": server.installations(), "companyId": agency.company_id})

    return [
        Route("/oauth/chooselocation", choose_location, methods=["GET", "POST"]),
        Route("/v2/oauth/chooselocation", choose_location, methods=["GET", "POST"]),
        Route("/oauth/token", token, methods=["POST"]),
        agency_call("/oauth/installedLocations", installed_locations, "oauth.readonly",
                    False, "GET"),
        agency_call("/oauth/installed-locations", installed_locations, "oauth.readonly",
                    True, "GET"),
        agency_call("/oauth/locationToken", location_token, "oauth.write", False, "POST"),
        agency_call("/oauth/location-token", location_token, "oauth.write", True, "POST"),
        Route("/_sim/uninstall", uninstall, methods=["POST"]),
        Route("/_sim/installations", installations),
    ]  # fmt: skip


def paging(params: dict[str, str], v3: bool) -> tuple[int, int]:
    """(skip, page size): v2's skip and limit, v3's pageToken and pageSize (1..100)."""
    try:
        if not v3:
            return max(0, int(params.get("skip", "0"))), max(1, int(params.get("limit", "20")))
        size = float(params.get("pageSize", "20"))
        skip = 0
        if params.get("pageToken"):
            skip = int(orjson.loads(base64.urlsafe_b64decode(params["pageToken"] + "=="))["skip"])
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        if v3:
            raise AipError(400, "INVALID_ARGUMENT", "pageSize or pageToken is invalid") from None
        raise ApiError(400, "skip and limit must be whole numbers") from None
    if not 1 <= size <= 100 or size != int(size) or skip < 0:
        raise AipError(400, "INVALID_ARGUMENT", "pageSize must be between 1 and 100")
    return skip, int(size)


def page_token(skip: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"skip": skip})).decode().rstrip("=")
