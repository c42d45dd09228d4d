"""The architecture holds: the import contracts in pyproject.toml (the flow runs one way; the
product never imports the GHL simulator), and a CLI that starts without the heavy stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainu_dagster.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
# What `trainu --help` and a pure command must not load: each costs a large share of a second.
HEAVY = ("sqlalchemy", "alembic", "dagster", "psycopg", "pandas", "streamlit")


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(BIN / "lint-imports")], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["messages", "classify", "see you tomorrow"]], ids=["help", "classify"]
)
def test_the_cli_starts_without_the_heavy_stack(args: list[str]) -> None:
    """Imported and run as the `trainu` script runs it, the CLI leaves the database, Dagster
    and the app's libraries unloaded (tests are not timed; benchmarks/cli_startup.py is)."""
    script = (
        "import json, sys\n"
        "from trainu_dagster.cli import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='trainu')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules})\n"
        "print(json.dumps(loaded), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
