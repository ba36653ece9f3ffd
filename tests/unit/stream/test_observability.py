"""The ops HTTP endpoints and readiness, without a broker."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from stream import metrics
from stream.observability import MetricsPortError, OpsServer, Readiness, start_server, stop_server
from tests.exposition import http_get

PARTITIONS = [TopicPartition("usage.events", 0), TopicPartition("usage.by-account", 0)]


def _get(server: OpsServer, path: str) -> tuple[int, str]:
    return http_get(f"http://127.0.0.1:{server.port}{path}")


def _json(server: OpsServer, path: str) -> tuple[int, dict[str, Any]]:
    status, body = _get(server, path)
    return status, json.loads(body)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def readiness(clock: FakeClock) -> Readiness:
    return Readiness(stuck_after_s=0.5, clock=clock)


@pytest.fixture
def server(readiness: Readiness) -> Iterator[OpsServer]:
    started = start_server(0, readiness, host="127.0.0.1")
    try:
        yield started
    finally:
        stop_server(started)


def test_metrics_are_served_in_the_exposition_format(server: OpsServer) -> None:
    metrics.END_TO_END_SECONDS.observe(0.2)
    status, body = _get(server, "/metrics")
    assert status == 200
    assert "rating_end_to_end_seconds_bucket" in body
    assert "# TYPE rating_events_rated_total counter" in body


def test_readyz_names_what_is_missing_until_everything_is_there(
        server: OpsServer, readiness: Readiness) -> None:
    status, body = _json(server, "/readyz")
    assert status == 503
    assert body["missing"] == ["assignment", "state", "catalog"]
    readiness.catalog_loaded("v1")
    readiness.assigning(PARTITIONS)
    status, body = _json(server, "/readyz")
    assert (status, body["missing"]) == (503, ["state"])
    readiness.assigned(PARTITIONS)
    status, body = _json(server, "/readyz")
    assert status == 200
    assert body == {"ready": True, "missing": [], "partitions": 2, "catalog_version": "v1"}
    readiness.revoked(PARTITIONS)
    status, body = _json(server, "/readyz")
    assert (status, body["missing"]) == (503, ["assignment", "state"])


def test_a_router_only_process_has_no_state_to_restore() -> None:
    readiness = Readiness(needs_state=False)
    readiness.catalog_loaded("v1")
    assert readiness.missing() == ["assignment"]
    readiness.assigning(PARTITIONS)
    assert readiness.missing() == []


def test_a_sink_needs_its_partitions_and_a_reachable_store() -> None:
    readiness = Readiness(needs_state=False, needs_catalog=False)
    assert readiness.missing() == ["assignment"]
    readiness.assigned(PARTITIONS)
    assert readiness.missing() == []
    readiness.dependency_down("store")
    assert readiness.readiness() == (False, {"ready": False, "missing": ["store"],
                                             "partitions": 2, "catalog_version": None})
    readiness.dependency_down("store")  # once per outage, whatever the retries
    readiness.dependency_up("store")
    assert readiness.readiness()[0]


def test_healthz_fails_when_the_loop_stops_turning(
        server: OpsServer, readiness: Readiness, clock: FakeClock) -> None:
    assert _json(server, "/healthz")[0] == 200  # starting
    readiness.heartbeat()
    status, body = _json(server, "/healthz")
    assert (status, body["loop"]) == (200, "running")
    clock.now += 5
    status, body = _json(server, "/healthz")
    assert (status, body["loop"]) == (503, "stuck")
    readiness.assigning(PARTITIONS)  # a long restore is not a stuck loop
    assert _json(server, "/healthz")[0] == 200


def test_unknown_paths_are_404(server: OpsServer) -> None:
    assert _get(server, "/nope")[0] == 404


def test_a_taken_port_fails_unless_it_was_the_default(readiness: Readiness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortError, match=f"port {port}"):
            start_server(port, readiness, host="127.0.0.1")
        fallback = start_server(port, readiness, host="127.0.0.1", fallback=True)
        try:
            assert fallback.port != port
            assert _get(fallback, "/metrics")[0] == 200
        finally:
            stop_server(fallback)
