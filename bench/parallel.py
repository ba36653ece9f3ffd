"""One rating process per core: the same pipeline, N processes at once, as extra information.

The issue's targets are per process; this contender shows what a machine does
with one process per core, as the architecture scales (bounded by the
partitions of the account-keyed topic). Each of the N processes runs
``run_processor`` (router and rater, exactly as ``rating process``) on its own
lane, over its own share of the input (split by key, so an instance's
operations stay together), timed by its own LoopClock. They start together
(each waits for a "go" file once its imports are done) and the row's time is
from the first one's first batch to the last one's last commit: N independent
pipelines sharing the machine, with no rebalance inside the timed window.

    python -m bench.parallel --name NAME --suffix SUFFIX --group GROUP --batch-size B \\
        --records R --work DIR       # one worker; the harness starts them
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.inprocess import rater_outputs, time_processor
from bench.lanes import Lane, publish_input
from bench.outputs import read_outputs
from bench.results import Result
from bench.workload import Expected, dry_run
from processors.catalog import Catalog
from stream.contracts import Codecs
from stream.settings import REPO_ROOT, Settings, connections_from_env, load_settings

READY, GO, RESULT = "ready", "go", "result.json"
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Share:
    lane: Lane
    records: list[tuple[bytes, bytes]]
    expected: Expected


def split(records: Sequence[tuple[bytes, bytes]], parts: int) -> list[list[tuple[bytes, bytes]]]:
    """The records in ``parts`` shares by key (an instance's operations stay together)."""
    shares: list[list[tuple[bytes, bytes]]] = [[] for _ in range(parts)]
    for key, value in records:
        shares[zlib.crc32(key) % parts].append((key, value))
    return shares


def run(processes: int, open_share_lane: Callable[[str], Lane],
        records: Sequence[tuple[bytes, bytes]], codecs: Codecs, catalog: Catalog,
        settings: Settings, work_dir: Path, limit_s: float) -> Result:
    """N worker processes, one lane each; the row for all of them together."""
    shares = []
    for index, part in enumerate(split(records, processes)):
        lane = open_share_lane(f"p{index}")
        publish_input(lane, part)
        expected, _ = dry_run(part, codecs, catalog, settings)
        shares.append(Share(lane, part, expected))
    work = work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    workers = [_start(share, work / share.lane.name, limit_s) for share in shares]
    try:
        _wait_for(lambda: _ready(work, shares, workers), STARTUP_TIMEOUT_S,
                  "the rating workers to start")
        for share in shares:
            (work / share.lane.name / GO).touch()
        for worker in workers:
            worker.wait(limit_s + STARTUP_TIMEOUT_S)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    timings = [json.loads((work / s.lane.name / RESULT).read_text()) for s in shares]
    return _result(processes, shares, timings)


def _start(share: Share, folder: Path, limit_s: float) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    lane = share.lane
    processor = lane.settings.processor
    env = {**os.environ,
           "KAFKA_BOOTSTRAP_SERVERS": lane.connections.kafka_bootstrap,
           "SCHEMA_REGISTRY_URL": lane.connections.schema_registry_url,
           "REDIS_URL": lane.connections.redis_url}
    command = [sys.executable, "-m", "bench.parallel", "--name", lane.name,
               f"--suffix={lane.suffix}", "--group", processor.group_id,  # it starts with "-"
               "--batch-size", str(processor.batch_size),
               "--records", str(len(share.records) + share.expected.routed),
               "--limit", str(limit_s), "--work", str(folder)]
    with (folder / "worker.log").open("wb") as log_file:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)


def _ready(work: Path, shares: list[Share], workers: list[subprocess.Popen[bytes]]) -> bool:
    for share, process in zip(shares, workers, strict=True):
        if process.poll() is not None:
            log = (work / share.lane.name / "worker.log").read_text(errors="replace")
            raise RuntimeError(f"rating worker {share.lane.name} exited with code "
                               f"{process.returncode}:\n{log[-2000:]}")
    return all((work / share.lane.name / READY).exists() for share in shares)


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.01)


def _result(processes: int, shares: list[Share], timings: list[dict[str, Any]]) -> Result:
    events = sum(len(share.records) for share in shares)
    complete = all(timing["complete"] for timing in timings)
    started = min(timing["started_at"] for timing in timings)
    finished = max(timing["started_at"] + timing["seconds"] for timing in timings)
    outputs: dict[str, int] = {}
    expected_outputs: dict[str, int] = {}
    twice = 0
    for share in shares:
        roles = {"by_account": share.expected.routed, **rater_outputs(share.expected)}
        counted, share_twice = read_outputs(share.lane, list(roles))
        twice += share_twice
        for role, count in counted.items():
            outputs[role] = outputs.get(role, 0) + count
            expected_outputs[role] = expected_outputs.get(role, 0) + roles[role]
    processed = events if complete else sum(
        int(timing["committed"] * len(share.records) / max(1, timing["records"]))
        for share, timing in zip(shares, timings, strict=True))
    return Result(contender=f"per-core rating ({processes} processes)", events=events,
                  seconds=finished - started, complete=complete, processed=processed,
                  outputs=outputs, expected_outputs=expected_outputs, rated_twice=twice,
                  note="" if complete else "a worker hit the time limit",
                  extra={"per_process": timings})


def worker(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parallel")
    for name in ("--name", "--suffix", "--group", "--work"):
        parser.add_argument(name, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--limit", type=float, required=True)
    args = parser.parse_args(argv)
    work = Path(args.work)
    logging.basicConfig(filename=work / "processor.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(environ={"RATING_TOPIC_SUFFIX": args.suffix,
                                      "RATING_GROUP_ID": args.group,
                                      "RATING_BATCH_SIZE": str(args.batch_size)})
    lane = Lane(name=args.name, suffix=args.suffix, settings=settings,
                connections=connections_from_env())
    (work / READY).touch()
    _wait_for((work / GO).exists, STARTUP_TIMEOUT_S, "the go file")
    timing = time_processor(lane, ("router", "rater"), args.records, args.limit)
    (work / RESULT).write_text(json.dumps({
        "seconds": timing.seconds, "started_at": timing.started_at, "complete": timing.complete,
        "committed": timing.committed, "records": args.records, "batches": timing.batches}))
    return 0


if __name__ == "__main__":
    raise SystemExit(worker())
