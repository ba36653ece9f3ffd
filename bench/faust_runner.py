"""Runs bench/faust_app.py as a faust worker subprocess and measures it from outside.

Clock: from the first event the worker's router agent sees (it writes the wall
time to a file) to the moment every expected output is committed and visible
to a read_committed reader here. Faust's start-up, group join and table
recovery before the first event are not timed, as for the other contenders.

Faust commits its transactions every ``broker_commit_interval`` (2.8 s by
default) rather than per batch, so the end can lag the last event by up to
that much; that is what faust's exactly-once costs in latency and is counted.

A run that has not finished after ``faust_cap_s`` of processing is stopped,
and its rate taken over what it committed by then (rated records seen, as a
share of all that are expected, times the events). If exactly-once does not
work at all, the error is reported and the run repeated at at_least_once on
fresh topics, labelled as such.
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

from bench.lanes import Lane
from bench.outputs import TopicCounter, count_records
from bench.results import Result
from bench.workload import Expected
from stream.settings import REPO_ROOT

if TYPE_CHECKING:
    from bench.harness import BenchConfig

FIRST_EVENT_FILE = "first-event"  # written by the worker: wall time of its first event
STARTUP_TIMEOUT_S = 120.0  # worker start, group join, recovery: until the first event
ROLES = ("by_account", "rated", "late", "dlq")


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
        fallback = fresh_lane("faust-alo")
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
    want = _expected_outputs(expected)
    topics = lane.settings.topics
    counter = TopicCounter(lane.connections, [getattr(topics, role).name for role in ROLES])
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "bench.faust_app", "worker",
             "--without-web", "-l", "warn"],
            cwd=REPO_ROOT, env=_env(lane, run_id, work, guarantee), stdout=log_file,
            stderr=subprocess.STDOUT)
    try:
        first, end, complete = _watch(
            worker, counter, lambda: all(seen >= want[role]
                                         for role, seen in _by_role(counter.counts, lane).items()),
            work, config.faust_cap_s, log_path)
        seen = _by_role(counter.counts, lane)
    finally:
        counter.close()
        _stop(worker)
    outputs = count_records(lane.connections, [getattr(topics, role).name for role in ROLES])
    processed = expected.events if complete else int(
        expected.events * min(1.0, seen["rated"] / max(expected.rated, 1)))
    if processed == 0:
        raise FaustFailed(f"no rated record committed within {config.faust_cap_s:.0f} s of "
                          f"the first event (guarantee {guarantee}); worker log "
                          f"{log_path}:\n{_tail(log_path)}")
    note = "" if complete else (f"capped at {config.faust_cap_s:.0f} s: rate over the "
                                f"{processed} events it committed by then (pro rata of "
                                "rated records)")
    return Result(contender=label, events=expected.events, seconds=end - first,
                  complete=complete, processed=processed, outputs=_by_role(outputs, lane),
                  expected_outputs=want, guarantee=guarantee, note=note,
                  extra={"worker_log": str(log_path)})


def _watch(worker: subprocess.Popen[bytes], counter: TopicCounter, done: Callable[[], bool],
           work: Path, cap_s: float, log_path: Path) -> tuple[float, float, bool]:
    """(first event, end, complete): wall-clock times from both processes on one machine."""
    launched = time.time()
    first: float | None = None
    while True:
        counter.poll(0.1)
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
        if done():
            return first, now, True
        if now - first > cap_s:
            return first, now, False


def _expected_outputs(expected: Expected) -> dict[str, int]:
    return {"by_account": expected.routed, "rated": expected.rated, "late": expected.late,
            "dlq": expected.dead_letters}


def _by_role(counts: dict[str, int], lane: Lane) -> dict[str, int]:
    return {role: counts[getattr(lane.settings.topics, role).name] for role in ROLES}


def _env(lane: Lane, run_id: str, work: Path, guarantee: str) -> dict[str, str]:
    return {**os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": lane.connections.kafka_bootstrap,
            "SCHEMA_REGISTRY_URL": lane.connections.schema_registry_url,
            "REDIS_URL": lane.connections.redis_url,
            "BENCH_FAUST_APP_ID": f"rating-bench-{run_id}-{lane.name}",
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
