"""`make bench`: exactly-once rating throughput vs pass-through and a faust agent, one run.

    python -m bench.run [--events 50000] [--contenders passthrough,rating,split,faust,...]
                        [--rounds 3] [--no-warm-up] [--processes N] [--json PATH]
                        [--profile] [--faust-cap 300] [--keep-topics]

Connections come from KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL when
set; otherwise from the local stack, started if needed (and stopped again
afterwards if this run started it). Progress goes to stderr, the detailed
log to out/bench-<timestamp>.log, the table to stdout and the numbers to
out/bench-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import confluent_kafka

from bench.harness import CONTENDERS, BenchConfig, machine, run_benchmark
from bench.report import method, print_profile, print_report, write_json
from stream import stack
from stream.cli_types import whole
from stream.settings import REPO_ROOT, Connections, connections_from_env, load_settings

OUT_DIR = REPO_ROOT / "out"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="input events (50000)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="records per transaction (default: config/settings.yaml)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated, run in this order (default {','.join(CONTENDERS)})")
    parser.add_argument("--rounds", type=whole(1), default=3,
                        help="runs of each contender, interleaved; faust runs in the last "
                             "one only (3)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the untimed lanes (pass-through, rating, pass-through) that "
                             "warm the broker")
    parser.add_argument("--processes", type=int, default=0,
                        help="processes of the parallel contender (default: one per core)")
    parser.add_argument("--faust-cap", type=float, default=300.0,
                        help="seconds of faust processing before it is stopped (300)")
    parser.add_argument("--faust-guarantee", default="exactly_once",
                        choices=("exactly_once", "at_least_once"))
    parser.add_argument("--json", type=Path, default=None,
                        help="results file (default out/bench-<timestamp>.json)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the rating loop with cProfile (an extra, untimed run)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="leave the run's topics on the broker for inspection")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_path = OUT_DIR / f"bench-{stamp}.log"
    # Dead letters and rebalances log per event or batch: into the file, not onto the table.
    logging.basicConfig(filename=log_path, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per registry request
    say(f"log: {log_path}")
    load = machine()  # before anything of ours runs
    connections, release, kafka = _connections()
    try:
        batch_size = args.batch_size or load_settings().processor.batch_size
        config = BenchConfig(
            events=args.events, batch_size=batch_size, seed=args.seed,
            contenders=tuple(c.strip() for c in args.contenders.split(",") if c.strip()),
            faust_cap_s=args.faust_cap, faust_guarantee=args.faust_guarantee,
            processes=args.processes, rounds=args.rounds, warm_up=args.warm_up,
            work_dir=OUT_DIR, keep_topics=args.keep_topics,
            profile_path=OUT_DIR / f"bench-{stamp}.prof" if args.profile else None)
        report = run_benchmark(connections, config, say)
    finally:
        release()
    info = method(report, _versions(kafka), load)
    print_report(report, info, sys.stdout)
    print_profile(report, config.profile_path, sys.stdout)
    json_path = args.json or OUT_DIR / f"bench-{stamp}.json"
    write_json(report, info, json_path)
    say(f"results: {json_path} (whole run {report.seconds:.0f} s)")
    return 0 if all(r.verified or r.processed for r in report.results) else 1


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _connections() -> tuple[Connections, Callable[[], None], str]:
    """(connections, release, Kafka's version): the user's broker if named, else the stack.

    The local stack is stopped again afterwards only if this run started it.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return connections_from_env(), lambda: None, "external (KAFKA_BOOTSTRAP_SERVERS)"
    components = {"kafka", "registry", "redis"}  # Redis: the connection settings want it
    was_running = stack.is_running(components)
    if not was_running:
        say("starting the local stack (Kafka, registry, Redis)")
    stack.up(components)
    release: Callable[[], None] = (lambda: None) if was_running else stack.down
    return connections_from_env(), release, f"{stack.KAFKA_VERSION} (local stack)"


def _versions(kafka: str) -> dict[str, str]:
    versions = {"kafka": kafka, "librdkafka": confluent_kafka.libversion()[0]}
    for package in ("confluent-kafka", "faust-streaming", "aiokafka", "fastavro"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


if __name__ == "__main__":
    raise SystemExit(main())
