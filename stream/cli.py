"""`rating`: one entry point for every routine task. `rating --help` lists them."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from processors.errors import RatingError
from stream import commands
from stream.cli_types import real_in, whole
from stream.clients import KAFKA_LOG_FLOOD
from stream.logs import LOG_FORMATS, configure_logging
from stream.settings import DEFAULT_SETTINGS_FILE, load_settings

Handler = Callable[[argparse.Namespace], int]


def _add_produce(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    produce = sub.add_parser("produce", help="publish usage events from a JSON file or flags")
    produce.add_argument("--file", type=Path, help="JSON file (one event object or a list) "
                         "or an Avro container file of UsageEvent records")
    produce.add_argument("--item-type")
    produce.add_argument("--item-id")
    produce.add_argument("--operation")
    produce.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                         help="attribute; numbers become numbers, `name=text:abc` forces text")
    produce.add_argument("--requester")
    produce.add_argument("--home-ou")
    produce.add_argument("--account")
    produce.add_argument("--provider")
    produce.add_argument("--product")
    produce.add_argument("--source", default="rating-cli")
    produce.set_defaults(handler=commands.produce)


def _add_catalog(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = sub.add_parser(
        "catalog", help="validate, load (publish), show or diff the catalog",
        description="diff exits 0 when the versions are the same, 1 when they differ, "
        "2 on error (like diff(1)).")
    catalog.add_argument("action", choices=["validate", "load", "show", "diff"])
    catalog.add_argument("--dir", type=Path, default=None,
                         help="catalog folder (default: catalog_dir from the settings)")
    catalog.add_argument("--against", type=Path, default=None, metavar="OLD_DIR",
                         help="diff: compare with this folder instead of the version "
                         "published on the catalog topic")
    catalog.set_defaults(handler=commands.catalog)


def _add_api(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = sub.add_parser("api", help="serve the REST API: billing history, aggregates, "
                         "quota status, price estimates (docs/api.md)")
    api.add_argument("--host", help="listen address (default: api.host in the settings)")
    api.add_argument("--port", type=whole(0, 65535),
                     help="listen port, 0 = any free one (default: api.port)")
    api.add_argument("--history-url", help="billing-history store, sqlite:///PATH or "
                     "postgresql://... (default: sinks.history_url, $RATING_HISTORY_URL)")
    api.add_argument("--tokens", type=Path, metavar="FILE", help="API token file: SHA-256 "
                     "hashes with roles (default: $RATING_API_TOKENS_FILE, api.tokens_file)")
    api.add_argument("--catalog-dir", type=Path, metavar="DIR", help="price estimates with "
                     "this catalog folder (default: the version on the catalog topic)")
    api.set_defaults(handler=_serve_api)


def _serve_api(args: argparse.Namespace) -> int:
    from api.command import serve  # FastAPI and uvicorn load only for this command

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rating", description="Real-time usage rating on Kafka: stack, catalog, "
        "processors, publishing, simulation and inspection.")
    parser.add_argument("--settings", type=Path, default=DEFAULT_SETTINGS_FILE,
                        help="settings YAML (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=None,
                        help="log lines as json or text (default: text on a terminal, "
                        "json otherwise)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="the local Kafka/registry/Redis stack (no Docker)")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.add_argument("--with", dest="extra", action="append", default=[],
                       choices=["postgres", "prometheus"], help="optional components")
    stack.set_defaults(handler=commands.stack)

    sub.add_parser("topics", help="create missing topics from the settings").set_defaults(
        handler=commands.topics)
    sub.add_parser("schemas", help="register every topic's Avro schema (BACKWARD)"
                   ).set_defaults(handler=commands.schemas)

    _add_catalog(sub)

    process = sub.add_parser("process", help="run the router and/or rater (exactly once)")
    process.add_argument("--stages", default="router,rater",
                         help="comma-separated: router, rater, subscriptions (licences; "
                         "docs/licences.md) (default: router,rater)")
    process.add_argument("--instance-id", default="0",
                         help="stable id of this instance (fences its own zombie on restart)")
    process.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                         help="stop after this long with no input (default: run forever)")
    process.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                         help="serve /metrics, /healthz, /readyz on PORT, 0 = a free one "
                         "(default: $RATING_METRICS_PORT, else 9400)")
    process.set_defaults(handler=commands.process)

    _add_produce(sub)

    simulate = sub.add_parser("simulate", help="publish a realistic simulated workload")
    simulate.add_argument("--events", type=whole(1), default=2000)
    simulate.add_argument("--rate", type=real_in(0, 1e9), default=0.0,
                          help="events/s, 0 = as fast")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--bad-fraction", type=real_in(0, 1), default=0.01,
                          help="share of deliberately bad events (garbage, unknown items)")
    simulate.set_defaults(handler=commands.simulate)

    sink = sub.add_parser("sink", help="run a sink: quota-view mirrors quota state into Redis; "
                          "aggregates keeps period totals in Redis; billing-history stores every "
                          "rated record in SQLite or PostgreSQL")
    sink.add_argument("name", choices=["quota-view", "aggregates", "billing-history"])
    sink.add_argument("--url", default=None,
                      help="billing-history store: sqlite:///PATH or postgresql://... "
                      "(default: sinks.history_url in the settings, or RATING_HISTORY_URL)")
    sink.add_argument("--replay", action="store_true",
                      help="re-read the source topic from the start (stored records are "
                      "skipped)")
    sink.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                      help="serve /metrics, /healthz, /readyz on PORT, 0 = a free one "
                      "(default: $RATING_METRICS_PORT, else 9400, else a free one)")
    sink.set_defaults(handler=commands.sink)

    from reports.command import add_report_parser  # serving sits on top: entry point only

    add_report_parser(sub)

    from stream.licence_commands import add_licence_parsers  # billing-run, licences

    add_licence_parsers(sub)

    _add_api(sub)

    tail = sub.add_parser(
        "tail", help="print a topic's records decoded (read_committed)",
        description="One JSON object per record: its partition and offset, then the fields "
        "of its value. The topic is named by its role in the settings: events, rated, dlq, "
        "late, rejected, quota_alerts (usage.*, quota.alerts), subscriptions (licence.events: "
        "licence changes and billing-run requests), licence_runs (licence.runs: billing-run "
        "reports, with the request's topic, partition and offset as request_topic, "
        "request_partition, request_offset).")
    tail.add_argument("role", choices=commands.TAIL_ROLES, help="the topic's role")
    tail.add_argument("--follow", action="store_true",
                      help="keep printing new records as they are committed (Ctrl-C stops)")
    tail.set_defaults(handler=commands.tail)

    bench = sub.add_parser("bench", help="throughput benchmark (source tree only): "
                           "pass-through vs rating vs faust; `rating bench -- --help`")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER,
                       help="arguments for bench.run, e.g. -- --events 20000")
    bench.set_defaults(handler=commands.bench)

    demo = sub.add_parser("demo", help="make run: stack, catalog, processor and sinks, "
                          "workload rated, summary, monthly report, licence billing run")
    demo.add_argument("--events", type=whole(1), default=5000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the processor, the sinks and the stack running at the end")
    demo.set_defaults(handler=commands.demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        configure_logging(logging.DEBUG if args.verbose else _log_level(args.settings),
                          args.log_format, sys.stderr)
        return _run(handler, args)
    except RatingError as exc:
        print(f"rating {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`rating tail rated | head -1`): not an error of ours. Point
        # stdout at nothing so the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


def _run(handler: Handler, args: argparse.Namespace) -> int:
    """The command, then the Kafka clients' log counts still held back (stream/clients.py
    also does at exit, but here they come before the error line, which stays the last)."""
    try:
        return handler(args)
    finally:
        KAFKA_LOG_FLOOD.flush_all()


def _log_level(settings_file: Path) -> str:
    """The settings' log_level (RATING_LOG_LEVEL wins); INFO while the settings are broken:
    the command itself then reports what is wrong with them."""
    try:
        return load_settings(settings_file).log_level
    except RatingError:
        return "INFO"


if __name__ == "__main__":
    sys.exit(main())
