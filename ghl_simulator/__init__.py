"""A local stand-in for GoHighLevel: seeded studios (one, or an agency of several under one
company), their REST API in v2 and v3, GHL's Marketplace OAuth (consent, tokens that expire
and rotate, agency installs, INSTALL/UNINSTALL) and signed webhooks, plus each studio's
TrainU-side data (goals and their entries) for the app tables.

A package of its own beside `trainu_dagster`: it plays GHL, so the product never imports
it (an import-linter contract in pyproject.toml keeps it so); the stack, the tests and the
benchmarks do. `ghl-simulator` (`cli.py`) runs it as a service.
"""

from ghl_simulator.agency import AgencyApp, create_agency_app, generate_agency
from ghl_simulator.api import create_simulator_app
from ghl_simulator.app_data import write_app_data
from ghl_simulator.cli import SIMULATED_LOCATION, simulator_key_path
from ghl_simulator.live import run_simulator
from ghl_simulator.oauth import AuthorizationServer, MarketplaceApp
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
    "AgencyApp",
    "AuthorizationServer",
    "Change",
    "MarketplaceApp",
    "RateLimit",
    "Studio",
    "WebhookSender",
    "create_agency_app",
    "create_simulator_app",
    "generate_agency",
    "generate_studio",
    "load_or_create_signing_key",
    "public_pem",
    "run_simulator",
    "simulator_key_path",
    "webhook_body",
    "write_app_data",
]
