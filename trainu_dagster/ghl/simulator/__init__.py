"""A local stand-in for GoHighLevel: a seeded studio, its REST API v2 and signed webhooks,
plus the studio's TrainU-side data (goals and their entries) for the app tables."""

from trainu_dagster.ghl.simulator.api import create_simulator_app
from trainu_dagster.ghl.simulator.app_data import write_app_data
from trainu_dagster.ghl.simulator.live import run_simulator
from trainu_dagster.ghl.simulator.ratelimit import RateLimit
from trainu_dagster.ghl.simulator.studio import Change, Studio, generate_studio
from trainu_dagster.ghl.simulator.webhooks import (
    WebhookSender,
    load_or_create_signing_key,
    public_pem,
    webhook_body,
)

__all__ = [
    "Change",
    "RateLimit",
    "Studio",
    "WebhookSender",
    "create_simulator_app",
    "generate_studio",
    "load_or_create_signing_key",
    "public_pem",
    "run_simulator",
    "webhook_body",
    "write_app_data",
]
