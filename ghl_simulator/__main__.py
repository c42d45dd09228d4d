"""`python -m ghl_simulator`: the same as the `ghl-simulator` command."""

from ghl_simulator.cli import app

app(prog_name="ghl-simulator")
