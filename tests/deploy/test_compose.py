"""docker-compose.yml, deploy/ and the Dockerfile, checked without a Docker daemon.

The compose file must agree with the code (the variables it reads, the local
stack's broker settings, the metrics port) and stay valid for docker-compose:
`docker-compose config -q` runs when the binary is on PATH and the test fails
when it is not (deploy/ensure-compose-check.sh installs it; `make test` calls it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.compiled import COMPILED_MODULES
from stream.stack import ENV_KEYS
from stream.stack.postgres import DATABASE as POSTGRES_DATABASE
from stream.stack.prometheus import SCRAPE_JOB
from stream.stack.registry import CCOMPAT_PATH

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENSURE_SCRIPT = "deploy/ensure-compose-check.sh"

METRICS_PORT = 9400
API_PORT = 8080  # the REST API serves its own /metrics (api/metrics.py)
CONFIG_MOUNT = "/app/config"
# Stack component (stream.stack.ENV_KEYS) -> the compose service that provides it.
COMPONENT_SERVICES = {
    "kafka": "kafka",
    "registry": "schema-registry",
    "redis": "redis",
    "postgres": "postgres",
    "prometheus": "prometheus",
}
# Broker properties that must differ between a process on 127.0.0.1 and a container.
KAFKA_NETWORK_KEYS = frozenset({
    "listeners", "advertised.listeners", "listener.security.protocol.map",
    "controller.quorum.voters", "log.dirs",
})
# apache/kafka image variables that are not broker properties.
KAFKA_NON_PROPERTIES = frozenset({
    "KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME",
})

Service = dict[str, Any]


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path}: expected a mapping at the top level"
    return loaded


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    compose = _load(COMPOSE_FILE)
    found = compose.get("services")
    assert isinstance(found, dict), f"{COMPOSE_FILE}: no services"
    assert found, f"{COMPOSE_FILE}: no services"
    return found


@pytest.fixture(scope="module")
def app_services(services: dict[str, Service]) -> dict[str, Service]:
    """The services built from the project's Dockerfile."""
    built = {name: svc for name, svc in services.items() if "build" in svc}
    assert {"init", "simulator"} <= set(built), f"app services: {sorted(built)}"
    return built


def _command(service: Service) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


@pytest.fixture(scope="module")
def processors(app_services: dict[str, Service]) -> dict[str, Service]:
    found = {name: svc for name, svc in app_services.items()
             if _command(svc)[:1] == ["process"]}
    assert found, "no service runs `rating process`"
    return found


def _environment(service: Service) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in env.items()}


def _split_image(image: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` -> (tag, digest); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return tag, digest


def _depends_on(service: Service) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: str(spec.get("condition", "service_started")) for name, spec in deps.items()}


def test_every_image_is_pinned(services: dict[str, Service]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert isinstance(image, str), f"service {name}: no image"
        tag, digest = _split_image(image)
        assert tag or digest, f"service {name}: image {image!r} has no tag"
        assert tag != "latest", f"service {name}: image {image!r} is not pinned"


def test_app_services_get_exactly_the_stack_variables(
        app_services: dict[str, Service]) -> None:
    expected = set(ENV_KEYS.values())
    for name, service in app_services.items():
        assert set(_environment(service)) == expected, f"service {name}"


def _hosts(component: str, value: str) -> list[tuple[str, int | None]]:
    if component == "kafka":  # host:port[,host:port...], no scheme
        pairs = [item.strip().rpartition(":") for item in value.split(",")]
        return [(host, int(port)) for host, _, port in pairs]
    parts = urlsplit(value)
    assert parts.hostname, f"{component}: {value!r} names no host"
    return [(parts.hostname, parts.port)]


def test_app_variables_point_at_compose_services(
        services: dict[str, Service], app_services: dict[str, Service]) -> None:
    for name, service in app_services.items():
        env = _environment(service)
        for component, key in ENV_KEYS.items():
            for host, port in _hosts(component, env[key]):
                assert host in services, f"service {name}: {key}={env[key]} names no service"
                assert host == COMPONENT_SERVICES[component], f"service {name}: {key}"
                assert port is not None, f"service {name}: {key} has no port"
        assert urlsplit(env["SCHEMA_REGISTRY_URL"]).path == CCOMPAT_PATH, f"service {name}"


def test_postgres_dsn_matches_the_postgres_service(
        services: dict[str, Service], app_services: dict[str, Service]) -> None:
    postgres = _environment(services["postgres"])
    assert postgres["POSTGRES_DB"] == POSTGRES_DATABASE
    for name, service in app_services.items():
        dsn = urlsplit(_environment(service)["POSTGRES_DSN"])
        assert dsn.scheme == "postgresql", f"service {name}"
        assert dsn.username == postgres["POSTGRES_USER"], f"service {name}"
        assert dsn.password == postgres["POSTGRES_PASSWORD"], f"service {name}"
        assert dsn.path == f"/{postgres['POSTGRES_DB']}", f"service {name}"


def test_app_services_mount_config_read_only(app_services: dict[str, Service]) -> None:
    for name, service in app_services.items():
        mounts = [str(volume) for volume in service.get("volumes", [])]
        assert f"./config:{CONFIG_MOUNT}:ro" in mounts, f"service {name}: {mounts}"


def test_init_prepares_everything_once_its_dependencies_are_healthy(
        services: dict[str, Service], app_services: dict[str, Service]) -> None:
    init = app_services["init"]
    script = " ".join(_command(init))
    assert "rating topics && rating schemas && rating catalog load" in script
    deps = _depends_on(init)
    env = _environment(init)
    for component, key in ENV_KEYS.items():
        if component == "prometheus":  # scrapes the app; the app never calls it
            continue
        for host, _ in _hosts(component, env[key]):
            assert deps.get(host) == "service_healthy", f"init must wait for {host}"
            assert "healthcheck" in services[host], f"service {host}: no healthcheck"


def test_other_app_services_wait_for_init_to_succeed(app_services: dict[str, Service]) -> None:
    for name, service in app_services.items():
        if name != "init":
            condition = _depends_on(service).get("init")
            assert condition == "service_completed_successfully", f"service {name}"


def test_simulator_is_a_profile_service(app_services: dict[str, Service]) -> None:
    simulator = app_services["simulator"]
    assert simulator.get("profiles") == ["simulator"]
    assert _command(simulator)[:1] == ["simulate"]


def test_processor_instance_ids_are_stable_and_unique(processors: dict[str, Service]) -> None:
    ids: list[str] = []
    for name, service in processors.items():
        command = _command(service)
        assert "--instance-id" in command, f"service {name}: no --instance-id"
        ids.append(command[command.index("--instance-id") + 1])
        # Replicas would all share this service's one instance id.
        replicas = service.get("deploy", {}).get("replicas", 1)
        assert replicas == 1, f"service {name}"
        assert service.get("scale", 1) == 1, f"service {name}"
    assert len(set(ids)) == len(ids), f"duplicate instance ids: {ids}"


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _kafka_properties(env: dict[str, str]) -> dict[str, str]:
    """What the apache/kafka image writes to server.properties from its environment."""
    return {
        key.removeprefix("KAFKA_").lower().replace("_", ".").replace("...", "-")
        .replace("..", "_"): value
        for key, value in env.items()
        if key.startswith("KAFKA_") and key not in KAFKA_NON_PROPERTIES
    }


def test_kafka_matches_the_local_stack(services: dict[str, Service]) -> None:
    from stream.stack.kafka import _server_properties  # renders the local stack's file

    local = _properties(_server_properties(9092, 9093, Path("/tmp/kraft-combined-logs")))
    compose = _kafka_properties(_environment(services["kafka"]))
    same_local = {k: v for k, v in local.items() if k not in KAFKA_NETWORK_KEYS}
    same_compose = {k: v for k, v in compose.items() if k not in KAFKA_NETWORK_KEYS}
    assert same_compose == same_local
    # The settings the pipeline depends on, spelled out.
    assert compose["process.roles"] == "broker,controller"
    assert compose["offsets.topic.replication.factor"] == "1"
    assert compose["transaction.state.log.replication.factor"] == "1"
    assert compose["transaction.state.log.min.isr"] == "1"
    assert compose["auto.create.topics.enable"] == "false"
    # Every listener the local stack maps is mapped the same way.
    protocols = dict(item.split(":", 1)
                     for item in compose["listener.security.protocol.map"].split(","))
    for item in local["listener.security.protocol.map"].split(","):
        listener, protocol = item.split(":", 1)
        assert protocols.get(listener) == protocol, f"listener {listener}"
    assert compose["controller.quorum.voters"].startswith(f"{compose['node.id']}@")


def test_kafka_advertises_what_the_app_connects_to(
        services: dict[str, Service], app_services: dict[str, Service]) -> None:
    kafka = services["kafka"]
    advertised = _kafka_properties(_environment(kafka))["advertised.listeners"].split(",")
    for name, service in app_services.items():
        bootstrap = _environment(service)["KAFKA_BOOTSTRAP_SERVERS"]
        assert f"PLAINTEXT://{bootstrap}" in advertised, f"service {name}"
    assert "healthcheck" in kafka


def test_prometheus_scrapes_every_processor_and_sink(
        services: dict[str, Service], app_services: dict[str, Service],
        processors: dict[str, Service]) -> None:
    config = _load(PROMETHEUS_FILE)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert SCRAPE_JOB in jobs, f"no job {SCRAPE_JOB!r} in {PROMETHEUS_FILE}"
    job = jobs[SCRAPE_JOB]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    sinks = {name: service for name, service in app_services.items()
             if " ".join(_command(service)).split()[:1] == ["sink"]
             or "rating sink " in " ".join(_command(service))}
    assert sinks, "no sink services found"
    scraped = {**processors, **sinks}
    assert targets == {f"{name}:{METRICS_PORT}" for name in scraped} | {f"api:{API_PORT}"}
    for name, service in scraped.items():
        assert str(METRICS_PORT) in [str(port) for port in service.get("expose", [])], name
    mounts = [str(volume) for volume in services["prometheus"].get("volumes", [])]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_every_scraped_service_and_the_api_are_health_checked_on_their_healthz(
        app_services: dict[str, Service]) -> None:
    exposing = {name: service for name, service in app_services.items()
                if str(METRICS_PORT) in [str(port) for port in service.get("expose", [])]}
    assert len(exposing) >= 5, sorted(exposing)  # two processors, three sinks
    for name, service in exposing.items():
        probe = " ".join(service.get("healthcheck", {}).get("test", []))
        assert f"127.0.0.1:{METRICS_PORT}/healthz" in probe, f"{name}: {probe!r}"
    api_probe = " ".join(app_services["api"].get("healthcheck", {}).get("test", []))
    assert f"127.0.0.1:{API_PORT}/healthz" in api_probe, api_probe


def _final_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in dockerfile.splitlines()]
    starts = [index for index, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert starts, "Dockerfile: no FROM"
    return lines[starts[-1]:]


def test_dockerfile_runs_rating_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text.splitlines()
    final = _final_stage(text)
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users, "Dockerfile: the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["rating"]' in final
    assert f"EXPOSE {METRICS_PORT}" in final
    # Installed, the code finds the settings through RATING_SETTINGS (config/ is mounted).
    assert any("RATING_SETTINGS=/app/config/settings.yaml" in line for line in final)


def test_the_wheel_ships_the_avro_schemas(tmp_path: Path) -> None:
    """An installed package (the image, a pip install) must carry its contracts."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("usage_rating-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in ("usage_event", "rated_usage", "rejected_usage", "quota_alert"):
        assert f"schemas/{schema}.avsc" in names, schema
    assert "stream/py.typed" in names
    # Every top-level package pyproject.toml installs (the image runs `rating api` too).
    for package in ("stream", "processors", "sinks", "api", "reports"):
        assert f"{package}/__init__.py" in names, package
    # The hot path compiled by mypyc (setup.py), with the digests of its sources.
    for module in COMPILED_MODULES:
        stem = module.replace(".", "/")
        assert any(name.startswith(f"{stem}.cpython-") and name.endswith(".so")
                   for name in names), module
    assert "stream/compiled_sources.json" in names


def test_dockerignore_keeps_what_the_image_needs() -> None:
    """An allow-list: every package of pyproject.toml and the build hook must be in it."""
    lines = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert "*" in lines  # an allow-list
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    package_dirs = {f"{pattern.rstrip('*')}/" for pattern in packages}
    assert "api/" in package_dirs
    for needed in ("pyproject.toml", "setup.py", "config/", *sorted(package_dirs)):
        assert f"!{needed}" in lines, needed


def test_docker_compose_v1_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(f"docker-compose is not on PATH: run {ENSURE_SCRIPT} (make test does)")
    done = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr



def test_prometheus_loads_the_alert_rules(services: dict[str, Service]) -> None:
    config = _load(PROMETHEUS_FILE)
    assert "alerts.yml" in config.get("rule_files", [])
    mounts = [str(volume) for volume in services["prometheus"].get("volumes", [])]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert (PROMETHEUS_FILE.parent / "alerts.yml").is_file()


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(
        services: dict[str, Service]) -> None:
    grafana = services["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana:")
    mounts = [str(volume) for volume in grafana.get("volumes", [])]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    dashboard = ("./deploy/grafana/rating-dashboard.json:"
                 "/var/lib/grafana/dashboards/rating-dashboard.json:ro")
    assert dashboard in mounts
    for mount in mounts:
        source = mount.split(":", 1)[0]
        assert (ROOT / source).exists(), f"grafana mounts {source}, which does not exist"
    assert "prometheus" in _depends_on(grafana)



def _sink_choices() -> list[str]:
    import argparse

    from stream.cli import build_parser

    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    sink = commands.choices["sink"]
    return list(next(action for action in sink._actions if action.dest == "name").choices)


def test_every_sink_and_the_api_run_as_services(
        app_services: dict[str, Service], processors: dict[str, Service]) -> None:
    """Each `rating sink` choice has its service; the history sink and the API use the
    compose PostgreSQL (its DSN from the app environment, `$$` escaped for compose);
    the API is published; processors run the licence stage too."""
    commands = {name: " ".join(_command(service)) for name, service in app_services.items()}
    for sink in _sink_choices():
        assert any(f"sink {sink}" in command for command in commands.values()), sink
    assert '--url "$$POSTGRES_DSN"' in commands["billing-history"]
    assert '--history-url "$$POSTGRES_DSN"' in commands["api"]
    assert "--host 0.0.0.0" in commands["api"]
    assert "127.0.0.1:8080:8080" in [str(port) for port in app_services["api"]["ports"]]
    for name in processors:
        assert "router,rater,subscriptions" in commands[name], f"{name}: all stages"
