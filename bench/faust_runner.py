"""Runs bench/faust_app.py as a faust worker subprocess and measures it from outside.

Clock: from the first event the worker's router agent sees (it writes the wall
time to a file) to the moment the worker is done: all of the router's
outputs are committed and visible, and the faust group has committed its
way through both input topics (stream.lag.caught_up, polled every 0.5 s).
Faust's start-up, group join and table recovery before the first event are
not timed, as for the other contenders.

Faust commits its transactions every ``broker_commit_interval`` (2.8 s by
default) rather than per batch, so the end can lag the last event by up to
that much; that is what faust's exactly-once costs in latency and is counted.

A run that has not finished after ``faust_cap_s`` of processing is stopped,
and its rate taken over what it committed by then: the offsets the group
committed on the account-keyed topic (the rater's input), as a share of all
its records, times the events (transaction markers make that share a
fraction of a percent too high). That is a lower bound: both agents share one
event loop and the cheap router runs far ahead of the rater, so work done on
events not yet rated is not counted. Measured once at 50,000 events: 60 s
capped gave 222/s, the complete run 345/s. Hence the default cap lets the
default size finish.

If exactly-once does not work at all, the error is reported and the run
repeated at at_least_once on fresh topics, labelled as such.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka.cimpl import NewTopic

from bench.inprocess import rater_outputs
from bench.lanes import Lane
from bench.outputs import TopicCounter, read_outputs
from bench.results import Result
from bench.workload import Expected
from stream.clients import admin_client
from stream.lag import caught_up, committed_since
from stream.settings import REPO_ROOT

if TYPE_CHECKING:
    from bench.harness import BenchConfig

FIRST_EVENT_FILE = "first-event"  # written by the worker: wall time of its first event
STARTUP_TIMEOUT_S = 120.0  # worker start, group join, recovery: until the first event
ROLES = ("by_account", "rated", "rejected", "quota_alerts", "late", "dlq")
CAUGHT_UP_EVERY_S = 0.5


class FaustFailed(Exception):
    """The worker could not process at all; the message carries its log's tail."""


def run(lane: Lane, expected: Expected, config: BenchConfig, run_id: str,
        say: Callable[[str], None], fresh_lane: Callable[[str], Lane]) -> list[Result]:
    guarantee = config.faust_guarantee
    try:
        return [_attempt(lane, expected, config, run_id, guarantee)]
    except FaustFailed as failure:
        error = str(failure)
    say(f"faust ({guarantee}) failed: {error.splitlines()[0]}")
    results = [Result(contender=f"faust ({guarantee})", events=expected.events, seconds=0.0,
                      complete=False, processed=0, outputs={}, expected_outputs={},
                      guarantee=guarantee, note=error)]
    if guarantee == "exactly_once":
        say("faust: running again at at_least_once on fresh topics, as a fallback figure")
        fallback = fresh_lane("alo")
        try:
            results.append(_attempt(fallback, expected, config, run_id, "at_least_once"))
        except FaustFailed as again:
            results.append(Result(contender="faust (at_least_once fallback)",
                                  events=expected.events, seconds=0.0, complete=False,
                                  processed=0, outputs={}, expected_outputs={},
                                  guarantee="at_least_once", note=str(again)))
    return results


def _attempt(lane: Lane, expected: Expected, config: BenchConfig, run_id: str,
             guarantee: str) -> Result:
    work = (config.work_dir / f"faust-{run_id}-{lane.name}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "worker.log"
    label = "faust" if guarantee == config.faust_guarantee else f"faust ({guarantee} fallback)"
    app_id = f"rating-bench-{run_id}-{lane.name}"  # faust's consumer group id, too
    topics = lane.settings.topics
    _create_table_changelog(lane, app_id)
    routed = TopicCounter(lane.connections, [topics.by_account.name])
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "bench.faust_app", "worker",
             "--without-web", "-l", "warn"],
            cwd=REPO_ROOT, env=_env(lane, app_id, work, guarantee), stdout=log_file,
            stderr=subprocess.STDOUT)
    try:
        first, end, complete = _watch(worker, lane, app_id, routed, expected.routed, work,
                                      config.faust_cap_s, log_path)
        rater_done = committed_since(lane.connections, app_id, topics.by_account.name, {})
        router_done = routed.counts[topics.by_account.name]
    finally:
        routed.close()
        _stop(worker)
    processed = expected.events if complete else min(
        expected.events, int(expected.events * rater_done / max(expected.routed, 1)))
    if processed == 0:
        raise FaustFailed(f"nothing committed within {config.faust_cap_s:.0f} s of the first "
                          f"event (guarantee {guarantee}); worker log {log_path}:\n"
                          f"{_tail(log_path)}")
    outputs, twice = read_outputs(lane, ROLES)
    note = "" if complete else (
        f"capped at {config.faust_cap_s:.0f} s: rate over the {processed} events whose rating "
        f"it had committed, a lower bound (its router had routed {router_done} of "
        f"{expected.routed})")
    return Result(contender=label, events=expected.events, seconds=end - first,
                  complete=complete, processed=processed, outputs=outputs,
                  expected_outputs={"by_account": expected.routed, **rater_outputs(expected)},
                  rated_twice=twice, guarantee=guarantee, note=note,
                  extra={"worker_log": str(log_path)})


def _create_table_changelog(lane: Lane, app_id: str) -> None:
    """The faust table's changelog topic, made before the worker starts, as the lanes'
    own topics are. Left to faust, a loaded broker could answer its metadata request
    before the new topic had partitions: the agent then crashed on PartitionsMismatch
    ("... the changelog topic has 0 partitions") every 5 s until the cap (seen in CI)."""
    name = f"{app_id}-rating-state-changelog"  # faust: <app id>-<table name>-changelog
    partitions = lane.settings.topics.by_account.partitions
    admin = admin_client(lane.connections)
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                  config={"cleanup.policy": "compact"})])[name].result(30)
    deadline = time.monotonic() + 30
    while len(admin.list_topics(name, timeout=10).topics[name].partitions) < partitions:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the broker does not show its {partitions} partitions")
        time.sleep(0.1)


def _watch(worker: subprocess.Popen[bytes], lane: Lane, app_id: str, routed: TopicCounter,
           expected_routed: int, work: Path, cap_s: float,
           log_path: Path) -> tuple[float, float, bool]:
    """(first event, end, complete): wall-clock times from both processes on one machine."""
    topics = lane.settings.topics
    launched = time.time()
    first: float | None = None
    checked = 0.0
    while True:
        routed.poll(0.1)
        now = time.time()
        if worker.poll() is not None:
            raise FaustFailed(f"the faust worker exited with code {worker.returncode}; "
                              f"log {log_path}:\n{_tail(log_path)}")
        if first is None:
            marker = work / FIRST_EVENT_FILE
            if marker.exists() and marker.read_text():
                first = float(marker.read_text())
            elif now - launched > STARTUP_TIMEOUT_S:
                raise FaustFailed(f"no event reached the faust agents within "
                                  f"{STARTUP_TIMEOUT_S:.0f} s; log {log_path}:\n"
                                  f"{_tail(log_path)}")
            continue
        router_done = routed.counts[topics.by_account.name] >= expected_routed
        if router_done and now - checked >= CAUGHT_UP_EVERY_S:
            checked = now
            if caught_up(lane.connections, app_id, [topics.events.name, topics.by_account.name]):
                return first, time.time(), True
        if now - first > cap_s:
            return first, now, False


def _env(lane: Lane, app_id: str, work: Path, guarantee: str) -> dict[str, str]:
    return {**os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": lane.connections.kafka_bootstrap,
            "SCHEMA_REGISTRY_URL": lane.connections.schema_registry_url,
            "REDIS_URL": lane.connections.redis_url,
            "BENCH_FAUST_APP_ID": app_id,
            "BENCH_TOPIC_SUFFIX": lane.suffix,
            "BENCH_FAUST_DIR": str(work),
            "BENCH_FAUST_GUARANTEE": guarantee}


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
