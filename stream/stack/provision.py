"""Where test fixtures get their services from, in order of preference.

1. Variables already set in the environment (``KAFKA_BOOTSTRAP_SERVERS`` …):
   a CI service container or a developer's own cluster. Never stopped by us.
2. A Docker daemon that answers: throw-away containers via testcontainers.
3. Otherwise the local stack (``up()``), reused when already running.

Each component is resolved on its own: with only ``KAFKA_BOOTSTRAP_SERVERS``
set, Kafka comes from it and Redis from Docker or the local stack.
``RATING_STACK_PROVIDER=local`` (or ``docker``) skips the Docker probe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from stream.stack.endpoints import ENV_KEYS, Endpoints
from stream.stack.errors import StackError
from stream.stack.manager import DEFAULT_COMPONENTS, down, ordered_components, status, up
from stream.stack.registry import CCOMPAT_PATH

Cleanup = Callable[[], None]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
REGISTRY_IMAGE = "apicurio/apicurio-registry:3.0.9"
REDIS_IMAGE = "redis:7.2-alpine"
POSTGRES_IMAGE = "postgres:15-alpine"
CONTAINER_START_TIMEOUT_S = 120
# Components testcontainers cannot give us here: Prometheus in a container
# could not scrape the app on the host, so it always comes from the local stack.
_CONTAINERISED = frozenset({"kafka", "registry", "redis", "postgres"})


def docker_available() -> bool:
    """True when a Docker daemon answers a ping within about two seconds."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no daemon, no socket, no permission: all mean "no"
        return False


def _start_containers(wanted: set[str]) -> tuple[dict[str, str], list[Any]]:
    # Imported here: testcontainers pulls in the docker client, which the
    # local-stack path (and the app at run time) never needs.
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    values: dict[str, str] = {}
    started: list[Any] = []
    try:
        if "kafka" in wanted:
            kafka = (
                KafkaContainer(KAFKA_IMAGE)
                .with_kraft()
                # Same broker behaviour as the local stack (see stack/kafka.py).
                .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
                .with_env("KAFKA_NUM_PARTITIONS", "3")
                .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            )
            kafka.start(timeout=CONTAINER_START_TIMEOUT_S)
            started.append(kafka)
            values["kafka"] = kafka.get_bootstrap_server()
        if "registry" in wanted:
            registry = (
                DockerContainer(REGISTRY_IMAGE)
                .with_exposed_ports(8080)
                .waiting_for(
                    HttpWaitStrategy(8080, f"{CCOMPAT_PATH}/subjects")
                    .for_status_code(200)
                    .with_startup_timeout(CONTAINER_START_TIMEOUT_S)
                )
            )
            registry.start()
            started.append(registry)
            host, port = registry.get_container_host_ip(), registry.get_exposed_port(8080)
            values["registry"] = f"http://{host}:{port}{CCOMPAT_PATH}"
        if "redis" in wanted:
            redis = RedisContainer(REDIS_IMAGE)
            redis.start()
            started.append(redis)
            host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
            values["redis"] = f"redis://{host}:{port}/0"
        if "postgres" in wanted:
            postgres = PostgresContainer(
                POSTGRES_IMAGE, username="rating", password="rating", dbname="rating", driver=None
            )
            postgres.start()
            started.append(postgres)
            values["postgres"] = postgres.get_connection_url()
    except BaseException:
        _stop_containers(started)
        raise
    return values, started


def _stop_containers(containers: list[Any]) -> None:
    for container in reversed(containers):
        # Best effort: Ryuk removes whatever a failed stop leaves behind.
        with contextlib.suppress(Exception):
            container.stop()


def provide_endpoints(
    components: Iterable[str] = DEFAULT_COMPONENTS,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Endpoints, Cleanup]:
    """Endpoints for ``components`` and a callable that releases what was started.

    The cleanup stops only what this call started: containers, or local-stack
    components that were not running before (a stack from `make up` stays).
    """
    env = os.environ if environ is None else environ
    wanted = set(ordered_components(components))
    values = {name: env[ENV_KEYS[name]] for name in wanted if env.get(ENV_KEYS[name])}
    missing = wanted - set(values)
    cleanups: list[Cleanup] = []

    provider = env.get("RATING_STACK_PROVIDER", "auto")
    if provider not in ("auto", "docker", "local"):
        raise StackError(f"RATING_STACK_PROVIDER={provider!r}: expected auto, docker or local")
    use_docker = provider == "docker" or (provider == "auto" and bool(missing & _CONTAINERISED))
    if use_docker and missing & _CONTAINERISED and docker_available():
        found, containers = _start_containers(missing & _CONTAINERISED)
        values.update(found)
        missing -= set(found)
        cleanups.append(lambda: _stop_containers(containers))
    elif provider == "docker" and missing & _CONTAINERISED:
        raise StackError("RATING_STACK_PROVIDER=docker but no Docker daemon answers")

    if missing:
        before = status(state_dir)
        try:
            endpoints = up(missing, state_dir)
        except BaseException:
            for cleanup in cleanups:
                cleanup()
            raise
        ours = {name for name in missing if not before[name].running}
        local = {
            "kafka": endpoints.kafka_bootstrap,
            "registry": endpoints.schema_registry_url,
            "redis": endpoints.redis_url,
            "postgres": endpoints.postgres_dsn or "",
            "prometheus": endpoints.prometheus_url or "",
        }
        values.update({name: local[name] for name in missing})
        if ours:
            cleanups.append(lambda: down(ours, state_dir))

    def cleanup_all() -> None:
        for cleanup in reversed(cleanups):
            cleanup()

    return Endpoints.from_values(values), cleanup_all
