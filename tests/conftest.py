"""Session services for integration tests.

Services named by KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL / REDIS_URL /
POSTGRES_DSN win;
else testcontainers when a Docker daemon answers; else the local stack
(Kafka and Apicurio from Maven Central, Redis and PostgreSQL from Debian), started if needed.

With pytest-xdist (``-n N``, as ``make test`` runs), the controller provides the
services once, before the workers start, and the workers inherit them through those
variables: a worker that started the stack itself would stop it under the others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stream.settings import Connections
from stream.stack import Endpoints
from stream.stack.provision import provide_endpoints
from tests.integration.harness import Pipeline

SERVICES = ("kafka", "registry", "redis", "postgres")
UNIT_TESTS = Path(__file__).resolve().parent / "unit"


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    provided, cleanup = provide_endpoints(SERVICES)
    try:
        yield provided
    finally:
        cleanup()


@pytest.fixture(scope="session")
def connections(endpoints: Endpoints) -> Connections:
    return Connections(kafka_bootstrap=endpoints.kafka_bootstrap,
                       schema_registry_url=endpoints.schema_registry_url,
                       redis_url=endpoints.redis_url)


@pytest.fixture
def shared_redis(connections: Connections,
                 request: pytest.FixtureRequest) -> Iterator[tuple[redis.Redis, str]]:
    """A client of the session's Redis and a key prefix of this test's own; the keys under
    it are deleted afterwards."""
    client = redis.Redis.from_url(connections.redis_url, decode_responses=True)
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    prefix = f"rating-test-{module}-{uuid.uuid4().hex[:10]}"
    try:
        yield client, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="session")
def postgres_dsn(endpoints: Endpoints) -> str:
    """The session's PostgreSQL (POSTGRES_DSN, a container, or the local stack's)."""
    assert endpoints.postgres_dsn, "the session services came up without PostgreSQL"
    return endpoints.postgres_dsn


@pytest.fixture
def pipeline(connections: Connections, tmp_path: Path) -> Iterator[Pipeline]:
    built = Pipeline(connections, tmp_path)
    try:
        yield built
    finally:
        built.stop_all()


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, on the controller: provide the services before any worker starts."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or os.environ.get("PYTEST_XDIST_WORKER") or only_unit_tests(config.args):
        return
    provided, cleanup = provide_endpoints(SERVICES)
    os.environ.update(provided.as_env())  # execnet workers inherit the environment
    config.add_cleanup(cleanup)


def only_unit_tests(args: list[str]) -> bool:
    """True when every path pytest was given is under tests/unit (they need no service)."""
    paths = [Path(arg.partition("::")[0]).resolve() for arg in args]
    return bool(paths) and all(path.is_relative_to(UNIT_TESTS) for path in paths)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test old compiled code: a hot-path module edited since ``make compile``
    would otherwise be tested as it was before the edit."""
    from stream.compiled import engine_build

    build = engine_build()
    if build.stale:
        raise pytest.UsageError(f"run `make compile` first: {build.describe()}")
