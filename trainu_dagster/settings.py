"""Typed settings, read from the environment and an optional `.env` file.

Every secret comes from here and nowhere else; nothing in the code base carries a
default credential. Variables are prefixed `TRAINU_` except the ones other tools
already know by name (`OPENAI_*`, `POSTHOG_*`, `SENTRY_DSN`).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainu_dagster.risk_config import RiskConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRAINU_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- database -------------------------------------------------------------------
    state_dir: Path = Field(
        default=Path(".trainu"),
        description="Project-local state: embedded Postgres data, Dagster home, logs.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Use this Postgres instead of the embedded one (a superuser, or a role "
        "with CREATEROLE and BYPASSRLS: it owns the schema and runs the pipelines).",
    )
    database_name: str = Field(default="trainu", description="Application database name.")
    dagster_database_name: str = Field(
        default="trainu_dagster", description="Database that holds Dagster runs/events/schedules."
    )
    app_db_password: SecretStr | None = Field(
        default=None, description="Password set on the RLS-bound `trainu_app` role (if any)."
    )
    auth_db_password: SecretStr | None = Field(
        default=None, description="Password set on the `trainu_auth` login role (if any)."
    )
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="Sign-in lifetime.")

    # --- GHL ----------------------------------------------------------------------------
    ghl_base_url: str = Field(default="https://services.leadconnectorhq.com")
    ghl_token: SecretStr | None = Field(
        default=None,
        description="One-studio shortcut: the GHL token for every studio without a connection "
        "of its own (`trainu locations add --token-stdin`).",
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys sealing the stored GHL and webhook secrets, comma-separated, "
        "newest first (unset: a key file in the state directory, made on first use).",
    )
    webhook_ed25519_public_key: str | None = Field(
        default=None, description="PEM or base64 Ed25519 key for `x-ghl-signature`."
    )
    webhook_rsa_public_key_path: Path = Field(
        default=PROJECT_ROOT / "trainu_dagster" / "ghl" / "keys" / "ghl-webhook-rsa-public.pem",
        description="RSA key for the legacy `x-wh-signature` header.",
    )
    workflow_webhook_secret: SecretStr | None = Field(
        default=None, description="Shared HMAC-SHA256 secret for workflow webhooks."
    )
    webhook_replay_window_seconds: int = Field(default=300, ge=1)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_rate_limit_per_minute: int = Field(
        default=100_000, ge=1, description="Requests per sending address and route per minute."
    )
    backfill_months: int = Field(
        default=12, ge=1, le=120, description="History pulled when a studio is first seen."
    )

    # --- LLM ----------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "TRAINU_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "TRAINU_OPENAI_BASE_URL")
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("OPENAI_MODEL", "TRAINU_OPENAI_MODEL"),
    )
    openai_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Per request; past it the draft comes from a template."
    )
    openai_max_concurrency: int = Field(
        default=16, ge=1, le=64, description="Drafts requested from the model at once."
    )

    # --- messaging policy ---------------------------------------------------------------
    # (quiet hours and caps are each studio's own settings: app.locations)
    approval_expiry_hours: float = Field(
        default=48, gt=0, description="An approval older than this goes back to the inbox."
    )
    outbox_run_cap: int = Field(
        default=2_000, ge=1, description="At most this many messages sent by one send run."
    )
    outbox_claim_lease_seconds: float = Field(
        default=300, gt=0,
        description="A claim older than this was left by a crashed run: reconciled with GHL.",
    )  # fmt: skip
    risk_model: RiskConfig = Field(
        default_factory=RiskConfig,
        description='Risk weights and thresholds (JSON), e.g. {"high_from": 0.65}.',
    )
    allowed_link_domains: list[str] = Field(
        default_factory=list,
        description="Domains a draft may link to (the studio's own); any other link fails it.",
    )

    # --- optional telemetry -------------------------------------------------------------
    posthog_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("POSTHOG_API_KEY", "TRAINU_POSTHOG_API_KEY")
    )
    posthog_host: str = Field(
        default="https://us.i.posthog.com",
        validation_alias=AliasChoices("POSTHOG_HOST", "TRAINU_POSTHOG_HOST"),
    )
    sentry_dsn: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_DSN", "TRAINU_SENTRY_DSN")
    )

    log_level: str = Field(default="INFO", description="Structured JSON logs on stderr.")

    # --- local stack ports --------------------------------------------------------------
    dagster_port: int = Field(default=3000, ge=1, le=65535)
    receiver_port: int = Field(default=8000, ge=1, le=65535)
    streamlit_port: int = Field(default=8501, ge=1, le=65535)
    simulator_port: int = Field(default=8010, ge=1, le=65535, description="Local GHL simulator.")

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.session_hours)


@lru_cache
def get_settings() -> Settings:
    return Settings()
