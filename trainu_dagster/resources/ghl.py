"""The GHL REST API as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource

from trainu_dagster.ghl.client import GhlClient, shared_budget_client
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import Settings


class GhlResource(ConfigurableResource["GhlResource"]):
    """Unset fields come from the settings (`TRAINU_GHL_BASE_URL`, `TRAINU_GHL_TOKEN`), so
    the token never appears in run configuration or the Dagster UI."""

    base_url: str | None = None
    token: str | None = None

    @contextmanager
    def client(self, database: PostgresResource | None = None) -> Iterator[GhlClient]:
        """A client; with `database`, its request budget is the one every run shares in
        that database (GHL's limit is per location, whichever process asks), else its own."""
        settings = Settings()
        token = self.token or (
            settings.ghl_token.get_secret_value() if settings.ghl_token else None
        )
        if not token:
            raise ValueError("no GHL token: set TRAINU_GHL_TOKEN (or run `trainu up`, which "
                             "points TrainU at the local GHL simulator)")  # fmt: skip
        base_url = self.base_url or settings.ghl_base_url
        if database is None:
            with GhlClient(token, base_url=base_url) as client:
                yield client
            return
        app_database = database.database()
        with shared_budget_client(
            token, base_url=base_url, connect=lambda: app_database.connect(autocommit=True)
        ) as client:
            yield client
