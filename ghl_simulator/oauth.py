"""GHL's Marketplace OAuth, as the simulator's authorization server: the app's credentials,
the installs an agency approved, and the codes and tokens they were given.

The rules are GHL's (`shared/ghl/oauth/Authorization.md`, `openapi/oauth.json` and
`openapi/v3/oauth.json`): a code is single-use and short-lived and bound to its redirect
URI; an access token lasts a day (`expires_in` 86399) unless told otherwise; a refresh token
lasts a year but is single-use, each refresh returning a new pair (a refresh token used
twice is an `invalid_grant`, answered 400 as GHL's maintainers say it is); an agency's
Company token lists its installed locations and mints a Location token per location. An
uninstall revokes every token of that location, refresh tokens included. Installs and
uninstalls are announced as GHL's INSTALL / UNINSTALL events (`AppInstall.md`,
`AppUninstall.md`) through `on_event`. The HTTP face is `oauth_routes.py`.

Errors are raised as `api.ApiError` with GHL's bodies: 401 `Invalid token: access token is
invalid` for an expired or revoked token (the specs' UnauthorizedDTO), 400 `Invalid grant:
...` with `error: invalid_grant` for a bad code or refresh token, 401 for wrong client
credentials. Scopes are checked only where the agency calls need `oauth.readonly` /
`oauth.write`; the REST routes do not check them.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ghl_simulator.api import ApiError
from ghl_simulator.studio import hashed_id, iso_utc

UserType = Literal["Location", "Company"]
ACCESS_TOKEN_SECONDS = 86_399  # GHL's expires_in: a day
REFRESH_TOKEN_SECONDS = 365 * 86_400  # a refresh token lasts a year unless used
CODE_SECONDS = 600
# The app the stack installs unless configured otherwise. A GHL client id is
# `<appId>-<suffix>`; GHL's SDK reads the app id back from it that way.
DEFAULT_CLIENT_ID = "6578278e879ad2646715ba9c-trainusim"
DEFAULT_CLIENT_SECRET = "sim-client-secret"  # noqa: S105 - the local simulator's, not a secret
# The receiver's callback at its default port; `ghl-simulator` registers the configured port.
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1:8000/oauth/callback",)
DEFAULT_SCOPES = (
    "contacts.readonly",
    "calendars.readonly",
    "calendars/events.readonly",
    "conversations.readonly",
    "conversations/message.readonly",
    "conversations/message.write",
    "opportunities.readonly",
    "locations.readonly",
    "users.readonly",
    "oauth.readonly",
    "oauth.write",
)
EXPIRED_OR_REVOKED = "Invalid token: access token is invalid"  # the specs' UnauthorizedDTO
WRONG_AUTH_CLASS = (
    "This authClass type is not allowed to access this scope. "
    "Please reach out to the Platform team to get it added."
)


@dataclass(frozen=True)
class MarketplaceApp:
    """The Marketplace app as its developer configured it: credentials, redirect URIs,
    scopes (what it may ask for) and the version installs get."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    version_id: str = "6578278e879ad2646715ba9d"

    @property
    def app_id(self) -> str:
        return self.client_id.split("-")[0]


@dataclass(frozen=True)
class Grant:
    """What a code or token stands for: an install for a location, or for the agency."""

    user_type: UserType
    company_id: str
    location_id: str | None  # None for a Company grant
    scope: str
    user_id: str
    approved: tuple[str, ...] = ()  # a Company grant's locations


@dataclass
class Issued:
    """A code, access token or refresh token: its grant, expiry and state."""

    grant: Grant
    expires_at: float
    redirect_uri: str | None = None  # codes only
    spent: bool = False  # codes and refresh tokens are single-use
    revoked: bool = False


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def grant_error(what: str) -> ApiError:
    """GHL's answer to a bad code or refresh token (400, as its maintainers say)."""
    return ApiError(400, f"Invalid grant: {what} is invalid", "invalid_grant")


@dataclass
class Agency:
    """The company and its locations (id -> name and address), as the consent page and the
    installed-locations call show them."""

    company_id: str
    name: str
    locations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def owner_id(self) -> str:
        """The agency admin who approves installs."""
        return hashed_id(f"{self.company_id}/owner")


class AuthorizationServer:
    """Codes, tokens and installs; thread-safe. `static_tokens` (bearer -> location, like
    Private Integration tokens) never expire. `on_event` receives each INSTALL / UNINSTALL
    body as GHL would post it."""

    def __init__(
        self,
        app: MarketplaceApp,
        agency: Agency,
        *,
        static_tokens: Mapping[str, str] | None = None,
        token_lifetime: float = ACCESS_TOKEN_SECONDS,
        code_lifetime: float = CODE_SECONDS,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app, self.agency = app, agency
        self.static_tokens = dict(static_tokens or {})
        self.token_lifetime, self.code_lifetime = token_lifetime, code_lifetime
        self.on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, Issued] = {}
        self._access: dict[str, Issued] = {}
        self._refresh: dict[str, Issued] = {}
        self.installed: dict[str, str] = {}  # location or company id -> installedAt (ISO)

    # --- consent ---------------------------------------------------------------------

    def check_request(self, client_id: str, redirect_uri: str, scope: str) -> str:
        """The consent request's problem, in words, or "" when it is fine."""
        if client_id != self.app.client_id:
            return "No Marketplace app has this client_id."
        if redirect_uri not in self.app.redirect_uris:
            return "This redirect_uri is not registered for the app."
        asked = scope.split()
        if not asked:
            return "The scope parameter is empty."
        unknown = [s for s in asked if s not in self.app.scopes]
        if unknown:
            return f"The app does not have these scopes: {' '.join(unknown)}"
        return ""

    def approve(self, target: str, redirect_uri: str, scope: str) -> str:
        """The installer approved `target` (a location id, or `company`): a new code."""
        agency = self.agency
        if target == "company":
            grant = Grant("Company", agency.company_id, None, " ".join(scope.split()),
                          agency.owner_id, tuple(agency.locations))  # fmt: skip
        elif target in agency.locations:
            grant = Grant("Location", agency.company_id, target, " ".join(scope.split()),
                          agency.owner_id)  # fmt: skip
        else:
            raise ValueError(f"{target!r} is neither a location of the agency nor `company`")
        code = new_secret()
        with self._lock:
            expires = self._clock() + self.code_lifetime
            self._codes[code] = Issued(grant, expires, redirect_uri=redirect_uri)
        return code

    # --- the token endpoint ----------------------------------------------------------

    def check_client(self, client_id: str, client_secret: str) -> None:
        known = secrets.compare_digest(client_id.encode(), self.app.client_id.encode())
        right = secrets.compare_digest(client_secret.encode(), self.app.client_secret.encode())
        if not (known and right):
            raise ApiError(401, "Invalid client: client credentials are invalid", "Unauthorized")

    def exchange_code(
        self, code: str, redirect_uri: str | None, user_type: str | None
    ) -> tuple[Grant, str, str]:
        """(grant, access token, refresh token) for an unspent, unexpired code; the install
        is recorded and announced."""
        with self._lock:
            issued = self._codes.get(code)
            if (
                issued is None
                or issued.spent
                or issued.revoked
                or issued.expires_at <= self._clock()
            ):
                raise grant_error("authorization code")
            if redirect_uri != issued.redirect_uri:
                raise ApiError(
                    400,
                    "Invalid grant: redirect_uri does not match the authorization request",
                    "invalid_grant",
                )
            if user_type is not None and user_type != issued.grant.user_type:
                raise ApiError(400, f"Invalid parameter: user_type {user_type} for this code")
            issued.spent = True
            grant = issued.grant
            access, refresh = self._pair(grant)
            installed_at = iso_utc(datetime.fromtimestamp(self._clock(), UTC))
            newly = [grant.company_id] if grant.user_type == "Company" else []
            newly += [grant.location_id] if grant.location_id else list(grant.approved)
            for resource in newly:
                self.installed[resource] = installed_at
        self._announce_install(grant)
        return grant, access, refresh

    def refresh(self, token: str, user_type: str | None) -> tuple[Grant, str, str]:
        """A new pair for an unspent refresh token, which is spent from now on."""
        with self._lock:
            issued = self._refresh.get(token)
            if (
                issued is None
                or issued.spent
                or issued.revoked
                or issued.expires_at <= self._clock()
            ):
                raise grant_error("refresh token")
            if user_type is not None and user_type != issued.grant.user_type:
                raise ApiError(400, f"Invalid parameter: user_type {user_type} for this token")
            issued.spent = True
            return issued.grant, *self._pair(issued.grant)

    def _pair(self, grant: Grant) -> tuple[str, str]:
        """A new access and refresh token for `grant`. The caller holds the lock."""
        access, refresh, now = new_secret(), new_secret(), self._clock()
        self._access[access] = Issued(grant, now + self.token_lifetime)
        self._refresh[refresh] = Issued(grant, now + REFRESH_TOKEN_SECONDS)
        return access, refresh

    # --- bearer tokens ---------------------------------------------------------------

    def grant_of(self, token: str) -> Grant:
        """The grant behind a live access token; GHL's 401 otherwise."""
        if token in self.static_tokens:
            location = self.static_tokens[token]
            return Grant("Location", self.agency.company_id, location, "", "")
        with self._lock:
            issued = self._access.get(token)
            if issued is None:
                raise ApiError(401, "Invalid JWT", "Unauthorized")
            if issued.revoked or issued.expires_at <= self._clock():
                raise ApiError(401, EXPIRED_OR_REVOKED, "Unauthorized")
            return issued.grant

    def authorize(self, token: str) -> str:
        """The location a bearer token may read (the REST routes' check)."""
        grant = self.grant_of(token)
        if grant.location_id is None:
            raise ApiError(401, WRONG_AUTH_CLASS, "Unauthorized")
        return grant.location_id

    def location_of(self, token: str) -> str | None:
        """The token's location if it has one, without judging it (for routing)."""
        try:
            return self.grant_of(token).location_id
        except ApiError:
            return None

    def company_grant(self, token: str, scope: str) -> Grant:
        """A live Company token holding `scope` (the agency calls' check)."""
        grant = self.grant_of(token)
        if grant.user_type != "Company":
            raise ApiError(401, WRONG_AUTH_CLASS, "Unauthorized")
        if scope not in grant.scope.split():
            raise ApiError(401, "The token is not authorized for this scope.", "Unauthorized")
        return grant

    def location_token(self, company: Grant, location_id: str) -> tuple[Grant, str, str]:
        """A Location token (and its own refresh token) minted from the agency's."""
        if location_id not in company.approved or location_id not in self.installed:
            raise ApiError(400, "The app is not installed on this location")
        grant = replace(company, user_type="Location", location_id=location_id, approved=())
        with self._lock:
            access, refresh = self._pair(grant)
        return grant, access, refresh

    # --- installs --------------------------------------------------------------------

    def uninstall(self, location_id: str | None = None, company_id: str | None = None) -> int:
        """Uninstall from a location (or from the agency and all its locations): revoke
        every token for it and announce it. Returns how many tokens were revoked."""
        with self._lock:
            if company_id is not None:
                if company_id != self.agency.company_id:
                    raise ValueError("no such company")
                gone = [r for r in self.installed if r in self.agency.locations]
                covered = {company_id, *gone}
            elif location_id in self.agency.locations:
                gone, covered = [location_id], {location_id}
            else:
                raise ValueError("no such location")
            was = {r: self.installed.pop(r, None) for r in covered}
            revoked = 0
            for issued in self._tokens():
                if not issued.revoked and self._covers(issued.grant, covered):
                    issued.revoked, revoked = True, revoked + 1
        for resource in sorted(gone):
            if was[resource]:
                self._emit(self.uninstall_event(location_id=resource))
        if company_id is not None and was[company_id]:
            self._emit(self.uninstall_event(company_id=company_id))
        return revoked

    def _tokens(self) -> Iterable[Issued]:
        yield from self._access.values()
        yield from self._refresh.values()
        yield from self._codes.values()

    @staticmethod
    def _covers(grant: Grant, covered: set[str]) -> bool:
        if grant.location_id is not None:
            return grant.location_id in covered
        return grant.company_id in covered

    def installations(self) -> dict[str, str]:
        with self._lock:
            return dict(self.installed)

    # --- events ----------------------------------------------------------------------

    def _announce_install(self, grant: Grant) -> None:
        if grant.user_type == "Company":
            self._emit(self.install_event(grant, None))
        for location in [grant.location_id] if grant.location_id else list(grant.approved):
            self._emit(self.install_event(grant, location))

    def install_event(self, grant: Grant, location_id: str | None) -> dict[str, Any]:
        """AppInstall: location level (with the installer and company) or agency level."""
        body: dict[str, Any] = {"type": "INSTALL", "appId": self.app.app_id,
                                "versionId": self.app.version_id}  # fmt: skip
        if location_id is None:
            body.update(installType="Company", companyId=grant.company_id)
        else:
            body.update(
                installType="Location",
                locationId=location_id,
                companyId=grant.company_id,
                userId=grant.user_id,
                isWhitelabelCompany=False,
                whitelabelDetails={},
                companyName=self.agency.name,
            )
        return body

    def uninstall_event(
        self, *, location_id: str | None = None, company_id: str | None = None
    ) -> dict[str, Any]:
        """AppUninstall: location level or agency level."""
        body: dict[str, Any] = {"type": "UNINSTALL", "appId": self.app.app_id}
        if location_id is not None:
            body["locationId"] = location_id
        else:
            body["companyId"] = company_id
        return body

    def _emit(self, body: dict[str, Any]) -> None:
        if self.on_event is not None:
            stamped = {**body, "webhookId": str(uuid.uuid4()),
                       "timestamp": iso_utc(datetime.now(UTC))}  # fmt: skip
            self.on_event(stamped)
