"""The GHL REST API as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource
from pydantic import SecretStr

from trainu_dagster.connections.credentials import database_credentials
from trainu_dagster.connections.request_budget import shared_budget_client
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import Settings


class GhlResource(ConfigurableResource["GhlResource"]):
    """Unset fields come from the settings (`TRAINU_GHL_BASE_URL`, `TRAINU_GHL_TOKEN`), so
    the token never appears in run configuration or the Dagster UI."""

    base_url: str | None = None
    token: str | None = None

    @contextmanager
    def client(self, database: PostgresResource | None = None) -> Iterator[GhlClient]:
        """A client; with `database`, each studio's token is its own connection's (the
        settings' token for a studio without one) and the request budget is the one every
        run shares in that database (GHL's limit is per location, whichever process asks);
        without, the settings' token and a budget of its own."""
        settings = Settings()
        if self.token:
            settings = settings.model_copy(update={"ghl_token": SecretStr(self.token)})
        base_url = self.base_url or settings.ghl_base_url
        if database is None:
            if settings.ghl_token is None:
                raise ValueError("no GHL token: set TRAINU_GHL_TOKEN (or run `trainu up`, "
                                 "which points TrainU at the local GHL simulator)")  # fmt: skip
            with GhlClient(settings.ghl_token.get_secret_value(), base_url=base_url) as client:
                yield client
            return
        app_database = database.database()

        def connect() -> psycopg.Connection:
            return app_database.connect(autocommit=True)

        with shared_budget_client(
            database_credentials(settings, connect), base_url=base_url, connect=connect
        ) as client:
            yield client
