"""Wires one processor process: settings -> clients -> stages -> the exactly-once loop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from processors.catalog.model import MissingPolicy
from processors.errors import RatingError
from processors.quota.model import UnknownInstances
from stream.catalog_feed import CatalogFeed, WaitStopped
from stream.clients import (
    admin_client,
    processing_consumer,
    reading_consumer,
    registry_client,
    transactional_producer,
)
from stream.compiled import engine_build
from stream.contracts import build_codecs
from stream.loop import ExactlyOnceLoop, Stage
from stream.observability import (
    DEFAULT_STUCK_AFTER_S,
    LagTracker,
    OpsListener,
    OpsServer,
    Readiness,
    start_server,
    stop_server,
)
from stream.seen_ids_on_disk import DedupGauges, partition_states
from stream.settings import Connections, Settings
from stream.stages import DecodedEvents, RaterStage, RouterStage
from stream.state_store import ChangelogStateStore, log_ends_of, undecided_timeout_s
from stream.subscription_stage import SubscriptionStage, build_subscription_stage

log = logging.getLogger(__name__)
STAGES = ("router", "rater", "subscriptions")
DEFAULT_STAGES = ("router", "rater")  # subscriptions (licences) runs when asked for


@dataclass
class RunOptions:
    stages: Sequence[str] = DEFAULT_STAGES
    instance_id: str = "0"
    catalog_wait_s: float = 60.0
    idle_exit_s: float | None = None  # stop after this long without input (demo, tests)
    # Serve /metrics, /healthz, /readyz on this port (0: a free one); None: no server.
    metrics_port: int | None = None
    metrics_port_fallback: bool = False  # the default port taken: use a free one, warn
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S  # /healthz fails past this without a loop turn


def run_processor(settings: Settings, connections: Connections, options: RunOptions,
                  stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); the number of committed batches."""
    stop = stop or _stop_on_signals()
    unknown = [stage for stage in options.stages if stage not in STAGES]
    if unknown or not options.stages:
        raise RatingError(f"--stages {','.join(options.stages)!r}: expected a comma-separated "
                          f"list of {', '.join(STAGES)}")
    ops = OpsListener(Readiness(options.stuck_after_s,
                                needs_state=bool({"rater", "subscriptions"} & set(options.stages))))
    server: OpsServer | None = None
    if options.metrics_port is not None:
        # Before the catalog wait: /readyz must say what is missing while we wait.
        server = start_server(options.metrics_port, ops.readiness,
                              fallback=options.metrics_port_fallback)
    try:
        return _run(settings, connections, options, stop, ops)
    finally:
        if server is not None:
            stop_server(server)


def _log_engine_build() -> None:
    """Say whether the hot path runs compiled (``stream/compiled.py``); loudly if the
    compiled modules are older than their source, so an edit that is not running shows."""
    build = engine_build()
    level = logging.WARNING if build.stale else logging.INFO
    log.log(level, "engine: %s", build.describe())


def _run(settings: Settings, connections: Connections, options: RunOptions,
         stop: threading.Event, ops: OpsListener) -> int:
    topics = settings.topics
    codecs = build_codecs(registry_client(connections), topics)
    feed = CatalogFeed(reading_consumer(connections), topics.catalog.name)
    try:
        feed.wait_for_catalog(options.catalog_wait_s, stop)
    except WaitStopped:
        feed.close()
        log.info("stopped before a catalog arrived: nothing was processed")
        return 0
    ops.readiness.catalog_loaded(feed.current.version)
    stages: list[Stage] = []
    store = None
    # Both stages in this process: the rater takes the events the router decoded.
    undecided_s = undecided_timeout_s(settings.processor.transaction_timeout_ms)
    handoff = DecodedEvents() if {"router", "rater"} <= set(options.stages) else None
    if "router" in options.stages:
        stages.append(RouterStage(codecs, topics, lambda: feed.current, handoff=handoff))
    if "rater" in options.stages:
        store = ChangelogStateStore(reading_consumer(connections), topics.changelog.name,
                                    partition_states(settings.processor),
                                    log_ends_of(admin_client(connections)), undecided_s)
        stages.append(RaterStage(codecs, topics, lambda: feed.current, store,
                                 no_agreement=MissingPolicy(settings.processor.no_agreement),
                                 handoff=handoff,
                                 unknown_instances=UnknownInstances(
                                     settings.processor.unknown_instances)))
    licences: SubscriptionStage | None = None
    if "subscriptions" in options.stages:
        licences = build_subscription_stage(codecs, connections, topics, lambda: feed.current,
                                            undecided_s)
        stages.append(licences)
    group = settings.processor.group_id
    # A stable transactional id per instance: a restarted instance fences its own
    # zombie and aborts the zombie's open transaction at once (no wait for the timeout).
    producer = transactional_producer(connections, f"{group}-{'-'.join(options.stages)}-"
                                      f"{options.instance_id}",
                                      settings.processor.transaction_timeout_ms)
    consumer = processing_consumer(connections, group)
    ops.lag = LagTracker(consumer)
    loop = ExactlyOnceLoop(consumer, producer, stages, settings.processor.batch_size,
                           settings.processor.batch_timeout_s, listener=ops)

    dedup_gauges = DedupGauges(store) if store is not None else None

    def between_batches() -> None:
        feed.refresh()
        ops.between_batches(feed.current.version)
        if dedup_gauges is not None:
            dedup_gauges.update()

    idle = _IdleWatch(options.idle_exit_s, loop)
    log.info("processor %s running stages %s with catalog %s", options.instance_id,
             list(options.stages), feed.current.version)
    _log_engine_build()
    try:
        loop.run(should_stop=lambda: stop.is_set() or idle.expired(),
                 between_batches=between_batches)
    finally:
        feed.close()
        if store is not None:
            store.close()
        if licences is not None:
            licences.close()
    log.info("processor %s stopped after %d batches", options.instance_id,
             loop.batches_committed)
    if handoff is not None:
        log.info("rater took %d events the router had decoded, and decoded %d itself",
                 handoff.taken, handoff.missed)
    return loop.batches_committed


class _IdleWatch:
    def __init__(self, limit_s: float | None, loop: ExactlyOnceLoop):
        self._limit_s = limit_s
        self._loop = loop
        self._seen = -1
        self._since = time.monotonic()

    def expired(self) -> bool:
        if self._limit_s is None:
            return False
        if self._loop.batches_committed != self._seen:
            self._seen = self._loop.batches_committed
            self._since = time.monotonic()
        return time.monotonic() - self._since > self._limit_s


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
