"""`make run`: the main job on the local default stack, start to finish, with a summary.

Stack, topics, catalog; the processor (router, rater, subscriptions), the billing-history
sink and the aggregates sink as child processes (logs in the stack's logs folder); the
simulated workload rated; the sinks caught up; the month's summary report written and
checked against the history and the Redis aggregates; an annual licence billing run.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from processors.catalog import Catalog, read_catalog_folder
from processors.errors import RatingError
from sinks.history import open_history_store
from stream import demo_billing as billing
from stream import demo_prometheus as prometheus
from stream import stack as local_stack
from stream.catalog_feed import publish_new_version
from stream.clients import admin_client, idempotent_producer, reading_consumer, registry_client
from stream.contracts import Codecs, build_codecs
from stream.demo_prometheus import MetricsEndpoint
from stream.demo_services import Child, stop_all, wait_for_sink
from stream.lag import caught_up, committed_since
from stream.progress import Progress
from stream.readback import end_offsets, read_all
from stream.settings import (
    DEFAULT_SETTINGS_FILE,
    WITH_REDIS,
    Connections,
    Settings,
    connections_from_env,
)
from stream.simulate import run_simulation
from stream.stack.ports import free_port
from stream.topics import ensure_topics

CATCH_UP_TIMEOUT_S = 300.0
OUTCOME_ROLES = ("events", "rated", "dlq", "rejected", "late", "quota_alerts")
SINK_CATCH_UP_TIMEOUT_S = 120.0
STAGES = "router,rater,subscriptions"
DEMO_PROCESSES = ("processor", "billing-history", "aggregates")  # the `process` label
DEV_TOKENS = Path("config") / "api-tokens.dev.yaml"
DEV_TOKEN = "dev-finance-token"  # public, documented in docs/api.md and DEV_TOKENS


def run_demo(settings: Settings, *, events: int, seed: int, keep_running: bool,
             out: TextIO, settings_file: Path = DEFAULT_SETTINGS_FILE) -> int:
    was_running = local_stack.is_running()
    local_stack.up(components={"kafka", "registry", "redis"})
    prometheus_url = prometheus.start(say)
    children: list[Child] = []
    endpoints: list[MetricsEndpoint] = []
    periods: list[str] = []
    try:
        connections = connections_from_env(needed=WITH_REDIS)
        catalog, codecs, rated_created = prepare_topics(settings, connections)
        history_url = settings.sinks.history_url
        note = billing.check_sink_stores(connections, settings.topics.rated.name, history_url,
                                         rated_created)
        if note:
            say(note)
        since = {role: end_offsets(connections, getattr(settings.topics, role).name)
                 for role in OUTCOME_ROLES}
        endpoints = metrics_endpoints()
        children += start_children(settings_file, history_url, endpoints)
        if prometheus_url:
            prometheus.register(local_stack.targets_file(local_stack.state_dir()), endpoints)
        say(f"started the processor ({STAGES}), the billing-history sink and the aggregates "
            f"sink (pids {', '.join(str(c.popen.pid) for c in children)}, logs in "
            f"{billing.shown(children[0].log_path.parent)}; /metrics on ports "
            f"{', '.join(str(e.port) for e in endpoints)})")
        published, outcomes = rate_workload(settings, connections, codecs, children[0], since,
                                            events=events, seed=seed)
        print_summary(out, published, outcomes)
        periods = sorted({str(r["billing_period"]) for r in outcomes["rated"]})
        report_from_sinks(settings, connections, history_url, children, since["rated"],
                          periods, out)
        if prometheus_url:
            prometheus.print_scraped(out, prometheus_url, endpoints, len(outcomes["rated"]), say)
        if not billing.bill_demo_licences(settings, connections, catalog, history_url,
                                          billing.shown(local_stack.state_dir() / "invoices"),
                                          out):
            say("the catalog bills no licences: no billing run")
    finally:
        if not keep_running:
            stop_all(children)
            if prometheus_url:
                prometheus.register(local_stack.targets_file(local_stack.state_dir()), [])
            if not was_running:
                local_stack.down()
    if keep_running:
        print_how_to_reach(settings, children, periods, prometheus_url)
    return 0


def prepare_topics(settings: Settings, connections: Connections) -> tuple[Catalog, Codecs, bool]:
    """Topics, schemas and the catalog published; True when usage.rated was just created."""
    topics = settings.topics
    created = ensure_topics(admin_client(connections), topics)
    codecs = build_codecs(registry_client(connections), topics)
    folder = read_catalog_folder(settings.catalog_dir)
    catalog = folder.catalog
    # Checked like `rating catalog load`: the stack may already run another content
    # under this version.
    publish_new_version(reading_consumer(connections), idempotent_producer(connections),
                        topics.catalog.name, catalog, folder.sources)
    say(f"catalog {catalog.version} loaded from {settings.catalog_dir}")
    return catalog, codecs, topics.rated.name in created


def rate_workload(settings: Settings, connections: Connections, codecs: Codecs,
                  processor: Child, since: dict[str, dict[int, int]], *, events: int,
                  seed: int) -> tuple[int, dict[str, list[dict[str, object]]]]:
    """Publish the simulated workload, wait until it is rated; what each topic received."""
    topics = settings.topics
    report = run_simulation(connections, settings, events=events, seed=seed)
    say(report.describe())
    rating_s = wait_for_processor(connections, settings, processor, since["events"],
                                  report.published)
    say(f"processor caught up {rating_s:.1f} s after the last event was published")
    decoders = {"rated": codecs.rated_decoder, "dlq": codecs.dead_letter_decoder,
                "rejected": codecs.dead_letter_decoder, "late": codecs.dead_letter_decoder,
                "quota_alerts": codecs.alert_decoder}
    return report.published, {
        role: [r.value for r in read_all(connections, getattr(topics, role).name, decoder,
                                         since=since[role])]
        for role, decoder in decoders.items()}


def report_from_sinks(settings: Settings, connections: Connections, history_url: str,
                      children: list[Child], rated_since: dict[int, int], periods: list[str],
                      out: TextIO) -> None:
    """Wait for both sinks of usage.rated, then write and check each period's summary."""
    _, history, aggregates = children
    rated = settings.topics.rated.name
    report_dir = local_stack.state_dir() / "reports"
    failed: list[str] = []
    store = open_history_store(history_url)
    try:
        wait_for_sink("billing history", history, connections, rated,
                      lambda: store.stored_offsets(rated), rated_since, SINK_CATCH_UP_TIMEOUT_S)
        wait_for_sink("aggregates", aggregates, connections, rated,
                      lambda: billing.aggregate_offsets(connections, rated), rated_since,
                      SINK_CATCH_UP_TIMEOUT_S)
        for period in periods:
            summary = billing.write_summary(store, period, report_dir)
            controls = (*summary.controls, billing.aggregates_control(connections, summary))
            billing.print_summary_excerpt(out, summary, controls)
            failed += [f"{period}: {line.text}" for line in controls if not line.passed]
    finally:
        store.close()
    if failed:
        raise RatingError(f"control check failed for {failed[0]}; see {report_dir}")


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def metrics_endpoints() -> list[MetricsEndpoint]:
    """A free port for each demo process's /metrics, in start_children's order."""
    ports: list[int] = []
    for _name in DEMO_PROCESSES:
        ports.append(free_port(avoid=ports))
    return [MetricsEndpoint(name, port) for name, port in zip(DEMO_PROCESSES, ports, strict=True)]


def start_children(settings_file: Path, history_url: str,
                   endpoints: list[MetricsEndpoint]) -> list[Child]:
    """The processor with every stage, then the two sinks of usage.rated."""
    ports = {e.process: str(e.port) for e in endpoints}
    return [
        Child.start("processor", "processor-demo.log", settings_file,
                    ["process", "--stages", STAGES, "--instance-id", "demo",
                     "--metrics-port", ports["processor"]]),
        Child.start("billing-history sink", "history-sink-demo.log", settings_file,
                    ["sink", "billing-history", "--url", history_url,
                     "--metrics-port", ports["billing-history"]]),
        Child.start("aggregates sink", "aggregates-sink-demo.log", settings_file,
                    ["sink", "aggregates", "--metrics-port", ports["aggregates"]]),
    ]


def print_how_to_reach(settings: Settings, children: list[Child], periods: list[str],
                       prometheus_url: str | None) -> None:
    api = f"http://{settings.api.host}:{settings.api.port}"
    period = periods[-1] if periods else time.strftime("%Y-%m", time.gmtime())
    say(f"still running: {', '.join(f'{c.name} (pid {c.popen.pid})' for c in children)}")
    say("  follow the rated records:  rating tail rated --follow")
    say(f"  serve the REST API:        rating api --tokens {DEV_TOKENS}")
    say(f"  then:  curl -H 'Authorization: Bearer {DEV_TOKEN}' {api}/v1/aggregates/{period}")
    say("  quota status for the API (/v1/quota/ACCOUNT): run `rating sink quota-view` first;"
        " the demo does not start it")
    if prometheus_url:
        say(f"  Prometheus (alerts of deploy/prometheus/alerts.yml loaded): {prometheus_url}")
    say(f"  stop:  kill {' '.join(str(c.popen.pid) for c in children)}; then make down")


def wait_for_processor(connections: Connections, settings: Settings, processor: Child,
                       events_since: dict[int, int], published: int) -> float:
    """Show routing progress until the processor group has caught up; the seconds taken."""
    topics = [settings.topics.events.name, settings.topics.by_account.name]
    group = settings.processor.group_id
    progress = Progress("rating", published)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        processor.check()
        if caught_up(connections, group, topics):
            return progress.finish("caught up")
        progress.update(committed_since(connections, group, topics[0], events_since))
        time.sleep(0.3)
    raise RatingError(f"the processor did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s; "
                       f"see {processor.log_path}")


def print_summary(out: TextIO, published: int,
                  outcomes: dict[str, list[dict[str, object]]]) -> None:
    rated, dead = outcomes["rated"], outcomes["dlq"]
    blocked, late, alerts = outcomes["rejected"], outcomes["late"], outcomes["quota_alerts"]
    gross: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for record in rated:
        key = (str(record["provider"] or "(platform)"), str(record["currency"]))
        gross[key] += Decimal(str(record["gross_amount"]))
        net[key] += Decimal(str(record["net_amount"]))
    reasons = Counter(str(record["reason_code"]) for record in dead)
    refusals = Counter(str(record["reason_code"]) for record in blocked)
    skipped = published - len(rated) - len(dead) - len(blocked) - len(late)
    out.write(f"\nEvents in: {published}   rated: {len(rated)}   "
              f"blocked by quota: {len(blocked)}   dead-lettered: {len(dead)}   "
              f"late: {len(late)}   skipped (not billable or duplicate): {skipped}\n")
    if alerts:
        crossings = Counter(f"{a['agreement_id']} {a['quota_id']} {a['threshold_percent']}% "
                            f"{a['action']}" for a in alerts)
        out.write("Quota alerts: " + ", ".join(f"{name} x{count}" if count > 1 else name
                                               for name, count in sorted(crossings.items()))
                  + "\n")
    if refusals:
        out.write("Blocked by reason: " +
                  ", ".join(f"{reason} {count}" for reason, count in refusals.most_common()) +
                  "\n")
    if reasons:
        out.write("Dead-lettered by reason: " +
                  ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) +
                  "\n")
    out.write(f"\n{'provider':<20} {'currency':<8} {'net':>14} {'gross':>14}\n")
    for key in sorted(gross):
        out.write(f"{key[0]:<20} {key[1]:<8} {net[key]:>14} {gross[key]:>14}\n")
    out.flush()
