"""`make run`: the main job on the local default stack, start to finish, with a summary."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from processors.catalog import load_catalog_dir
from processors.errors import RatingError
from stream import stack as local_stack
from stream.catalog_feed import publish_catalog
from stream.clients import admin_client, idempotent_producer, registry_client
from stream.contracts import build_codecs
from stream.lag import caught_up, committed_since
from stream.progress import Progress
from stream.readback import end_offsets, read_all
from stream.settings import Connections, Settings, connections_from_env
from stream.simulate import run_simulation
from stream.topics import ensure_topics

CATCH_UP_TIMEOUT_S = 300.0


def run_demo(settings: Settings, *, events: int, seed: int, keep_running: bool,
             out: TextIO) -> int:
    was_running = local_stack.is_running()
    local_stack.up(components={"kafka", "registry", "redis"})
    processor: subprocess.Popen[bytes] | None = None
    try:
        connections = connections_from_env()
        topics = settings.topics
        ensure_topics(admin_client(connections), topics)
        codecs = build_codecs(registry_client(connections), topics)
        catalog = load_catalog_dir(settings.catalog_dir)
        publish_catalog(idempotent_producer(connections), topics.catalog.name, catalog,
                        {p.name: p.read_text()
                         for p in sorted(settings.catalog_dir.glob("*.yaml"))})
        say(f"catalog {catalog.version} loaded from {settings.catalog_dir}")
        since = {role: end_offsets(connections, getattr(topics, role).name)
                 for role in ("events", "rated", "dlq", "rejected", "late", "quota_alerts")}
        processor, log_path = start_processor(settings)
        say(f"processor started (pid {processor.pid}, log {log_path})")
        report = run_simulation(connections, settings, events=events, seed=seed)
        say(report.describe())
        rating_s = wait_for_processor(connections, settings, processor, log_path,
                                      since["events"], report.published)
        say(f"processor caught up {rating_s:.1f} s after the last event was published")
        outcomes = {role: [r.value for r in read_all(
            connections, getattr(topics, role).name, decoder, since=since[role])]
            for role, decoder in (("rated", codecs.rated_decoder),
                                  ("dlq", codecs.dead_letter_decoder),
                                  ("rejected", codecs.dead_letter_decoder),
                                  ("late", codecs.dead_letter_decoder),
                                  ("quota_alerts", codecs.alert_decoder))}
        print_summary(out, report.published, outcomes)
    finally:
        if processor is not None and not keep_running:
            processor.terminate()
            processor.wait(30)
        if not keep_running and not was_running:
            local_stack.down()
    if keep_running:
        say("still running: `rating tail rated --follow`, `make down` to stop")
    return 0


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def start_processor(settings: Settings) -> tuple[subprocess.Popen[bytes], Path]:
    log_dir = local_stack.state_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "processor-demo.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "process", "--instance-id", "demo"],
            stdout=log, stderr=subprocess.STDOUT)
    return process, log_path


def wait_for_processor(connections: Connections, settings: Settings,
                       processor: subprocess.Popen[bytes], log_path: Path,
                       events_since: dict[int, int], published: int) -> float:
    """Show routing progress until the processor group has caught up; the seconds taken."""
    topics = [settings.topics.events.name, settings.topics.by_account.name]
    group = settings.processor.group_id
    progress = Progress("rating", published)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if processor.poll() is not None:
            raise RatingError(f"the processor exited with {processor.returncode}; "
                              f"see {log_path}")
        if caught_up(connections, group, topics):
            return progress.finish("caught up")
        progress.update(committed_since(connections, group, topics[0], events_since))
        time.sleep(0.3)
    raise RatingError(f"the processor did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s; "
                       f"see {log_path}")


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
    if reasons:
        out.write("Dead-lettered by reason: " +
                  ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) +
                  "\n")
    out.write(f"\n{'provider':<20} {'currency':<8} {'net':>14} {'gross':>14}\n")
    for key in sorted(gross):
        out.write(f"{key[0]:<20} {key[1]:<8} {net[key]:>14} {gross[key]:>14}\n")
    out.flush()
