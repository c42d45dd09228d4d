"""The production examples in deploy/ and docs/operations.md, held to what reads them, so
they cannot rot: Dagster's own instance and workspace schemas (and each configurable
class's `config_type()`), the concurrency limits as Dagster's run queue applies them to
TrainU's jobs, the commands the manifests run as their CLIs parse them, the receiver's
probe and webhook paths as its app answers them, and every setting, command and file the
operator's guide names."""

from __future__ import annotations

import asyncio
import importlib
import re
import shlex
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import typer
import yaml
from dagster import DagsterRun
from dagster._config import (
    Array,
    Field,
    Noneable,
    Permissive,
    Shape,
    StringSource,
    process_config,
    resolve_to_config_type,
)
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import ConcurrencyConfig, PoolGranularity
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.config_schema import ensure_workspace_config, process_workspace_config
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.tags import TagConcurrencyLimitsCounter
from pydantic import AliasChoices

from trainu_dagster.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
DOCS = PROJECT_ROOT / "docs" / "operations.md"
PRODUCTION_INSTANCE = DEPLOY / "dagster.yaml"
STACK_INSTANCE = DEPLOY / "stack" / "dagster.yaml"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
LANES = {"ingest", "pull", "backfill", "retry", "send"}
# The Secrets the manifests may name; each is documented in docs/operations.md.
SECRETS = {"trainu-database", "trainu-ghl-api", "trainu-webhooks", "trainu-openai"}
# Read by the Dagster instance config (an env source), not by TrainU's settings.
NON_SETTING_VARIABLES = {"TRAINU_DAGSTER_STORAGE_URL"}
DUMMY_STORAGE_URL = "postgresql+psycopg2://trainu_admin:unused@db.invalid:5432/trainu_dagster"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def instance_configs() -> list[Path]:
    """Every Dagster instance config in the repository: the production example, the stack's,
    and one at the root if there is one."""
    found = sorted(DEPLOY.rglob("dagster.yaml"))
    root = PROJECT_ROOT / "dagster.yaml"
    return found + ([root] if root.exists() else [])


def instance_ref(config: Mapping[str, Any] | Path, home: Path) -> InstanceRef:
    """What `DagsterInstance` does with a dagster.yaml up to building its parts: validate it
    against the instance schema (`dagster_instance_config`, with its concurrency and storage
    checks) and resolve each part to its class and config."""
    home.mkdir(parents=True, exist_ok=True)
    if isinstance(config, Path):
        shutil.copyfile(config, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(dict(config)))
    return InstanceRef.from_dir(str(home))


def k8s_run_launcher_schema() -> Any:
    """K8sRunLauncher's own schema when dagster-k8s is installed. It is not a dependency of
    this project (and is not added for a test), so otherwise a mirror of the fields
    `dagster_k8s.job.DagsterK8sJobConfig.config_type_run_launcher()` accepts in the 1.13
    line: an unknown or misspelt key, or a wrong type, still fails, but a field dagster-k8s
    adds or drops later is not noticed until it is installed."""
    try:
        from dagster_k8s import K8sRunLauncher  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        optional = lambda config: Field(config, is_required=False)  # noqa: E731
        return Shape(
            {
                "instance_config_map": Field(StringSource, is_required=True),
                "job_image": optional(Noneable(StringSource)),
                "image_pull_policy": optional(Noneable(StringSource)),
                "image_pull_secrets": optional(Noneable(Array(Shape({"name": StringSource})))),
                "service_account_name": optional(Noneable(StringSource)),
                "env_config_maps": optional(Noneable(Array(StringSource))),
                "env_secrets": optional(Noneable(Array(StringSource))),
                "env_vars": optional(Noneable(Array(str))),
                "volume_mounts": optional(Array(Permissive({"name": StringSource}))),
                "volumes": optional(Array(Permissive({"name": str}))),
                "labels": optional(dict),
                "resources": optional(
                    Noneable({"limits": optional(dict), "requests": optional(dict)})
                ),
                "scheduler_name": optional(Noneable(StringSource)),
                "security_context": optional(dict),
                "postgres_password_secret": optional(StringSource),
                "dagster_home": optional(StringSource),
                "load_incluster_config": optional(bool),
                "kubeconfig_file": optional(Noneable(str)),
                "fail_pod_on_run_failure": optional(bool),
                "run_k8s_config": optional(
                    Shape(
                        {
                            key: optional(Permissive())
                            for key in (
                                "container_config",
                                "pod_template_spec_metadata",
                                "pod_spec_config",
                                "job_config",
                                "job_metadata",
                                "job_spec_config",
                            )
                        }
                    )  # fmt: skip
                ),
                "job_namespace": optional(StringSource),
                "only_allow_user_defined_k8s_config_fields": optional(Permissive()),
                "only_allow_user_defined_env_vars": optional(Array(str)),
            }
        )
    return K8sRunLauncher.config_type()


def component_schema(data: ConfigurableClassData) -> Any:
    if (data.module_name, data.class_name) == ("dagster_k8s", "K8sRunLauncher"):
        return k8s_run_launcher_schema()
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    return klass.config_type()


def components(ref: InstanceRef) -> dict[str, ConfigurableClassData]:
    return {name: value for name, value in ref._asdict().items()
            if isinstance(value, ConfigurableClassData)}  # fmt: skip


def component_errors(ref: InstanceRef) -> dict[str, list[str]]:
    """Each part's config processed with its class's own `config_type()`, as
    `ConfigurableClassData.rehydrate` does before constructing it."""
    errors = {}
    for name, data in components(ref).items():
        result = process_config(resolve_to_config_type(component_schema(data)), data.config_dict)
        if not result.success:
            errors[name] = [error.message for error in result.errors]
    return errors


@pytest.fixture(autouse=True)
def storage_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The storage URL is an env source: resolving it needs a value, never a connection.
    monkeypatch.setenv("TRAINU_DAGSTER_STORAGE_URL", DUMMY_STORAGE_URL)


# --- every YAML file parses -----------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert {PRODUCTION_INSTANCE, STACK_INSTANCE, HELM_VALUES, DEPLOY / "workspace.yaml"} <= set(
        files
    )
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text()))
        assert documents and all(isinstance(d, dict) for d in documents), path


# --- Dagster instance configs ----------------------------------------------------------------


@pytest.mark.parametrize("path", instance_configs(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_instance_config_passes_dagsters_schema(path: Path, tmp_path: Path) -> None:
    ref = instance_ref(path, tmp_path)
    parts = components(ref)
    assert (parts["storage_data"].module_name, parts["storage_data"].class_name) == (
        "dagster_postgres", "DagsterPostgresStorage")  # fmt: skip
    assert parts["run_coordinator_data"].class_name == "QueuedRunCoordinator"
    assert component_errors(ref) == {}
    assert ref.settings["telemetry"] == {"enabled": False}
    # the storage URL comes from the environment, never from the file
    assert load(path)["storage"] == {
        "postgres": {"postgres_url": {"env": "TRAINU_DAGSTER_STORAGE_URL"}}
    }


def test_production_instance_launches_runs_as_kubernetes_jobs(tmp_path: Path) -> None:
    ref = instance_ref(PRODUCTION_INSTANCE, tmp_path)
    launcher = ref.run_launcher_data
    assert launcher is not None
    assert (launcher.module_name, launcher.class_name) == ("dagster_k8s", "K8sRunLauncher")
    config = launcher.config_dict
    assert config["job_namespace"] == "trainu"
    assert config["instance_config_map"] and config["service_account_name"]
    assert set(config["env_secrets"]) <= SECRETS and "trainu-database" in config["env_secrets"]
    assert ref.settings["run_monitoring"]["enabled"] is True
    assert ref.settings["run_retries"]["enabled"] is True
    assert ref.compute_logs_data.class_name == "NoOpComputeLogManager"


LANE_LIMIT_OF_ONE_WORD = {"key": "trainu/lane", "value": {"applyLimitPerUniqueValue": True},
                          "limit": "one"}  # fmt: skip


@pytest.mark.parametrize(
    ("part", "broken"),
    [
        ("lane limit", {"concurrency": {"runs": {
            "tag_concurrency_limits": [LANE_LIMIT_OF_ONE_WORD]}}}),
        ("storage key", {"storage": {"postgres": {"postgres_uri": {"env": "X"}}}}),
        ("limits in both places", {"run_coordinator": {
            "module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": -1}}}),
        ("unknown section", {"run_lanes": {"ingest": 1}}),
    ],
)  # fmt: skip
def test_a_broken_instance_config_fails_dagsters_schema(
    part: str, broken: dict, tmp_path: Path
) -> None:
    config = {**load(PRODUCTION_INSTANCE), **broken}
    with pytest.raises(DagsterInvalidConfigError):
        instance_ref(config, tmp_path)


def test_a_misspelt_run_launcher_key_fails_its_schema(tmp_path: Path) -> None:
    config = load(PRODUCTION_INSTANCE)
    launcher = config["run_launcher"]["config"]
    launcher["job_namspace"] = launcher.pop("job_namespace")
    errors = component_errors(instance_ref(config, tmp_path))
    assert list(errors) == ["run_launcher_data"]
    assert any("job_namspace" in message for message in errors["run_launcher_data"])


@pytest.fixture(scope="module")
def job_tags() -> dict[str, Mapping[str, str]]:
    from trainu_dagster.definitions import defs

    return {job.name: job.tags for job in defs.resolve_all_job_defs()}


@pytest.mark.parametrize("path", [PRODUCTION_INSTANCE, STACK_INSTANCE], ids=["deploy", "stack"])
def test_each_lane_runs_one_run_and_never_blocks_another(
    path: Path, tmp_path: Path, job_tags: dict[str, Mapping[str, str]]
) -> None:
    """The limits as Dagster's run queue resolves and applies them to TrainU's own jobs."""
    from trainu_dagster.assets.dbt import trainu_dbt_models
    from trainu_dagster.jobs import LANE

    ref = instance_ref(path, tmp_path)
    coordinator = ref.run_coordinator_data.rehydrate(as_type=QueuedRunCoordinator)
    concurrency = ConcurrencyConfig.from_concurrency_settings(
        ref.settings["concurrency"], coordinator.get_run_queue_config()
    )
    assert concurrency.run_queue_config is not None
    limits = concurrency.run_queue_config.tag_concurrency_limits
    laned = {name: tags[LANE] for name, tags in job_tags.items() if LANE in tags}
    assert set(laned.values()) == LANES

    def run(job: str) -> DagsterRun:
        return DagsterRun(job_name=job, run_id=make_new_run_id(), tags=job_tags[job])

    for job in laned:
        counter = TagConcurrencyLimitsCounter(
            limits, [run(other) for other in laned if other != job]
        )
        assert not counter.is_blocked(run(job)), f"{job} waits for another lane"
        counter.update_counters_with_launched_item(run(job))
        assert counter.is_blocked(run(job)), f"two {job} runs at once"
    every_lane_busy = TagConcurrencyLimitsCounter(limits, [run(job) for job in laned])
    assert not every_lane_busy.is_blocked(run("build_models"))
    assert concurrency.run_queue_config.max_concurrent_runs > len(LANES)
    # one dbt build at a time: the dbt pool's limit is the default, 1, per run
    assert trainu_dbt_models.op.pool == "dbt"
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN


def test_production_and_stack_share_the_lanes_and_the_dbt_pool() -> None:
    production, stack = load(PRODUCTION_INSTANCE), load(STACK_INSTANCE)
    production_runs, stack_runs = production["concurrency"]["runs"], stack["concurrency"]["runs"]
    assert production_runs["tag_concurrency_limits"] == stack_runs["tag_concurrency_limits"]
    assert production["concurrency"]["pools"] == stack["concurrency"]["pools"]


# --- the Helm values --------------------------------------------------------------------------


def snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake(v) for k, v in value.items()}
    return value


def test_helm_values_render_the_same_instance(tmp_path: Path) -> None:
    values, production = load(HELM_VALUES), load(PRODUCTION_INSTANCE)
    extra = values["additionalInstanceConfig"]
    assert extra["concurrency"] == production["concurrency"]
    daemon = values["dagsterDaemon"]
    assert snake(daemon["runMonitoring"]) == production["run_monitoring"]
    assert snake(daemon["runRetries"]) == production["run_retries"]
    assert snake(daemon["sensors"]) == production["sensors"]
    assert snake(values["retention"]["sensor"]) == production["retention"]["sensor"]
    assert values["telemetry"] == {"enabled": False}
    # The chart writes run_coordinator without config when these are empty; a value here
    # would put limits in the run coordinator too, which Dagster refuses (checked below).
    coordinator = daemon["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    assert not any(coordinator["config"]["queuedRunCoordinator"].values())
    rendered = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
        },
        "run_monitoring": snake(daemon["runMonitoring"]),
        "run_retries": snake(daemon["runRetries"]),
        "sensors": snake(daemon["sensors"]),
        "retention": {"sensor": snake(values["retention"]["sensor"])},
        "telemetry": values["telemetry"],
        **extra,
    }
    assert component_errors(instance_ref(rendered, tmp_path / "rendered")) == {}
    rendered["run_coordinator"]["config"] = {"max_concurrent_runs": -1}
    with pytest.raises(DagsterInvalidConfigError, match="incompatible"):
        instance_ref(rendered, tmp_path / "both")
    # storage: psycopg2 (NOTIFY breaks under psycopg 3), the password from a Secret
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlScheme"] == "postgresql+psycopg2"
    assert (
        postgresql["postgresqlDatabase"] == Settings.model_fields["dagster_database_name"].default
    )
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


# --- the workspace: the code location as a gRPC server ----------------------------------------


def test_workspaces_pass_dagsters_schema_and_name_the_code_location() -> None:
    tool = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    for path in (DEPLOY / "workspace.yaml", PROJECT_ROOT / "workspace.yaml"):
        ensure_workspace_config(load(path), str(path))
    (server,) = load(DEPLOY / "workspace.yaml")["load_from"]
    grpc = server["grpc_server"]
    assert grpc["location_name"] == tool["code_location_name"]

    (deployment,) = load(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    # the chart names the location and its Service's host after the deployment
    assert deployment["name"] == grpc["location_name"] == grpc["host"]
    assert deployment["port"] == grpc["port"]
    from dagster._cli.api import grpc_command

    context = grpc_command.make_context(
        "grpc", ["-h", "0.0.0.0", "-p", str(deployment["port"]), *deployment["dagsterApiGrpcArgs"]]
    )
    assert context.params["module_name"] == tool["module_name"] == "trainu_dagster.definitions"
    importlib.import_module(context.params["module_name"])
    assert {s["name"] for s in deployment["envSecrets"]} <= SECRETS


def test_a_broken_workspace_fails_dagsters_schema() -> None:
    broken = {"load_from": [{"grpc_server": {"hots": "trainu", "port": 3030}}]}
    assert not process_workspace_config(broken).success
    with pytest.raises(DagsterInvalidConfigError):
        ensure_workspace_config({"load_from": [{"grpc_sever": {"port": 3030}}]}, "workspace.yaml")


# --- the Kubernetes manifests -----------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    return [d for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for d in yaml.safe_load_all(path.read_text()) if d]  # fmt: skip


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(kind) if d["metadata"].get("name") == name]
    return found


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


def probes(container: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind in container:
            yield kind, container[kind]["httpGet"]


SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY|DATABASE_URL|STORAGE_URL|DSN")


def settings_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= (
            set(alias.choices) if isinstance(alias, AliasChoices) else {f"TRAINU_{name.upper()}"}
        )
    return names


def test_manifests_wire_together_and_hold_no_secrets() -> None:
    documents = manifests()
    assert all(d["metadata"].get("namespace") == "trainu" for d in documents)
    assert of_kind("Secret") == []
    config_maps = {d["metadata"]["name"]: d for d in of_kind("ConfigMap")}
    workloads = of_kind("Deployment") + of_kind("Job")
    for workload in workloads:
        template_labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"].get("selector", {}).get("matchLabels", {})
        assert selector.items() <= template_labels.items(), workload["metadata"]
        for container in containers(workload):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for _, probe in probes(container):
                assert probe["port"] in ports or probe["port"] in ports.values()
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in SECRETS
                else:
                    assert source["configMapRef"]["name"] in config_maps
            for variable in container.get("env", []):
                assert "value" not in variable or not SECRET_LIKE.search(variable["name"])
    for service in of_kind("Service"):
        (target,) = [w for w in of_kind("Deployment") if service["spec"]["selector"].items()
                     <= w["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        names = {p["name"] for c in containers(target) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named("Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    receiver = named("Deployment", "trainu-receiver")
    assert receiver["spec"]["replicas"] == 3
    assert receiver["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = named("PodDisruptionBudget", "trainu-receiver")
    assert budget["spec"]["selector"]["matchLabels"].items() <= (
        receiver["spec"]["template"]["metadata"]["labels"].items())  # fmt: skip
    # non-secret settings only, each one TrainU (or libpq, for dbt) reads, and they parse
    shared = config_maps["trainu-config"]["data"]
    for name in shared:
        assert name in settings_variables() or name.startswith("PG"), name
        assert not SECRET_LIKE.search(name), name
    with pytest.MonkeyPatch.context() as patch:
        for name, value in shared.items():
            patch.setenv(name, value)
        settings = Settings(_env_file=None)
    assert settings.allowed_link_domains == ["examplestudio.com"]


def test_the_receivers_command_and_paths_are_what_its_app_serves() -> None:
    from uvicorn.importer import import_from_string
    from uvicorn.main import main as uvicorn_cli

    from trainu_dagster.ingest.receiver import create_app

    (container,) = containers(named("Deployment", "trainu-receiver"))
    command = container["command"]
    assert command[0] == "uvicorn"
    params = uvicorn_cli.make_context("uvicorn", command[1:]).params
    assert params["factory"] and params["host"] == "0.0.0.0"
    assert params["port"] == container["ports"][0]["containerPort"]
    assert import_from_string(params["app"]) is create_app

    # nothing listens on port 9: the database is down
    settings = Settings(database_url="postgresql://trainu@127.0.0.1:9/trainu",
                        webhook_ed25519_public_key=None, workflow_webhook_secret=None)  # fmt: skip
    app = create_app(settings)
    ingress = named("Ingress", "trainu-receiver")
    (public,) = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]

    async def exercise() -> dict[str, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            answers = {path: (await client.get(path)).status_code
                       for _, probe in probes(container) for path in [probe["path"]]}  # fmt: skip
            answers["/readyz"] = (await client.get("/readyz")).status_code
            for route in ("/webhooks/ghl", "/webhooks/ghl/workflow"):
                assert route.startswith(public)
                answers[route] = (await client.post(route, content=b"{}")).status_code
            return answers

    answers = asyncio.run(exercise())
    # the probes stay green with the database down: the replicas keep answering 429s,
    # which GHL redelivers, instead of leaving the load balancer to answer 503
    assert {path for _, probe in probes(container) for path in [probe["path"]]} == {"/healthz"}
    assert answers["/healthz"] == 200
    assert answers["/readyz"] == 503
    assert answers["/webhooks/ghl"] == answers["/webhooks/ghl/workflow"] == 401  # unsigned


def test_the_streamlit_command_and_probe_are_streamlits() -> None:
    import streamlit.config
    from streamlit.web.server.starlette.starlette_routes import ROUTE_HEALTH

    (container,) = containers(named("Deployment", "trainu-app"))
    command = container["command"]
    assert command[:2] == ["streamlit", "run"]
    assert container["workingDir"] == "/app"  # the project root in the image
    assert (PROJECT_ROOT / command[2]).is_file()
    options = command[3:]
    for flag, value in zip(options[::2], options[1::2], strict=True):
        assert flag.startswith("--")
        streamlit.config.get_option(flag.removeprefix("--"))  # raises for an unknown option
        assert value
    assert dict(zip(options[::2], options[1::2], strict=True))["--server.address"] == "0.0.0.0"
    assert {probe["path"] for _, probe in probes(container)} == {"/" + ROUTE_HEALTH}


# --- the operator's guide names only what exists ------------------------------------------


def trainu_commands(text: str) -> list[list[str]]:
    """`trainu ...` in inline code and in fenced blocks (also after `kubectl exec ... --`)."""
    spans, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            spans.append(line.strip())
        else:
            spans += re.findall(r"`([^`]+)`", line)
    commands = []
    for span in spans:
        span = span.split(" -- ", 1)[-1].split("#")[0].strip()
        if span.startswith("trainu "):
            commands.append(shlex.split(span.replace("<", "").replace(">", "")))
    return commands


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # typer's groups are not click.Group


def resolve(words: list[str]) -> Any:
    """The `trainu` subcommand the words name, its options checked against its own."""
    from trainu_dagster.cli import app

    command = typer.main.get_command(app)
    rest = words[1:]
    while is_group(command) and rest:
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"`{' '.join(words)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    assert not is_group(command), f"`{' '.join(words)}` is not a command"
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"`{' '.join(words)}`: no option {word}"
    return command


def test_the_guide_cites_real_commands_settings_and_files() -> None:
    text = DOCS.read_text()
    commands = trainu_commands(text)
    assert len(commands) >= 15
    for words in commands:
        resolve(words)
    for command in (c for d in of_kind("Job") for c in containers(d)):
        resolve(command["command"])

    variables = settings_variables() | NON_SETTING_VARIABLES
    pattern = re.compile(r"\b(?:TRAINU|OPENAI|POSTHOG)_[A-Z0-9_]*[A-Z0-9]\b|\bSENTRY_DSN\b")
    for path in [DOCS, *DEPLOY.rglob("*.yaml")]:
        for name in set(pattern.findall(path.read_text())):
            assert name in variables, f"{path.name}: {name} is not a setting"
    for secret in SECRETS | {"trainu-dagster-postgresql"}:
        assert f"`{secret}`" in text

    links = re.findall(r"\]\((\.\./[^)#\s]+)\)", text)
    assert any("deploy/dagster.yaml" in link for link in links)
    for link in links:
        assert (DOCS.parent / link).resolve().exists(), link

    from trainu_dagster.ghl.payloads import EVENT_ENTITIES

    cited = set(re.findall(r"`([A-Z][a-zA-Z]+(?:Create|Update|Delete|Complete|Message))`", text))
    assert cited == set(EVENT_ENTITIES)
