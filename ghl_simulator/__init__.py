"""A local stand-in for GoHighLevel: a seeded studio, its REST API v2 and signed webhooks,
plus the studio's TrainU-side data (goals and their entries) for the app tables.

A package of its own beside `trainu_dagster`: it plays GHL, so the product never imports
it (an import-linter contract in pyproject.toml keeps it so); the stack, the tests and the
benchmarks do. `ghl-simulator` (`cli.py`) runs it as a service.
"""

from ghl_simulator.api import create_simulator_app
from ghl_simulator.app_data import write_app_data
from ghl_simulator.cli import SIMULATED_LOCATION, simulator_key_path
from ghl_simulator.live import run_simulator
from ghl_simulator.ratelimit import RateLimit
from ghl_simulator.studio import Change, Studio, generate_studio
from ghl_simulator.webhooks import (
    WebhookSender,
    load_or_create_signing_key,
    public_pem,
    webhook_body,
)

__all__ = [
    "SIMULATED_LOCATION",
    "Change",
    "RateLimit",
    "Studio",
    "WebhookSender",
    "create_simulator_app",
    "generate_studio",
    "load_or_create_signing_key",
    "public_pem",
    "run_simulator",
    "simulator_key_path",
    "webhook_body",
    "write_app_data",
]
