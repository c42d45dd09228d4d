"""The dbt project as Dagster assets: staging, intermediate and marts, downstream of the
raw GHL tables; dbt tests become asset checks.

Models refresh themselves after ingestion (declarative automation): when webhook ingest or
a pull reports a raw table materialized, the models reading it and everything below them
are requested together on the next automation tick.
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    Config,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# dbt beside this interpreter: Dagster's tools run from the virtualenv without its PATH too.
DBT_EXECUTABLE = shutil.which("dbt") or str(Path(sys.executable).parent / "dbt")
# `dbt parse` reads the profile but never connects: placeholders do where nothing is set.
PARSE_ENV = {"PGHOST": "unused", "PGUSER": "unused", "PGDATABASE": "unused"}
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def parse_dbt_project() -> None:
    """Write dbt's manifest (`dbt parse`), which dagster-dbt reads at import. A fresh clone
    has none until something builds it (`make` does), and `dagster dev` should see the
    models as they are now: dagster-dbt's own `prepare_if_dev` would run a `dbt` it finds
    on PATH only, without the profile's placeholders."""
    subprocess.run(
        [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR)],
        env={**PARSE_ENV, **os.environ, "DBT_USE_COLORS": "false"}, check=True,
    )  # fmt: skip


if dbt_project.preparer.using_dagster_dev() or not dbt_project.manifest_path.exists():
    parse_dbt_project()

# eager(), except that:
# - a model that was never built is built (eager only builds one that *became* missing while
#   automation watched, so a first start, or a model whose sources are app tables nobody
#   reports, would wait for the nightly build);
# - only a missing dbt model blocks a refresh: app tables are written by the app, not
#   Dagster, and a raw table a studio does not use is never materialized.
REFRESH_AFTER_INGEST = (
    AutomationCondition.eager()
    .replace("newly_missing", AutomationCondition.missing())
    .replace(
        "any_deps_missing",
        AutomationCondition.any_deps_missing().ignore(
            AssetSelection.key_prefixes("raw", "app", include_sources=True)
        ),
    )
)
# dbt's default (eager) runs a test as soon as one of its models is selected, so a subset
# run would test `bookings` against `stg_ghl__contacts` before `bookings` ever existed.
# `buildable` runs a test only when each of its models is selected or upstream of one.
INDIRECT_SELECTION = {"DBT_INDIRECT_SELECTION": "buildable"}


class TrainuDbtTranslator(DagsterDbtTranslator):
    """Sources keep dbt's default keys ([source, table]), which are the raw assets' keys."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: Any
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id)
        if node is None or node["resource_type"] != "model":
            return spec
        return spec.replace_attributes(
            group_name=f"dbt_{node['fqn'][1]}",  # dbt_staging, dbt_intermediate, dbt_marts
            automation_condition=REFRESH_AFTER_INGEST,
        )


class DbtBuildConfig(Config):
    full_refresh: bool = False  # rebuild incremental models whole (e.g. a new late-cancel window)
    test_all_rows: bool = False  # data tests read every row, not just the recently loaded


def dbt_build_args(*, full_refresh: bool = False, test_all_rows: bool = False) -> list[str]:
    """Routine runs skip dbt unit tests (the test suite runs them) and, by the project's
    default, test only recently loaded rows of the large tables, so a run after a few
    events stays a few seconds; data tests still gate each model as asset checks."""
    args = ["build", "--exclude-resource-type", "unit_test"]
    if full_refresh:
        args.append("--full-refresh")
    if full_refresh or test_all_rows:  # else dbt's default: the last day's rows
        args += ["--vars", json.dumps({"recent_rows_hours": None})]
    return args


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """The dbt profile reads libpq's PG* variables; dbt inherits this process's env."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=TrainuDbtTranslator(),
    pool="dbt",  # one build at a time (deploy/stack/dagster.yaml)
)
def trainu_dbt_models(
    context: AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    database: PostgresResource,
) -> Iterator[Any]:
    with _environment({**database.database().libpq_env(), **INDIRECT_SELECTION}):
        args = dbt_build_args(full_refresh=config.full_refresh, test_all_rows=config.test_all_rows)
        yield from dbt.cli(args, context=context).stream()
