"""A real Prometheus scrapes a real processor; /healthz and /readyz on the real broker.

Prometheus comes from the local stack (Debian's package, `stream.stack.up({"prometheus"})`),
started here when it is not running and stopped again only if this module started it.
Its scrape targets come from the stack's file_sd targets file: the processor's
metrics port is added for the test and the previous content restored afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from stream import demo_prometheus, stack
from stream.stack.ports import LOOPBACK, free_port
from stream.stack.prometheus import ALERT_RULES
from tests.exposition import http_get, sample
from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline, ProcessorProcess

pytestmark = pytest.mark.integration

# The stack's Prometheus scrapes every 5 s and re-reads the targets file every 5 s.
SCRAPE_TIMEOUT_S = 90.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def prometheus_url() -> Iterator[str]:
    was_running = stack.status()["prometheus"].running
    endpoints = stack.up({"prometheus"}, quiet=True)
    assert endpoints.prometheus_url, "the stack started no Prometheus"
    try:
        yield endpoints.prometheus_url
    finally:
        if not was_running:
            stack.down({"prometheus"}, quiet=True)


@pytest.fixture
def scrape_target() -> Iterator[Callable[[str], None]]:
    """Adds ``host:port`` to the stack's targets file; restores the file afterwards."""
    path = stack.targets_file(stack.state_dir())
    before = path.read_text() if path.exists() else None

    def add(target: str) -> None:
        groups: list[dict[str, Any]] = json.loads(before) if before else []
        existing = [t for group in groups for t in group.get("targets", [])]
        stack.write_targets(path, [*existing, target])

    try:
        yield add
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            _restore(path, before)


def _restore(path: Path, text: str) -> None:
    tmp = path.with_suffix(".restore")
    tmp.write_text(text)
    tmp.replace(path)


def _eventually(what: str, probe: Callable[[], T | None], timeout_s: float,
                processes: list[ProcessorProcess], poll_s: float = 0.5) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes:
            process.check_alive()
        found = probe()
        if found is not None:
            return found
        time.sleep(poll_s)
    logs = "\n".join(p.log_tail() for p in processes)
    raise AssertionError(f"{what}: not within {timeout_s} s; processor log:\n{logs}")


def _endpoint(port: int, path: str) -> Callable[[], tuple[int, dict[str, Any]] | None]:
    def probe() -> tuple[int, dict[str, Any]] | None:
        try:
            status, body = http_get(f"http://{LOOPBACK}:{port}{path}", timeout=2)
        except OSError:
            return None  # not listening yet
        return status, json.loads(body)

    return probe


def _ready(port: int) -> Callable[[], tuple[int, dict[str, Any]] | None]:
    readyz = _endpoint(port, "/readyz")

    def probe() -> tuple[int, dict[str, Any]] | None:
        result = readyz()
        return result if result is not None and result[0] == 200 else None

    return probe


def _query(prometheus: str, promql: str) -> float | None:
    """The first series' value (None: no series); a failed query raises."""
    result = demo_prometheus.query(prometheus, promql)
    return result[0][1] if result else None


def test_prometheus_scrapes_what_the_processor_rated(
        pipeline: Pipeline, prometheus_url: str,
        scrape_target: Callable[[str], None]) -> None:
    pipeline.load_catalog()
    port = free_port()
    target = f"{LOOPBACK}:{port}"
    process = pipeline.start_processor("0", "--metrics-port", str(port))
    scrape_target(target)
    _eventually("/readyz 200", _ready(port), 90.0, [process])
    events = pipeline.publish(order_independent_mix(60, seed=11))
    pipeline.wait_caught_up()
    rated = len(pipeline.rated())
    assert 0 < rated < len(events)  # duplicates and Starts are not rated

    # The processor's own view first, then what Prometheus scraped from it.
    status, exposition = http_get(f"http://{target}/metrics")
    assert status == 200
    assert sample(exposition, "rating_end_to_end_seconds_count") == rated
    promql = f'sum(rating_events_rated_total{{instance="{target}"}})'
    scraped = _eventually(
        f"Prometheus at {prometheus_url} scraping {rated} rated events from {target}",
        lambda: (value if (value := _query(prometheus_url, promql)) == rated else None),
        SCRAPE_TIMEOUT_S, [process])
    assert scraped == rated

    # Lag per assigned input partition, back to (at most a commit marker) once caught up.
    lag_query = f'max(rating_consumer_lag_records{{instance="{target}"}})'
    _eventually("consumer lag scraped and caught up",
                lambda: (True if (lag := _query(prometheus_url, lag_query)) is not None
                         and lag <= 1 else None), SCRAPE_TIMEOUT_S, [process])
    series = _query(prometheus_url,
                    f'count(rating_consumer_lag_records{{instance="{target}"}})')
    partitions = (pipeline.settings.topics.events.partitions
                  + pipeline.settings.topics.by_account.partitions)
    assert series == partitions


def test_readyz_waits_for_the_catalog_then_the_assignment(pipeline: Pipeline) -> None:
    port = free_port()
    process = pipeline.start_processor("0", "--metrics-port", str(port))
    status, body = _eventually("the processor serving /readyz", _endpoint(port, "/readyz"),
                               30.0, [process])
    assert status == 503
    assert "catalog" in body["missing"], body
    health, _ = _eventually("/healthz", _endpoint(port, "/healthz"), 10.0, [process])
    assert health == 200  # waiting for a catalog is not being stuck

    version = pipeline.load_catalog()
    ready = _eventually("/readyz 200 after the catalog was loaded", _ready(port), 60.0,
                        [process])
    assert ready[1]["missing"] == []
    assert ready[1]["catalog_version"] == version
    assert ready[1]["partitions"] == (pipeline.settings.topics.events.partitions
                                      + pipeline.settings.topics.by_account.partitions)
    health_now = _endpoint(port, "/healthz")()
    assert health_now is not None
    assert health_now[0] == 200
    assert health_now[1]["loop"] == "running", health_now


def test_make_run_registers_its_processes_and_the_alert_rules_are_loaded(
        pipeline: Pipeline, prometheus_url: str, tmp_path: Path) -> None:
    """What `make run` does (stream/demo_prometheus.py): a processor and a sink registered
    with the stack's Prometheus under their `process` label; the summary it prints comes
    from Prometheus' answers; the rules of deploy/prometheus/alerts.yml are evaluated."""
    path = stack.targets_file(stack.state_dir())
    before = path.read_text() if path.exists() else None
    pipeline.load_catalog()
    processor_port = free_port()
    sink_port = free_port(avoid=[processor_port])
    processor = pipeline.start_processor("0", "--metrics-port", str(processor_port))
    sink = pipeline.start_sink("billing-history", "--url", f"sqlite:///{tmp_path / 'h.db'}",
                               "--metrics-port", str(sink_port))
    endpoints = [demo_prometheus.MetricsEndpoint("processor", processor_port),
                 demo_prometheus.MetricsEndpoint("billing-history", sink_port)]
    try:
        demo_prometheus.register(path, endpoints)
        pipeline.publish(order_independent_mix(60, seed=12))
        pipeline.wait_caught_up()
        rated = len(pipeline.rated())
        assert rated > 0
        view, complete = demo_prometheus.wait_for_scrape(
            prometheus_url, endpoints,
            lambda v: v.rated == rated and v.sink_written.get("billing-history") == rated,
            timeout_s=SCRAPE_TIMEOUT_S)
        processor.check_alive()
        sink.check_alive()
        assert complete, view
        assert view.up == {"processor": 1.0, "billing-history": 1.0}
        assert view.sink_up == {"billing-history": 1.0}
        assert view.lines(prometheus_url)[1] == f"  rating_events_rated_total: {rated}"

        status, body = http_get(f"{prometheus_url}/api/v1/rules")
        assert status == 200, body
        loaded = {rule["name"] for group in json.loads(body)["data"]["groups"]
                  for rule in group["rules"]}
        defined = {rule["alert"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
                   for rule in group["rules"]}
        assert loaded == defined
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            _restore(path, before)
