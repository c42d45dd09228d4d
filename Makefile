# The two commands (see README): `make up` runs the whole stack, `make test` the suite.
# Both install everything first: uv (if missing), then the locked dependencies.
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: up test lint install manifest browser prism bench-webhooks bench-pulls bench-dbt bench-ingest bench-insights bench-drafts bench-outbox bench-app bench-stack bench-cli bench-simulator

# Bytecode is compiled once at install, as pip would: where PYTHONDONTWRITEBYTECODE is set
# (this machine and CI), every process would otherwise compile Dagster, dbt and the rest
# from source each time it starts (seconds per process, hundreds of processes in the suite).
install:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --quiet --user "uv==$(UV_VERSION)"
	"$(UV)" sync --locked --compile-bytecode
	"$(UV)" run --no-sync python -m compileall -q trainu_dagster ghl_simulator sensors streamlit_app

# dagster-dbt reads dbt's manifest at import time; parse needs no database. It is parsed
# again only when a file of the dbt project (or the lock) is newer than it, so a running
# code location never reads a manifest being rewritten by a second `make up`.
DBT_FILES := $(shell find dbt_project \( -path dbt_project/target -o -path dbt_project/logs \) \
	-prune -o -type f ! -name .user.yml -print)
manifest: install dbt_project/target/manifest.json

dbt_project/target/manifest.json: $(DBT_FILES) uv.lock
	PGHOST=unused PGUSER=unused PGDATABASE=unused DBT_USE_COLORS=false \
	  "$(UV)" run dbt parse --quiet --project-dir dbt_project --profiles-dir dbt_project

up: manifest
	"$(UV)" run trainu up

# The browser tests (tests/test_browser.py) drive Debian's Chromium through Playwright;
# `playwright install` would download from a CDN that CI cannot reach.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# tests/test_ghl_misbehaving.py serves GHL's own OpenAPI specs with Stoplight Prism, pinned in
# tests/prism (its package-lock.json); node and npm come from the machine.
prism:
	@test -x tests/prism/node_modules/.bin/prism || (cd tests/prism && npm ci --no-audit --no-fund)

# The quality gates (the import contracts run in the suite, tests/test_architecture.py);
# each failure names the file and line.
lint: install
	"$(UV)" run ruff check .
	"$(UV)" run ruff format --check .
	"$(UV)" run mypy

# Two processes (pytest-xdist), a module each at a time: most of a test's time is spent
# waiting on Postgres, dbt, Dagster and servers, so two keep both cores busy. Modules go in
# collection order (the longest first, tests/conftest.py), not xdist's most-tests-first,
# which left the one-test stack module (3 minutes) for the end.
test: manifest browser prism lint
	"$(UV)" run pytest -n 2 --dist loadfile --no-loadscope-reorder

# Benchmarks (not part of CI): see benchmarks/README.md. wrk comes from Debian.
bench-webhooks: install
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)
	"$(UV)" run python benchmarks/webhooks.py

bench-pulls: install
	"$(UV)" run python benchmarks/pulls.py

bench-dbt: install
	"$(UV)" run python benchmarks/dbt_build.py

bench-ingest: manifest
	"$(UV)" run python benchmarks/ingest_stack.py

bench-insights: manifest
	"$(UV)" run python benchmarks/insights.py

bench-drafts: manifest
	"$(UV)" run python benchmarks/drafts.py

# Sending: a burst against GHL's limits, and approval → sent on a real Dagster daemon
# (which loads the code location, so it needs dbt's manifest).
bench-outbox: manifest
	"$(UV)" run python benchmarks/outbox.py

# The app in Debian's Chromium (the `browser` target installs it), as the browser tests run it.
bench-app: manifest browser
	"$(UV)" run python benchmarks/app_browser.py

# A fresh clone of this repository, `make up` in it, then bookings → drafts → sent on it.
bench-stack: install
	"$(UV)" run python benchmarks/stack_end_to_end.py

# Start-up of the `trainu` command as a person runs it (.venv/bin/trainu), beside `python -c pass`.
bench-cli: install
	"$(UV)" run python benchmarks/cli_startup.py

# The GHL simulator generating a 10,000-client studio.
bench-simulator: install
	"$(UV)" run python benchmarks/simulator.py
