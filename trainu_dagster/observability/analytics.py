"""Optional forwarding of product events to PostHog.

`app.events` is the record of truth; PostHog is a convenience for product dashboards, so
everything here is best effort: a slow, failing or unconfigured PostHog never reaches the
pipeline or the request that produced the event. Properties leave the machine only after
the same PII redaction the logs get.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from trainu_dagster.observability.logging import get_logger, redact
from trainu_dagster.settings import Settings, get_settings

_log = get_logger(__name__)


@contextmanager
def _best_effort(action: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        _log.warning("product analytics failed", action=action, exc_info=True)


class ProductAnalytics:
    """A PostHog client that queues events and uploads them from a background thread."""

    def __init__(
        self, api_key: str, *, host: str, max_retries: int = 3, timeout: float = 10.0
    ) -> None:
        # Imported only here: a process without a PostHog key (an ingest run, most of the
        # time) never loads the client and its HTTP stack.
        from posthog import Posthog

        self._client = Posthog(
            api_key,
            host=host,
            gzip=True,
            max_retries=max_retries,
            timeout=timeout,
            on_error=self._on_upload_error,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ProductAnalytics | None:
        """None when no PostHog key is configured: analytics is optional."""
        key = settings.posthog_api_key
        if key is None or not key.get_secret_value().strip():
            return None
        return cls(key.get_secret_value(), host=settings.posthog_host)

    def capture(self, event_type: str, *, distinct_id: str, properties: Mapping[str, Any]) -> None:
        """Queue one event; returns at once and never raises."""
        with _best_effort("capture"):
            self._client.capture(
                event_type, distinct_id=redact(distinct_id), properties=redact(properties)
            )

    def flush(self, timeout_seconds: float | None = 10.0) -> None:
        """Upload what is queued, e.g. before a short-lived job exits."""
        with _best_effort("flush"):
            self._client.flush(timeout_seconds)

    def shutdown(self) -> None:
        """Upload what is queued and stop the background thread; the client is then spent."""
        with _best_effort("shutdown"):
            self._client.shutdown()

    @staticmethod
    def _on_upload_error(error: Exception, batch: list[dict[str, Any]]) -> None:
        _log.warning("product analytics upload failed", error=str(error), events=len(batch))


@lru_cache
def configured_analytics() -> ProductAnalytics | None:
    """The process-wide client for the current settings (one background uploader)."""
    return ProductAnalytics.from_settings(get_settings())
