"""The CLI's command handlers: parse nothing, call inward, print results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from processors.catalog import Catalog, CatalogFolder, load_catalog_dir, read_catalog_folder
from processors.catalog.diff import diff_catalogs
from processors.errors import RatingError
from stream import stack as local_stack
from stream.catalog_feed import CatalogFeed, publish_new_version
from stream.clients import admin_client, idempotent_producer, reading_consumer, registry_client
from stream.contracts import build_codecs, register_all
from stream.processor import RunOptions, run_processor
from stream.publisher import PublishError, UsagePublisher, new_event, validate_event
from stream.readback import JsonDecoder, ValueDecoder, iter_records
from stream.settings import WITH_REDIS, Settings, connections_from_env, load_settings
from stream.topics import ensure_topics

CATALOG_READ_TIMEOUT_S = 15.0


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.settings)


def stack(args: argparse.Namespace) -> int:
    components = {"kafka", "registry", "redis", *args.extra}
    if args.action == "up":
        endpoints = local_stack.up(components=components)
        print(local_stack.env_text(endpoints), end="")
    elif args.action == "down":
        local_stack.down()
    elif args.action == "status":
        for line in local_stack.status_lines():
            print(line)
    else:
        print(local_stack.env_text(local_stack.resolve_endpoints()), end="")
    return 0


def topics(args: argparse.Namespace) -> int:
    settings, connections = _settings(args), connections_from_env()
    created = ensure_topics(admin_client(connections), settings.topics)
    for spec in settings.topics.all():
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name:<28} {spec.partitions:>3} partitions  {spec.cleanup:<8} {state}")
    return 0


def schemas(args: argparse.Namespace) -> int:
    settings, connections = _settings(args), connections_from_env()
    for subject, schema_id in register_all(registry_client(connections),
                                           settings.topics).items():
        print(f"{subject:<36} id {schema_id}  (BACKWARD)")
    return 0


def catalog(args: argparse.Namespace) -> int:
    if args.against is not None and args.action != "diff":
        raise RatingError(f"--against is for `catalog diff`, not `catalog {args.action}`")
    settings = _settings(args)
    directory = args.dir or settings.catalog_dir
    folder = read_catalog_folder(directory)
    loaded = folder.catalog
    if args.action == "diff":
        return _catalog_diff(settings, args.against, loaded)
    if args.action == "validate":
        print(f"catalog {directory} is valid: version {loaded.version}")
    elif args.action == "load":
        _catalog_load(settings, folder)
    else:
        print(f"catalog {directory}: version {loaded.version}")
        print(f"  fiscal periods: {', '.join(p.name for p in loaded.fiscal_periods)}")
        print(f"  rate groups:    {', '.join(sorted(loaded.rate_groups))}")
        print(f"  service items:  {', '.join(sorted(loaded.service_item_types))}")
        print(f"  accounts:       {', '.join(sorted(loaded.accounts))}")
        print(f"  providers:      {', '.join(sorted(loaded.providers))}")
        for table in sorted(loaded.rate_tables.values(), key=lambda t: t.name):
            print(f"  rate table {table.name}: {table.service_item_type} "
                  f"{'/'.join(table.operations)} {table.pricing} {table.currency.code} "
                  f"groups {','.join(table.rate_groups)}")
    return 0


def _catalog_load(settings: Settings, folder: CatalogFolder) -> None:
    """Publish the texts just validated, unless their version is on the topic with other
    content (processors would not take it)."""
    connections = connections_from_env()
    topic = settings.topics.catalog.name
    ensure_topics(admin_client(connections), settings.topics)
    publish_new_version(reading_consumer(connections), idempotent_producer(connections), topic,
                        folder.catalog, folder.sources, read_timeout_s=CATALOG_READ_TIMEOUT_S)
    print(f"catalog version {folder.catalog.version} published to {topic}")


def _catalog_diff(settings: Settings, against: Path | None, new: Catalog) -> int:
    """Print what changed from the published version (or ``against``); 0 same, 1 changed."""
    if against is not None:
        old, where = load_catalog_dir(against), str(against)
    else:
        topic = settings.topics.catalog.name
        feed = CatalogFeed(reading_consumer(connections_from_env()), topic)
        try:
            old = feed.wait_for_catalog(timeout_s=CATALOG_READ_TIMEOUT_S)
        finally:
            feed.close()
        where = f"the version published on {topic}"
    lines = diff_catalogs(old, new)
    if not lines and old.content_hash != new.content_hash:
        # Nothing billed changes (a description, "0.50" written "0.500"), but the content
        # does: under the same version name, `catalog load` would refuse it.
        same_name = (f"; version {new.version} is the same name, so `catalog load` would "
                     "refuse it: set a new version" if old.version == new.version else "")
        print(f"no change in what is billed, but the content differs from {where} (version "
              f"{old.version}): descriptions or how values are written{same_name}")
        return 1
    if not lines:
        print(f"no changes: version {new.version} is the same as {where}")
        return 0
    print(f"changes from {where} (version {old.version}) to version {new.version}:")
    for line in lines:
        print(f"  {line}")
    return 1


def process(args: argparse.Namespace) -> int:
    settings, connections = _settings(args), connections_from_env()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    port, fallback = _metrics_port(args.metrics_port)
    run_processor(settings, connections, RunOptions(stages=stages, instance_id=args.instance_id,
                                                    idle_exit_s=args.idle_exit,
                                                    metrics_port=port,
                                                    metrics_port_fallback=fallback))
    return 0


def _metrics_port(flag: int | None) -> tuple[int, bool]:
    """--metrics-port, else $RATING_METRICS_PORT, else 9400 (a free one if 9400 is taken)."""
    from stream.observability import DEFAULT_METRICS_PORT, METRICS_PORT_ENV

    if flag is not None:
        port, where = flag, "--metrics-port"
    elif os.environ.get(METRICS_PORT_ENV, "").strip():
        where = METRICS_PORT_ENV
        try:
            port = int(os.environ[METRICS_PORT_ENV])
        except ValueError:
            raise RatingError(f"{METRICS_PORT_ENV}={os.environ[METRICS_PORT_ENV]!r}: "
                              "expected a port number (0 = any free port)") from None
    else:
        return DEFAULT_METRICS_PORT, True
    if not 0 <= port < 65536:
        raise RatingError(f"{where} {port}: expected a port number 0-65535 (0 = any free port)")
    return port, False


def produce(args: argparse.Namespace) -> int:
    # The events first: a wrong flag or file is reported before any connection is tried.
    if args.file and _is_avro_file(args.file):
        events = _events_from_avro_file(args.file)
    elif args.file:
        events = [_event_from_json(raw, f"{args.file}#{index}")
                  for index, raw in enumerate(_json_list(args.file))]
        if not events:
            raise RatingError(f"{args.file}: no events in the file")
    else:
        events = [_event_from_flags(args)]
    # Every event checked by the router's rules before the first is sent: a bad one in the
    # middle of a file used to stop the command after the ones before it were published,
    # and running the fixed file again published those a second time (new ids: billed twice).
    for index, event in enumerate(events):
        try:
            validate_event(event)
        except PublishError as invalid:
            where = f"{args.file}#{index}" if args.file else "the event"
            raise RatingError(f"{where}: {invalid}; nothing was published") from None
    settings, connections = _settings(args), connections_from_env()
    with UsagePublisher.connect(connections, settings.topics.events.name) as publisher:
        for event in events:
            publisher.publish(event)
    for event in events:
        print(f"published {event.event_id} {event.service_item_type}/{event.operation}")
    return 0


AVRO_FILE_MAGIC = b"Obj\x01"


def _is_avro_file(path: Path) -> bool:
    """An Avro object container file (by its magic bytes, whatever the extension)."""
    try:
        with path.open("rb") as file:
            return file.read(len(AVRO_FILE_MAGIC)) == AVRO_FILE_MAGIC
    except OSError as exc:
        raise RatingError(f"{path}: cannot read: {exc}") from None


def _events_from_avro_file(path: Path) -> list[Any]:
    """UsageEvent records from an Avro container file, read with the file's own schema
    resolved against ours (so a compatible older writer schema works), validated like
    the router does."""
    import fastavro

    from processors.errors import EventRejected
    from stream.codec import event_from_avro
    from stream.serde import SCHEMA_FILES, parsed_schema

    events = []
    try:
        with path.open("rb") as file:
            reader = fastavro.reader(file, reader_schema=parsed_schema(SCHEMA_FILES["events"]))
            for index, record in enumerate(reader):
                try:
                    events.append(event_from_avro(record))  # type: ignore[arg-type]
                except EventRejected as rejected:
                    raise RatingError(f"{path}#{index}: {rejected.message}") from None
    except (OSError, ValueError, EOFError, fastavro.read.SchemaResolutionError) as exc:
        raise RatingError(f"{path}: not a readable UsageEvent Avro file: {exc}") from None
    return events


def _json_list(path: Path) -> list[dict[str, Any]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: JSON or UTF-8 decoding
        raise RatingError(f"{path}: not readable JSON: {exc}") from None
    return raw if isinstance(raw, list) else [raw]


def _event_from_json(raw: dict[str, Any], where: str) -> Any:
    from datetime import datetime

    if not isinstance(raw, dict):
        raise RatingError(f"{where}: expected an event object, got {type(raw).__name__}")
    text_fields = ("service_item_type", "service_item_id", "operation", "requester", "home_ou",
                   "source", "event_id", "event_time", "account_id", "provider", "product")
    for name in text_fields:
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise RatingError(f"{where}: field {name!r} must be a string, got {raw[name]!r}")
    if not isinstance(raw.get("attributes", {}), dict):
        raise RatingError(f"{where}: 'attributes' must be an object of name: value")
    try:
        when = raw.get("event_time")
        moment = datetime.fromisoformat(when) if when else None
        if moment is not None and moment.utcoffset() is None:
            raise RatingError(f"{where}: event_time {when!r} has no UTC offset (end it with "
                              "Z or +00:00)")
        return new_event(
            service_item_type=raw["service_item_type"], service_item_id=raw["service_item_id"],
            operation=raw["operation"], attributes=_typed(raw.get("attributes", {}), where),
            requester=raw["requester"], home_ou=raw["home_ou"],
            source=raw.get("source", "rating-cli"), event_id=raw.get("event_id"),
            event_time=moment,
            account_id=raw.get("account_id"), provider=raw.get("provider"),
            product=raw.get("product"))
    except KeyError as exc:
        raise RatingError(f"{where}: missing field {exc}") from None
    except PublishError as exc:  # an empty event_id, a float attribute
        raise RatingError(f"{where}: {exc}") from None
    except ValueError as exc:  # an event_time that is not ISO 8601
        raise RatingError(f"{where}: {exc}") from None


def _typed(attributes: dict[str, Any], where: str) -> dict[str, int | str | Decimal]:
    typed: dict[str, int | str | Decimal] = {}
    for name, value in attributes.items():
        if isinstance(value, bool):
            raise RatingError(f"{where}: attribute {name!r}: booleans are not attribute values")
        if value is None or isinstance(value, list | dict):
            raise RatingError(f"{where}: attribute {name!r}: {json.dumps(value)} is not an "
                              "attribute value (a number or a text)")
        typed[name] = Decimal(str(value)) if isinstance(value, int | float) else str(value)
    return typed


def _event_from_flags(args: argparse.Namespace) -> Any:
    missing = [flag for flag, value in (("--item-type", args.item_type),
                                        ("--item-id", args.item_id),
                                        ("--operation", args.operation),
                                        ("--requester", args.requester),
                                        ("--home-ou", args.home_ou)) if not value]
    if missing:
        raise RatingError(f"missing {', '.join(missing)} (or give --file)")
    attributes: dict[str, int | str | Decimal] = {}
    for pair in args.attr:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RatingError(f"--attr {pair!r}: expected NAME=VALUE")
        attributes[name] = _attribute_value(value)
    return new_event(service_item_type=args.item_type, service_item_id=args.item_id,
                     operation=args.operation, attributes=attributes,
                     requester=args.requester, home_ou=args.home_ou, source=args.source,
                     account_id=args.account, provider=args.provider, product=args.product)


def _attribute_value(text: str) -> str | Decimal:
    if text.startswith("text:"):
        return text[5:]
    try:
        return Decimal(text)
    except ArithmeticError:
        return text


def simulate(args: argparse.Namespace) -> int:
    from stream.simulate import run_simulation

    settings, connections = _settings(args), connections_from_env()
    report = run_simulation(connections, settings, events=args.events, rate=args.rate,
                            seed=args.seed, bad_fraction=args.bad_fraction)
    print(report.describe())
    return 0


def sink(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sinks.quota_view import run_quota_view
    from stream.observability import OpsListener, Readiness, start_server, stop_server

    settings = _settings(args)
    if args.url is not None and args.name != "billing-history":
        raise RatingError(f"--url is the billing-history store; the {args.name} sink writes to "
                          "Redis (REDIS_URL)")
    history_url = args.url or settings.sinks.history_url
    if args.name == "billing-history":
        from sinks.history.urls import check_history_url

        check_history_url(history_url)  # a wrong --url is reported before anything starts
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # A sink keeps no state and reads no catalog: ready with partitions and a reachable store.
    ops = OpsListener(Readiness(needs_state=False, needs_catalog=False))
    port, fallback = _metrics_port(args.metrics_port)
    server = start_server(port, ops.readiness, fallback=fallback)
    try:
        if args.name == "billing-history":
            from sinks.history.sink import run_billing_history

            run_billing_history(settings, connections_from_env(), history_url, stop,
                                replay=args.replay, ops=ops)
        elif args.name == "aggregates":
            from sinks.aggregates import run_aggregates

            run_aggregates(settings, connections_from_env(needed=WITH_REDIS), stop,
                           replay=args.replay, ops=ops)
        else:
            run_quota_view(settings, connections_from_env(needed=WITH_REDIS), stop,
                           replay=args.replay, ops=ops)
    finally:
        stop_server(server)
    return 0


TAIL_ROLES = ("events", "rated", "dlq", "late", "rejected", "quota_alerts", "subscriptions",
              "licence_runs")
# A run report names the request it answers by its topic, partition and offset on
# licence.events; on a tail line, partition and offset are the record's own.
_REPORT_POSITION = {"topic": "request_topic", "partition": "request_partition",
                    "offset": "request_offset"}


def tail(args: argparse.Namespace) -> int:
    from stream.subscription_stage import subscription_decoder

    settings, connections = _settings(args), connections_from_env()
    client = registry_client(connections)
    codecs = build_codecs(client, settings.topics)
    decoders: dict[str, ValueDecoder] = {
        "events": codecs.event_decoder, "rated": codecs.rated_decoder,
        "dlq": codecs.dead_letter_decoder, "late": codecs.dead_letter_decoder,
        "rejected": codecs.dead_letter_decoder, "quota_alerts": codecs.alert_decoder,
        "licence_runs": JsonDecoder()}
    decoder = (subscription_decoder(client, settings.topics) if args.role == "subscriptions"
               else decoders[args.role])
    renamed = _REPORT_POSITION if args.role == "licence_runs" else {}
    topic = getattr(settings.topics, args.role).name
    for record in iter_records(connections, topic, decoder, follow=args.follow):
        value = {renamed.get(k, k): (v.hex() if isinstance(v, bytes) else v)
                 for k, v in record.value.items()}
        print(json.dumps({"partition": record.partition, "offset": record.offset, **value},
                         default=str), flush=True)
    return 0


def bench(args: argparse.Namespace) -> int:
    try:
        from bench.run import main as bench_main
    except ImportError:
        raise RatingError("the benchmark ships with the source tree, not the package: run "
                          "`rating bench` from a checkout (make bench)") from None
    forwarded = [arg for arg in args.bench_args if arg != "--"]
    return bench_main(forwarded)


def demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(_settings(args), events=args.events, seed=args.seed,
                    keep_running=args.keep_running, out=sys.stdout, settings_file=args.settings)


