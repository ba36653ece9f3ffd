"""Per-process HTTP endpoints for operations: ``/metrics``, ``/healthz``, ``/readyz``.

A stdlib ThreadingHTTPServer in a daemon thread, so a slow scrape never blocks
the exactly-once loop and the server dies with the process.

- ``/metrics``  the prometheus-client exposition of the default registry.
- ``/healthz``  200 while the loop turns: its last iteration is less than
  ``stuck_after_s`` old (before the loop starts and while partitions are being
  restored, the process counts as healthy: it is busy, not stuck). 503 otherwise.
- ``/readyz``   200 only with partitions assigned, their state restored and a
  catalog loaded; else 503 and ``{"ready": false, "missing": [...]}`` naming what
  is missing (``assignment``, ``state``, ``catalog``, or a store that is down,
  e.g. ``store``). A sink needs neither state nor catalog, only its partitions
  and a reachable store.

Served by ``rating process`` and by every ``rating sink``.

The loop thread updates a :class:`Readiness`; HTTP threads only read it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from processors.errors import RatingError
from stream import metrics

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9400
METRICS_PORT_ENV = "RATING_METRICS_PORT"
DEFAULT_STUCK_AFTER_S = 60.0
BIND_HOST = "0.0.0.0"  # containers are scraped from another host name


class Readiness:
    """What /healthz and /readyz report; written by the loop thread, read by HTTP threads."""

    def __init__(self, stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
                 needs_state: bool = True, needs_catalog: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._stuck_after_s = stuck_after_s
        self._needs_state = needs_state
        self._needs_catalog = needs_catalog
        self._down: set[str] = set()  # dependencies currently unreachable
        self._assignment: frozenset[tuple[str, int]] = frozenset()
        self._restoring = False
        self._restored = not needs_state
        self._catalog_version: str | None = None
        self._last_iteration: float | None = None  # monotonic; None until the loop runs

    # -- written by the loop thread ------------------------------------------------
    def heartbeat(self) -> None:
        with self._lock:
            self._last_iteration = self._clock()

    def catalog_loaded(self, version: str) -> None:
        with self._lock:
            self._catalog_version = version

    def dependency_down(self, name: str) -> None:
        """``name`` (e.g. a sink's store) is unreachable: not ready until it is back."""
        with self._lock:
            self._down.add(name)

    def dependency_up(self, name: str) -> None:
        with self._lock:
            self._down.discard(name)

    def assigning(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions arrived; their state is being restored."""
        with self._lock:
            self._assignment = frozenset((tp.topic, tp.partition) for tp in partitions)
            self._restoring = True
            self._restored = not self._needs_state

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """The stages have restored the state of ``partitions``."""
        with self._lock:
            self._assignment = frozenset((tp.topic, tp.partition) for tp in partitions)
            self._restoring = False
            self._restored = True
        self.heartbeat()  # a long restore is not a stuck loop

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        with self._lock:
            self._assignment = frozenset()
            self._restoring = False
            self._restored = not self._needs_state

    # -- read by the HTTP threads ---------------------------------------------------
    def missing(self) -> list[str]:
        with self._lock:
            missing = []
            if not self._assignment:
                missing.append("assignment")
            if not self._restored:
                missing.append("state")
            if self._needs_catalog and self._catalog_version is None:
                missing.append("catalog")
            return missing + sorted(self._down)

    def health(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self._last_iteration is None:
                return True, {"alive": True, "loop": "starting"}
            if self._restoring:
                return True, {"alive": True, "loop": "restoring state"}
            age = self._clock() - self._last_iteration
            healthy = age <= self._stuck_after_s
            return healthy, {"alive": True, "loop": "running" if healthy else "stuck",
                             "last_iteration_s_ago": round(age, 3),
                             "stuck_after_s": self._stuck_after_s}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        missing = self.missing()
        with self._lock:
            body = {"ready": not missing, "missing": missing,
                    "partitions": len(self._assignment),
                    "catalog_version": self._catalog_version}
        return not missing, body


class LagTracker:
    """``rating_consumer_lag_records{topic,partition}`` from the consumer's own view.

    High watermark (cached by librdkafka from fetch responses: no broker round
    trip) minus the consumer's position, at most every ``interval_s``. A
    partition nothing was consumed from since the assignment has no position:
    its start (the committed offset, else the low watermark) is looked up once
    per assignment instead. On transactional input a caught-up partition may
    show 1 (the commit marker).
    """

    def __init__(self, consumer: Consumer, interval_s: float = 5.0,
                 timeout_s: float = 5.0) -> None:
        self._consumer = consumer
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._next = 0.0
        self._partitions: list[TopicPartition] = []
        self._starts: dict[tuple[str, int], int] | None = None  # looked up once, lazily

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._forget()
        self._partitions = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self._starts = None
        self._next = 0.0

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._forget()
        self._partitions = []
        self._starts = None

    def maybe_update(self) -> None:
        now = time.monotonic()
        if now < self._next or not self._partitions:
            return
        self._next = now + self._interval_s
        try:
            positions = self._consumer.position(self._partitions)
            for tp in positions:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is None or high < 0:
                    continue  # nothing fetched yet for this partition
                position = tp.offset if tp.offset >= 0 else self._start(tp)
                if position is None:
                    continue
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, high - position))
        except Exception as exc:  # never let a metric stop the loop
            log.debug("consumer lag not updated: %s", exc)

    def _start(self, tp: TopicPartition) -> int | None:
        """Where consumption of an untouched partition starts (one lookup per assignment)."""
        if self._starts is None:
            self._starts = {}
            committed = self._consumer.committed(self._partitions, timeout=self._timeout_s)
            for item in committed:
                if item.offset >= 0:
                    offset = item.offset
                else:
                    # No committed offset: auto.offset.reset=earliest. The cached low
                    # watermark only: an uncached lookup is a broker round trip queued
                    # behind the consumer's long-poll fetch (up to fetch.wait.max.ms per
                    # partition), and this runs on the loop thread.
                    offset, _high = self._consumer.get_watermark_offsets(item, cached=True)
                    if offset is None or offset < 0:
                        continue
                self._starts[(item.topic, item.partition)] = offset
        return self._starts.get((tp.topic, tp.partition))

    def _forget(self) -> None:
        for tp in self._partitions:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))


class _Handler(BaseHTTPRequestHandler):
    server: OpsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        elif path == "/healthz":
            self._json(*self.server.readiness.health())
        elif path == "/readyz":
            self._json(*self.server.readiness.readiness())
        else:
            self._send(404, "text/plain; charset=utf-8",
                       b"not found: try /metrics, /healthz or /readyz\n")

    def _json(self, ok: bool, body: dict[str, Any]) -> None:
        self._send(200 if ok else 503, "application/json",
                   (json.dumps(body, sort_keys=True) + "\n").encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes and probes every few seconds: not worth a log line each.
        log.debug("%s %s", self.address_string(), format % args)


class OpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, readiness: Readiness, host: str = BIND_HOST) -> None:
        self.readiness = readiness
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def start_server(port: int, readiness: Readiness, *, fallback: bool = False,
                 host: str = BIND_HOST) -> OpsServer:
    """Serve the endpoints on ``port`` (0: a free one) in a daemon thread.

    With ``fallback`` (the port was not asked for explicitly) a port already in
    use gives a free one and a warning instead of an error: several processes
    on one host (tests, `make run`) each get their own.
    """
    try:
        server = OpsServer(port, readiness, host)
    except OSError as exc:
        if not fallback or exc.errno != errno.EADDRINUSE:
            raise MetricsPortError(port, exc) from None
        server = OpsServer(0, readiness, host)
        log.warning("metrics port %d is in use; serving /metrics, /healthz, /readyz on "
                    "port %d instead (set --metrics-port or %s to choose)", port,
                    server.port, METRICS_PORT_ENV)
    thread = threading.Thread(target=server.serve_forever, name="ops-http", daemon=True)
    thread.start()
    # Port 0 picked one: that is news. A chosen port is not (and a taken one was warned
    # about above): one line at start-up for nothing would precede every start-up error.
    log.log(logging.INFO if port == 0 else logging.DEBUG,
            "serving /metrics, /healthz, /readyz on %s:%d", host, server.port)
    return server


def stop_server(server: OpsServer) -> None:
    server.shutdown()
    server.server_close()


class MetricsPortError(RatingError):
    """The metrics port cannot be bound (taken, privileged, invalid)."""

    def __init__(self, port: int, cause: OSError) -> None:
        super().__init__(f"cannot serve metrics on port {port}: {cause.strerror or cause}; "
                         f"pick another with --metrics-port or {METRICS_PORT_ENV} (0 = any)")


class OpsListener:
    """The loop's AssignmentListener: readiness and, once the consumer exists, lag."""

    def __init__(self, readiness: Readiness, lag: LagTracker | None = None) -> None:
        self.readiness = readiness
        self.lag = lag

    def assigning(self, partitions: Sequence[TopicPartition]) -> None:
        self.readiness.assigning(partitions)

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self.readiness.assigned(partitions)
        if self.lag is not None:
            self.lag.assigned(partitions)

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self.readiness.revoked(partitions)
        if self.lag is not None:
            self.lag.revoked(partitions)

    def between_batches(self, catalog_version: str | None = None) -> None:
        """Called by the loop thread every iteration (a sink has no catalog)."""
        self.readiness.heartbeat()
        if catalog_version is not None:
            self.readiness.catalog_loaded(catalog_version)
        if self.lag is not None:
            self.lag.maybe_update()
