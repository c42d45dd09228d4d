"""The GHL REST API as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource

from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.settings import Settings


class GhlResource(ConfigurableResource):
    """Unset fields come from the settings (`TRAINU_GHL_BASE_URL`, `TRAINU_GHL_TOKEN`), so
    the token never appears in run configuration or the Dagster UI."""

    base_url: str | None = None
    token: str | None = None

    @contextmanager
    def client(self) -> Iterator[GhlClient]:
        settings = Settings()
        token = self.token or (
            settings.ghl_token.get_secret_value() if settings.ghl_token else None
        )
        if not token:
            raise ValueError("no GHL token: set TRAINU_GHL_TOKEN (or run `trainu up`, which "
                             "points TrainU at the local GHL simulator)")  # fmt: skip
        with GhlClient(token, base_url=self.base_url or settings.ghl_base_url) as client:
            yield client
