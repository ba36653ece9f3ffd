"""One benchmark run: input once, then each contender on its own lane, one after the other.

Contenders never overlap (the target machine has two cores): each is set up,
fed the same pre-published input, timed, checked and only then the next one
starts. Everything outside a contender's processing (topic creation,
publishing, the catalog, group join, state restore) is left out of its time.

With ``warm_up``, untimed lanes run first (pass-through, rating, pass-through): the
broker's JVM is cold after a start, and whichever contender came first paid for it
(pass-through, the baseline of the targets, ran at a third of its warm rate in one
such run, and at half of it after one warm-up lane). With
``rounds`` above 1, the contenders run again in the same order each round, on fresh
lanes, so every contender is measured several times, interleaved with the others
(bench.summary takes medians). faust runs once, in the last round: it takes minutes
per run and its margin is wide.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import faust_runner, inprocess, parallel
from bench.lanes import Lane, delete_run_topics, open_lane, publish_input
from bench.profiling import profile_rating
from bench.results import Result, failed
from bench.workload import EngineTiming, Expected, dry_run, encode, generate
from processors.catalog import Catalog, load_catalog_dir
from stream.clients import registry_client
from stream.contracts import Codecs, build_codecs
from stream.settings import Connections, Settings, load_settings

log = logging.getLogger(__name__)
AGREEMENTS_FILE = "agreements.yaml"
CONTENDERS = ("passthrough", "passthrough-avro", "passthrough-2hop", "rating", "rating-no-quota",
              "split", "parallel", "faust")


@dataclass(frozen=True)
class BenchConfig:
    events: int = 50_000
    batch_size: int = 1000
    seed: int = 7
    contenders: Sequence[str] = CONTENDERS
    limit_s: float = 600.0  # per in-process contender: a hung run must not hang the bench
    # Faust processing time before it is stopped and rated pro rata. Long enough for the
    # default 50,000 events (about 150 s): a capped rate understates faust, see faust_runner.
    faust_cap_s: float = 300.0
    faust_guarantee: str = "exactly_once"
    work_dir: Path = Path("out")
    keep_topics: bool = False
    profile_path: Path | None = None  # set: one more, profiled (untimed) rating run
    processes: int = 0  # the parallel contender's processes; 0: one per core
    rounds: int = 1  # every contender but faust runs once per round, interleaved
    warm_up: bool = False  # untimed lanes (pass-through, rating, pass-through) first


@dataclass
class Report:
    run_id: str
    config: BenchConfig
    settings: Settings
    expected: Expected
    engine: EngineTiming
    results: list[Result] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    seconds: float = 0.0  # the whole run, set-up included


def run_benchmark(connections: Connections, config: BenchConfig,
                  say: Callable[[str], None] = log.info) -> Report:
    unknown = set(config.contenders) - set(CONTENDERS)
    if unknown:
        raise ValueError(f"unknown contenders {sorted(unknown)}; choose from {CONTENDERS}")
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    base = load_settings(environ={"RATING_BATCH_SIZE": str(config.batch_size)})
    catalog = load_catalog_dir(base.catalog_dir)
    say(f"run {run_id}: generating and encoding {config.events} events (seed {config.seed})")
    # Registry subjects need no topics: these codecs only encode the input and check it.
    codecs = build_codecs(registry_client(connections),
                          base.topics.with_suffix(f"-bench-{run_id}-input"))
    records = encode(generate(base.workload_file, config.events, config.seed),
                     codecs.event_encoder)
    expected, engine = dry_run(records, codecs, catalog, base)
    say(f"expected: {expected}")
    report = Report(run_id=run_id, config=config, settings=base, expected=expected,
                    engine=engine)
    if config.rounds < 1:
        raise ValueError(f"rounds must be 1 or more, not {config.rounds}")
    try:
        if config.warm_up:
            _warm_up(connections, run_id, config, catalog, base, records, expected, say)
        for round_number in range(1, config.rounds + 1):
            if config.rounds > 1:
                say(f"round {round_number} of {config.rounds}")
            for index, contender in enumerate(config.contenders):
                if contender == "faust" and round_number < config.rounds:
                    continue  # once, in the last round
                # Every round, and a contender listed twice, gets its own lane: never
                # reuse topics or groups.
                lane_name = contender if contender not in config.contenders[:index] else \
                    f"{contender}{index}"
                if config.rounds > 1:
                    lane_name = f"{lane_name}-r{round_number}"
                report.results.extend(
                    replace(result, round=round_number)
                    for result in _run(contender, lane_name, connections, run_id, config,
                                       catalog, base, records, expected, say, codecs))
        if config.profile_path is not None:
            say(f"profiling the rating loop (untimed) into {config.profile_path}")
            lane = _fresh(connections, run_id, "profile", config, catalog, base, records)
            report.profile = profile_rating(lane, expected, config.limit_s,
                                            config.profile_path)
    finally:
        if not config.keep_topics:
            delete_run_topics(connections, run_id)
    report.seconds = time.monotonic() - started
    return report


def _warm_up(connections: Connections, run_id: str, config: BenchConfig, catalog: Catalog,
             base: Settings, records: list[tuple[bytes, bytes]], expected: Expected,
             say: Callable[[str], None]) -> None:
    """Pass-through, rating and pass-through again over the input, untimed, to warm the
    broker and this process (not reported)."""
    for name, contender in (("warm-up-1", inprocess.pass_through),
                            ("warm-up-2", inprocess.rating),
                            ("warm-up-3", inprocess.pass_through)):
        lane = _fresh(connections, run_id, name, config, catalog, base, records)
        result = contender(lane, expected, config.limit_s)
        say(f"warm-up (untimed, not reported): {result.contender} {result.processed} "
            f"events in {result.seconds:.2f} s = {result.events_per_s:,.0f}/s")


def _lane(connections: Connections, run_id: str, name: str, config: BenchConfig,
          catalog: Catalog, base: Settings) -> Lane:
    return open_lane(connections, run_id, name, config.batch_size, catalog, base.catalog_dir)


def _run(contender: str, lane_name: str, connections: Connections, run_id: str,
         config: BenchConfig, catalog: Catalog, base: Settings, records: list[tuple[bytes, bytes]],
         expected: Expected, say: Callable[[str], None], codecs: Codecs) -> list[Result]:
    if contender == "parallel":
        processes = config.processes or os.cpu_count() or 1
        say(f"{contender}: {processes} rating processes, one lane and share of the input each")
        return [parallel.run(processes,
                             lambda name: _lane(connections, run_id, f"{lane_name}-{name}",
                                                config, catalog, base),
                             records, codecs, catalog, base,
                             config.work_dir / f"parallel-{run_id}", config.limit_s)]
    lane = _lane(connections, run_id, lane_name, config, catalog, base)
    publish_input(lane, records)
    say(f"{contender}: {len(records)} events published on {lane.settings.topics.events.name}")
    results: list[Result]
    if contender == "passthrough":
        results = [inprocess.pass_through(lane, expected, config.limit_s)]
    elif contender == "passthrough-avro":
        results = [inprocess.avro_pass_through(lane, expected, codecs, config.limit_s)]
    elif contender == "passthrough-2hop":
        results = [inprocess.two_hop_pass_through(lane, expected, config.limit_s)]
    elif contender == "rating":
        results = [inprocess.rating(lane, expected, config.limit_s)]
    elif contender == "rating-no-quota":
        results = [_rating_without_agreements(connections, run_id, lane_name, config, base,
                                              records, expected)]
    elif contender == "split":
        router = inprocess.router_only(lane, expected, config.limit_s)
        rater = (inprocess.rater_only(lane, expected, config.limit_s) if router.verified
                 else failed("rater only", expected.routed, "the router-only run did not "
                             "complete, so the rater had no complete input"))
        results = [router, rater]
    else:
        results = faust_runner.run(lane, expected, config, run_id, say,
                                   lambda name: _fresh(connections, run_id, f"{lane_name}-{name}",
                                                       config, catalog, base, records))
    for result in results:
        say(f"{result.contender}: {result.processed} events in {result.seconds:.2f} s = "
            f"{result.events_per_s:,.0f}/s; outputs {result.outputs}; "
            f"{'; '.join(result.mismatches) or 'verified'}")
    return results


def _rating_without_agreements(connections: Connections, run_id: str, lane_name: str,
                               config: BenchConfig, base: Settings,
                               records: list[tuple[bytes, bytes]], expected: Expected) -> Result:
    """The same pipeline on the catalog minus its agreements: rating alone, so the cost of
    quota shows as the difference to the "rating" row (quota + rating) of the same run."""
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as scratch:
        catalog_dir = Path(scratch)
        for path in base.catalog_dir.glob("*.yaml"):
            if path.name != AGREEMENTS_FILE:
                shutil.copy(path, catalog_dir / path.name)
        catalog = load_catalog_dir(catalog_dir)
        if catalog.agreements:
            raise ValueError(f"{base.catalog_dir}: agreements outside {AGREEMENTS_FILE}")
        lane = open_lane(connections, run_id, f"{lane_name}-lane", config.batch_size, catalog,
                         catalog_dir)
    publish_input(lane, records)
    result = inprocess.rating(lane, expected, config.limit_s)
    return replace(result, contender="no-quota rating (router+rater, no agreements)")


def _fresh(connections: Connections, run_id: str, name: str, config: BenchConfig,
           catalog: Catalog, base: Settings, records: list[tuple[bytes, bytes]]) -> Lane:
    """Another lane with the input published (faust's fallback run needs untouched topics)."""
    lane = _lane(connections, run_id, name, config, catalog, base)
    publish_input(lane, records)
    return lane


def machine() -> dict[str, object]:
    return {"cores": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}
