"""The local stack with real processes: Kafka, Apicurio, Redis, PostgreSQL, Prometheus.

One stack is started for the module in a temporary state dir (downloads come
from the shared cache) and stopped by the last test; the fast tests need no
service at all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from stream import stack
from stream.settings import KAFKA_ONLY, WITH_REDIS
from stream.stack import Endpoints, StackError, manager, procs
from stream.stack.endpoints import REQUIRED, write_env_file
from stream.stack.redis import RedisService

ALL_KEYS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "SCHEMA_REGISTRY_URL",
    "REDIS_URL",
    "POSTGRES_DSN",
    "PROMETHEUS_URL",
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(pid, 0) but is no longer running.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@dataclass(frozen=True)
class RunningStack:
    state_dir: Path
    endpoints: Endpoints
    pids: dict[str, int]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state_dir = tmp_path_factory.mktemp("stack")
    try:
        endpoints = stack.up(state_dir=state_dir)
        pids = {
            name: item.pid for name, item in stack.status(state_dir).items() if item.pid is not None
        }
        yield RunningStack(state_dir, endpoints, pids)
    finally:
        # Idempotent: normally test_down_stops_everything has done it already.
        stack.down(state_dir=state_dir)


@pytest.mark.integration
def test_kafka_metadata_and_round_trip(running: RunningStack) -> None:
    bootstrap = running.endpoints.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert admin.list_topics(timeout=10).brokers
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        got = None
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got = (msg.key(), msg.value())
        assert got == (b"k", b"hello")
    finally:
        consumer.close()


@pytest.mark.integration
def test_registry_registers_a_schema(running: RunningStack) -> None:
    client = SchemaRegistryClient({"url": running.endpoints.schema_registry_url})
    avro = {"type": "record", "name": "Probe", "fields": [{"name": "a", "type": "string"}]}
    schema_id = client.register_schema("stack-probe-value", Schema(json.dumps(avro), "AVRO"))
    assert "stack-probe-value" in client.get_subjects()
    fetched = client.get_schema(schema_id).schema_str
    assert fetched is not None
    assert json.loads(fetched)["name"] == "Probe"
    assert client.get_latest_version("stack-probe-value").schema_id == schema_id


@pytest.mark.integration
def test_redis_ping_set_get(running: RunningStack) -> None:
    client = redis.Redis.from_url(running.endpoints.redis_url)
    try:
        assert client.ping()
        client.set("stack-test", "v")
        assert client.get("stack-test") == b"v"
    finally:
        client.close()


@pytest.mark.integration
def test_env_file_and_resolve(running: RunningStack) -> None:
    values = stack.read_env_file(running.state_dir / "env")
    assert values["KAFKA_BOOTSTRAP_SERVERS"] == running.endpoints.kafka_bootstrap
    resolved = stack.resolve_endpoints({}, state_dir=running.state_dir)
    assert resolved == running.endpoints


@pytest.mark.integration
def test_up_again_reuses_the_running_processes(running: RunningStack) -> None:
    again = stack.up(state_dir=running.state_dir, quiet=True)
    assert again == running.endpoints
    pids = {n: s.pid for n, s in stack.status(running.state_dir).items() if s.pid is not None}
    assert pids == running.pids


@pytest.mark.integration
def test_provision_reuses_the_stack_and_leaves_it_running(running: RunningStack) -> None:
    endpoints, cleanup = stack.provide_endpoints(
        state_dir=running.state_dir, environ={"RATING_STACK_PROVIDER": "local"}
    )
    assert endpoints == running.endpoints
    cleanup()
    assert stack.is_running(state_dir=running.state_dir)


@pytest.mark.integration
def test_status_reports_running(running: RunningStack) -> None:
    current = stack.status(running.state_dir)
    for name in ("kafka", "registry", "redis"):
        assert current[name].running, name
        assert current[name].port is not None
    assert not current["postgres"].running
    assert any(
        line.startswith("kafka") and "running" in line
        for line in stack.status_lines(running.state_dir)
    )


@pytest.mark.integration
def test_down_stops_everything(running: RunningStack) -> None:
    """Must stay the module's last stack test: it stops the shared stack."""
    stack.down(state_dir=running.state_dir, quiet=True)
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in running.pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in running.pids.values()), running.pids
    assert not any(s.running for s in stack.status(running.state_dir).values())
    assert not (running.state_dir / "env").exists()
    assert not (running.state_dir / "kafka").exists()
    stack.down(state_dir=running.state_dir, quiet=True)  # idempotent


@pytest.mark.integration
def test_optional_postgres_and_prometheus(tmp_path: Path) -> None:
    state_dir = tmp_path / "optional"
    try:
        endpoints = stack.up({"postgres", "prometheus"}, state_dir, quiet=True)
        assert endpoints.postgres_dsn is not None
        assert endpoints.prometheus_url is not None
        assert endpoints.kafka_bootstrap == ""
        done = subprocess.run(
            ["psql", endpoints.postgres_dsn, "-tAc", "select current_database()"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert done.stdout.strip() == "rating"

        # Prometheus scrapes itself once told to through the file_sd targets.
        stack.write_targets(
            stack.targets_file(state_dir), [endpoints.prometheus_url.removeprefix("http://")]
        )
        deadline, health = time.monotonic() + 40, None
        while health != "up" and time.monotonic() < deadline:
            time.sleep(0.5)
            with urllib.request.urlopen(f"{endpoints.prometheus_url}/api/v1/targets") as resp:
                active = json.load(resp)["data"]["activeTargets"]
            health = active[0]["health"] if active else None
        assert health == "up"
        pids = [s.pid for s in stack.status(state_dir).values() if s.pid is not None]
        assert len(pids) == 2
    finally:
        stack.down(state_dir=state_dir, quiet=True)
    assert all(_gone(pid) for pid in pids)
    assert not any(s.running for s in stack.status(state_dir).values())


def test_a_dead_component_restarts_on_its_old_port(tmp_path: Path) -> None:
    """Clients that read the env file keep the address: the aggregates sink retried the old
    port for good when a killed Redis came back on a new one."""
    state_dir = tmp_path / "restart"
    try:
        before = stack.up({"redis"}, state_dir, quiet=True).redis_url
        pid = stack.status(state_dir)["redis"].pid
        assert pid is not None
        os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack.up({"redis"}, state_dir, quiet=True).redis_url == before
        assert stack.status(state_dir)["redis"].pid not in (None, pid)
    finally:
        stack.down(state_dir=state_dir, quiet=True)


# --- fast tests: no service started ----------------------------------------


def test_environment_wins_over_env_file_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env_file(
        tmp_path / "env",
        Endpoints(
            kafka_bootstrap="127.0.0.1:1111",
            schema_registry_url="http://127.0.0.1:2222/apis/ccompat/v7",
            redis_url="redis://127.0.0.1:3333/0",
            postgres_dsn="postgresql://rating@127.0.0.1:4444/rating",
        ),
    )
    for key in ALL_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("REDIS_URL", "")  # empty counts as unset
    resolved = stack.resolve_endpoints(state_dir=tmp_path)
    assert resolved == Endpoints(
        kafka_bootstrap="broker:9092",
        schema_registry_url="http://127.0.0.1:2222/apis/ccompat/v7",
        redis_url="redis://127.0.0.1:3333/0",
        postgres_dsn="postgresql://rating@127.0.0.1:4444/rating",
        prometheus_url=None,
    )


def test_nothing_known_names_the_variable_and_make_up(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="make up") as caught:
        stack.resolve_endpoints({"SCHEMA_REGISTRY_URL": "http://x"}, state_dir=tmp_path)
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(caught.value)
    assert "REDIS_URL" in str(caught.value)


def _stack_record(state_dir: Path, component: str, pid: int, start_ticks: int | None,
                  port: int = 1, endpoint: str = "x") -> dict[str, object]:
    """One component as ``stack.json`` records it."""
    return {"component": component, "pid": pid, "start_ticks": start_ticks, "port": port,
            "endpoint": endpoint, "data_dir": str(state_dir / component),
            "log": str(state_dir / f"logs/{component}.log")}


def test_env_file_of_a_dead_stack_is_refused(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = _stack_record(tmp_path, "kafka", dead.pid, 1, 1111, "127.0.0.1:1111")
    (tmp_path / "stack.json").write_text(json.dumps({"components": {"kafka": record}}))
    write_env_file(tmp_path / "env", Endpoints("127.0.0.1:1111", "http://r", "redis://x"))
    with pytest.raises(StackError, match="not running"):
        stack.resolve_endpoints({}, state_dir=tmp_path)


def test_a_dead_component_the_caller_does_not_need_is_left_out(tmp_path: Path) -> None:
    """A Prometheus stopped a moment ago (a parallel test, `stack down prometheus`) must
    not stop a processor, which needs only Kafka, the registry and Redis."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive, alive_ticks = os.getpid(), procs.start_ticks(os.getpid())
    components = {name: _stack_record(tmp_path, name, alive, alive_ticks)
                  for name in ("kafka", "registry", "redis")}
    components["prometheus"] = _stack_record(tmp_path, "prometheus", dead.pid, 1)
    (tmp_path / "stack.json").write_text(json.dumps({"components": components}))
    write_env_file(tmp_path / "env", Endpoints("127.0.0.1:1111", "http://r", "redis://x",
                                               prometheus_url="http://127.0.0.1:9090"))
    resolved = stack.resolve_endpoints({}, state_dir=tmp_path, needed=REQUIRED)
    assert resolved == Endpoints("127.0.0.1:1111", "http://r", "redis://x", prometheus_url=None)
    with pytest.raises(StackError, match="names prometheus but that process is not running"):
        stack.resolve_endpoints({}, state_dir=tmp_path)


def test_a_dead_redis_stops_only_what_uses_redis(tmp_path: Path) -> None:
    """`rating produce` or `rating process` read Kafka only: a killed local Redis must not
    refuse them, while the Redis sinks and the API are told to restart it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive, alive_ticks = os.getpid(), procs.start_ticks(os.getpid())
    components = {name: _stack_record(tmp_path, name, alive, alive_ticks)
                  for name in ("kafka", "registry")}
    components["redis"] = _stack_record(tmp_path, "redis", dead.pid, 1)
    (tmp_path / "stack.json").write_text(json.dumps({"components": components}))
    write_env_file(tmp_path / "env", Endpoints("127.0.0.1:1111", "http://r", "redis://x"))
    resolved = stack.resolve_endpoints({}, state_dir=tmp_path, needed=KAFKA_ONLY)
    assert resolved == Endpoints("127.0.0.1:1111", "http://r", "redis://x")
    with pytest.raises(StackError, match="names redis but that process is not running"):
        stack.resolve_endpoints({}, state_dir=tmp_path, needed=WITH_REDIS)


def test_a_publisher_needs_no_redis_url(tmp_path: Path) -> None:
    """A platform service names Kafka and the registry only: it was refused for want of a
    REDIS_URL it never uses."""
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "SCHEMA_REGISTRY_URL": "http://r"}
    resolved = stack.resolve_endpoints(environ, state_dir=tmp_path, needed=KAFKA_ONLY)
    assert resolved == Endpoints("k:9092", "http://r", "")
    with pytest.raises(StackError, match="no REDIS_URL known"):
        stack.resolve_endpoints(environ, state_dir=tmp_path, needed=WITH_REDIS)


def test_env_file_quotes_round_trip(tmp_path: Path) -> None:
    odd = Endpoints("a:1", "http://r", "redis://x", postgres_dsn="postgresql://u@h/db?x=1&y=2 z")
    write_env_file(tmp_path / "env", odd)
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . {tmp_path / "env"}; echo "$POSTGRES_DSN"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == odd.postgres_dsn
    assert stack.read_env_file(tmp_path / "env")["POSTGRES_DSN"] == odd.postgres_dsn


def test_fixed_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match=str(port)):
            stack.up({"redis"}, tmp_path, ports={"redis": port}, quiet=True)
    assert not stack.status(tmp_path)["redis"].running


def test_service_dying_at_start_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skip the early port check so that redis itself meets the busy port.
    monkeypatch.setattr(manager, "ensure_free", lambda port, component: None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError, match="redis exited") as caught:
            stack.up({"redis"}, tmp_path, ports={"redis": port}, quiet=True)
    assert "Address already in use" in str(caught.value)  # from redis's own log
    assert not stack.status(tmp_path)["redis"].running


def test_service_never_ready_is_stopped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RedisService, "ready_timeout", 1.0)
    monkeypatch.setattr(RedisService, "probe", lambda self, record: False)
    with pytest.raises(StackError, match="redis not ready in time") as caught:
        stack.up({"redis"}, tmp_path, quiet=True)
    assert "Ready to accept connections" in str(caught.value)
    pid = int(str(caught.value).split("pid ")[1].split()[0])
    assert _gone(pid)
    assert not (tmp_path / "stack.json").exists()


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(StackError, match="java"):
        stack.up({"kafka"}, tmp_path / "state", quiet=True)
    assert not stack.status(tmp_path / "state")["kafka"].running


def test_unknown_component_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="zookeeper"):
        stack.up({"zookeeper"}, tmp_path, quiet=True)


def test_provision_uses_environment_without_starting_anything(tmp_path: Path) -> None:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "SCHEMA_REGISTRY_URL": "http://r:8080/apis/ccompat/v7",
        "REDIS_URL": "redis://x:6379/0",
    }
    endpoints, cleanup = stack.provide_endpoints(state_dir=tmp_path, environ=environ)
    assert endpoints == Endpoints("k:9092", "http://r:8080/apis/ccompat/v7", "redis://x:6379/0")
    cleanup()
    assert not (tmp_path / "stack.json").exists()
