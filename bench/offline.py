"""The two stages without a broker: router then rater over pre-encoded records, in memory.

    python -m bench.offline [--events 20000] [--repeat 5] [--lanes rating,router,rater,...]
                            [--records FILE] [--edge-cases] [--profile PATH] [--digest]
                            [--dump PATH]
    python -m bench.pure_python bench.offline ...   (the same, hot path interpreted)

What it is for: the per-event cost of our own code, measured the same way
every time, on a machine where wall-clock throughput through the broker is
noisy. Every lane runs the real stage objects (``RouterStage``,
``RaterStage``, ``ChangelogStateStore``) over real ``confluent_kafka.Message``
objects built from the benchmark workload, batch by batch as the loop drives
them (``process`` per record, ``end_batch`` per batch), with a fixed clock
and no registry (schema ids are fixed). Kafka's own cost (consume, produce,
transactions) is not here: ``make bench`` measures that.

Lanes (events per second are per input event):

- ``rating``: router over every event, then the rater over what it routed;
- ``router`` / ``rater``: each stage alone (the rater's input is routed once, untimed);
- ``avro``: the yardstick of a stage that must read and write Avro: decode every
  event and encode it again (fastavro both ways, nothing else);
- ``engine``: ``process_event`` alone over already decoded events (no Avro, no stages);
- ``decode``: ``read_event`` alone over the rater's input (per routed event);
- ``encode``: ``rated_to_bytes`` alone (per rated record).

Times are CPU seconds of this process (``time.process_time``), the median of
``--repeat`` runs, so other processes on the machine disturb them less than
wall time. ``--digest`` prints a SHA-256 over every output record (topic,
partition, key, value, headers) of the ``rating`` lane: two versions of the
code that print the same digest produced byte-identical outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import logging
import os
import pickle
import statistics
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message

from bench.edge_cases import edge_case_records
from bench.workload import encode, generate
from processors.catalog import Catalog, load_catalog_dir
from processors.errors import EventRejected
from processors.events import Origin, UsageEvent
from processors.pipeline import PartitionState, process_event
from stream.codec import event_from_avro, rated_to_bytes, read_event
from stream.contracts import Codecs
from stream.loop import GC_THRESHOLD, Stage
from stream.messages import Output
from stream.serde import SCHEMA_FILES, AvroDecoder, AvroEncoder
from stream.settings import Settings, load_settings
from stream.stages import DecodedEvents, RaterStage, RouterStage
from stream.state_store import ChangelogStateStore

PARTITIONS = 6
BATCH = 1000
# A fixed "now": the workload's event times and every output's rated_at / rejected_at.
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LANES = ("rating", "router", "rater", "avro", "engine", "decode", "encode")
# Fixed schema ids per topic role (no registry): the same bytes on every run.
SCHEMA_IDS = {role: index for index, role in enumerate(SCHEMA_FILES, start=1)}


def offline_codecs() -> Codecs:
    """The processor's codecs with fixed schema ids; decoders never ask a registry."""

    def encoder(role: str) -> AvroEncoder:
        return AvroEncoder(SCHEMA_IDS[role], SCHEMA_FILES[role])

    def decoder(*roles: str) -> AvroDecoder:
        decoder = AvroDecoder(None, SCHEMA_FILES[roles[0]])  # type: ignore[arg-type]
        for role in roles:
            decoder.remember(SCHEMA_IDS[role], SCHEMA_FILES[role])
        return decoder

    return Codecs(event_encoder=encoder("events"), event_decoder=decoder("events", "by_account"),
                  rated_encoder=encoder("rated"), rated_decoder=decoder("rated"),
                  dead_letter_encoder=encoder("dlq"), rejected_encoder=encoder("rejected"),
                  late_encoder=encoder("late"),
                  dead_letter_decoder=decoder("dlq", "rejected", "late"),
                  alert_encoder=encoder("quota_alerts"), alert_decoder=decoder("quota_alerts"))


def workload_records(settings: Settings, events: int, seed: int,
                     codecs: Codecs) -> list[tuple[bytes, bytes]]:
    """The benchmark workload with reproducible event ids and times (the bench's own
    input has fresh UUIDs and the current time; here two runs must see the same bytes)."""
    generated = generate(settings.workload_file, events, seed, now=NOW)
    ids: dict[str, str] = {}
    stable = [replace(event, event_id=ids.setdefault(event.event_id,
                                                     str(uuid.UUID(int=len(ids) + 1))))
              for event in generated]
    return encode(stable, codecs.event_encoder)


class _EmptyChangelog:
    """A restore consumer over empty changelog partitions: every partition is at its end."""

    def __init__(self) -> None:
        self._pending: list[int] = []

    def assign(self, partitions: Sequence[Any]) -> None:
        self._pending = [tp.partition for tp in partitions]

    def poll(self, timeout: float) -> Message | None:
        if not self._pending:
            return None
        return Message(topic="changelog", partition=self._pending.pop(), offset=0,
                       error=KafkaError(KafkaError._PARTITION_EOF))

    def unassign(self) -> None:
        self._pending = []

    def close(self) -> None:
        return None


@dataclass
class Lane:
    """The stages of one run, fresh state, the fixed clock."""

    router: RouterStage
    rater: RaterStage
    store: ChangelogStateStore
    handoff: DecodedEvents | None


def new_lane(codecs: Codecs, settings: Settings, catalog: Catalog,
             handoff: bool = True) -> Lane:
    topics = settings.topics
    window = timedelta(days=settings.processor.dedup_window_days)
    store = ChangelogStateStore(_EmptyChangelog(), topics.changelog.name,  # type: ignore[arg-type]
                                lambda: PartitionState(dedup_window=window),
                                lambda topic, partitions: dict.fromkeys(partitions, 0))
    store.restore(range(PARTITIONS))
    # One process with both stages, as `rating process` runs them: the rater takes the
    # events the router decoded (the rater lane alone finds none and decodes them all).
    events = DecodedEvents() if handoff else None
    router = RouterStage(codecs, topics, lambda: catalog, clock=lambda: NOW, handoff=events)
    rater = RaterStage(codecs, topics, lambda: catalog, store, clock=lambda: NOW,
                       handoff=events)
    return Lane(router, rater, store, events)


def input_messages(records: Sequence[tuple[bytes, bytes]], topic: str) -> list[Message]:
    """The records as consumed from ``topic``: partition by key, offsets in order."""
    offsets = [0] * PARTITIONS
    messages = []
    for key, value in records:
        partition = zlib.crc32(key) % PARTITIONS
        messages.append(Message(topic=topic, partition=partition, offset=offsets[partition],
                                key=key, value=value, timestamp=(1, 1_795_000_000_000)))
        offsets[partition] += 1
    return messages


def routed_messages(outputs: Sequence[Output], topic: str,
                    offsets: list[int] | None = None) -> list[Message]:
    """The router's outputs to ``topic`` as the rater consumes them (``offsets``: the
    next offset of each partition, advanced here; from 0 when not given)."""
    offsets = [0] * PARTITIONS if offsets is None else offsets
    messages = []
    for output in outputs:
        if output.topic != topic or output.key is None:
            continue
        partition = zlib.crc32(output.key) % PARTITIONS
        messages.append(Message(topic=topic, partition=partition, offset=offsets[partition],
                                key=output.key, value=output.value,
                                headers=output.headers or None,
                                timestamp=(1, 1_795_000_000_000)))
        offsets[partition] += 1
    return messages


def _batches(messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
    for start in range(0, len(messages), BATCH):
        yield messages[start:start + BATCH]


def run_stage(stage: Stage, messages: Sequence[Message]) -> list[Output]:
    """The stage over the messages as the loop drives it: ``process`` per record,
    ``end_batch`` per batch of BATCH records."""
    outputs: list[Output] = []
    for batch in _batches(messages):
        outputs.extend(run_batch(stage, batch))
    return outputs


def run_batch(stage: Stage, batch: Sequence[Message]) -> list[Output]:
    outputs: list[Output] = []
    for message in batch:
        outputs.extend(stage.process(message))
    outputs.extend(stage.end_batch())
    return outputs


def run_both(lane: Lane, inputs: Sequence[Message], topic: str) -> list[Output]:
    """Router then rater, a batch at a time, as one process runs them: the rater's
    batches are BATCH routed records (the last one shorter), as with ``run_stage`` over
    all of the router's outputs, so the outputs are the same; the router's come first."""
    routed: list[Output] = []
    rated: list[Output] = []
    offsets = [0] * PARTITIONS
    waiting: list[Message] = []
    for batch in _batches(inputs):
        outputs = run_batch(lane.router, batch)
        routed.extend(outputs)
        waiting.extend(routed_messages(outputs, topic, offsets))
        while len(waiting) >= BATCH:
            rated.extend(run_batch(lane.rater, waiting[:BATCH]))
            del waiting[:BATCH]
    if waiting:
        rated.extend(run_batch(lane.rater, waiting))
    return routed + rated


@dataclass
class Fixture:
    settings: Settings
    catalog: Catalog
    codecs: Codecs
    records: list[tuple[bytes, bytes]]
    inputs: list[Message]
    routed: list[Message]
    decoded: list[UsageEvent]


def fixture(events: int, seed: int, records: list[tuple[bytes, bytes]] | None = None
            ) -> Fixture:
    settings = load_settings()
    catalog = load_catalog_dir(settings.catalog_dir)
    codecs = offline_codecs()
    records = records if records is not None else workload_records(settings, events, seed,
                                                                   codecs)
    inputs = input_messages(records, settings.topics.events.name)
    routed_outputs = run_stage(new_lane(codecs, settings, catalog).router, inputs)
    routed = routed_messages(routed_outputs, settings.topics.by_account.name)
    decoded = [event_from_avro(codecs.event_decoder.decode(m.value())) for m in routed]
    return Fixture(settings, catalog, codecs, records, inputs, routed, decoded)


def lane_rating(fx: Fixture) -> tuple[int, Callable[[], object]]:
    def run() -> object:
        lane = new_lane(fx.codecs, fx.settings, fx.catalog)
        return run_both(lane, fx.inputs, fx.settings.topics.by_account.name)
    return len(fx.inputs), run


def lane_router(fx: Fixture) -> tuple[int, Callable[[], object]]:
    return len(fx.inputs), lambda: run_stage(new_lane(fx.codecs, fx.settings, fx.catalog).router,
                                             fx.inputs)


def lane_rater(fx: Fixture) -> tuple[int, Callable[[], object]]:
    return len(fx.routed), lambda: run_stage(new_lane(fx.codecs, fx.settings, fx.catalog).rater,
                                             fx.routed)


def lane_avro(fx: Fixture) -> tuple[int, Callable[[], object]]:
    decoder, encoder = fx.codecs.event_decoder, fx.codecs.event_encoder

    def run() -> object:
        return [encoder.encode(decoder.decode(value)) for _key, value in fx.records[:-1]
                if value[:1] == b"\x00"]
    return len(fx.records), run


def lane_engine(fx: Fixture) -> tuple[int, Callable[[], object]]:
    origins = list(fx.routed)

    def run() -> object:
        state = PartitionState()
        outcomes = []
        for message, event in zip(origins, fx.decoded, strict=True):
            with contextlib.suppress(EventRejected):
                outcomes.append(process_event(event, Origin("t", 0, message.offset() or 0),
                                              fx.catalog, state, NOW))
        return outcomes
    return len(fx.decoded), run


def lane_decode(fx: Fixture) -> tuple[int, Callable[[], object]]:
    decoder = fx.codecs.event_decoder
    values = [message.value() for message in fx.routed]
    return len(values), lambda: [read_event(decoder, value) for value in values]


def lane_encode(fx: Fixture) -> tuple[int, Callable[[], object]]:
    state = PartitionState()
    rated = []
    for message, event in zip(fx.routed, fx.decoded, strict=True):
        with contextlib.suppress(EventRejected):
            outcome = process_event(event, Origin("t", 0, message.offset() or 0), fx.catalog,
                                    state, NOW)
            if outcome.rated is not None:
                rated.append(outcome.rated)
    encoder = fx.codecs.rated_encoder
    return len(rated), lambda: [rated_to_bytes(encoder, record) for record in rated]


LANE_RUNNERS = {"rating": lane_rating, "router": lane_router, "rater": lane_rater,
                "avro": lane_avro, "engine": lane_engine, "decode": lane_decode,
                "encode": lane_encode}


def measure(run: Callable[[], object], repeat: int) -> list[float]:
    """CPU seconds of each of ``repeat`` runs (after one untimed warm-up)."""
    run()
    seconds = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        seconds.append(time.process_time() - started)
    return seconds


def digest(outputs: Sequence[Output]) -> str:
    """SHA-256 over every output record, in order."""
    sha = hashlib.sha256()
    for output in outputs:  # repr, not pickle: the same bytes whatever objects are shared
        sha.update(repr((output.topic, output.partition, output.key, output.value,
                         list(output.headers))).encode())
    return sha.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.offline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lanes", default=",".join(LANES))
    parser.add_argument("--records", type=Path, default=None,
                        help="read the input records from this pickle (written if missing)")
    parser.add_argument("--edge-cases", action="store_true",
                        help="append the odd records of bench/edge_cases.py to the input")
    parser.add_argument("--profile", type=Path, default=None,
                        help="cProfile one run of the rating lane into this file")
    parser.add_argument("--digest", action="store_true",
                        help="print a SHA-256 of every output of the rating lane (both stages)")
    parser.add_argument("--dump", type=Path, default=None,
                        help="pickle every output of the rating lane into this file")
    parser.add_argument("--log", default=os.devnull,
                        help="log file (default: discarded, but still formatted as in a run)")
    args = parser.parse_args(argv)
    # As bench.run does: INFO and up go to a file, so a log line costs what it costs there.
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # As ExactlyOnceLoop.run does (the lanes here call the stages without the loop).
    gc.set_threshold(max(gc.get_threshold()[0], GC_THRESHOLD), *gc.get_threshold()[1:])
    records = None
    if args.records is not None and args.records.exists():
        records = pickle.loads(args.records.read_bytes())
    if args.edge_cases:
        codecs = offline_codecs()
        workload = records or workload_records(load_settings(), args.events, args.seed, codecs)
        records = [*workload, *edge_case_records(workload)]
    fx = fixture(args.events, args.seed, records)
    if args.records is not None and not args.records.exists():
        args.records.write_bytes(pickle.dumps(fx.records))
    if args.digest or args.dump:
        outputs = lane_rating(fx)[1]()
        assert isinstance(outputs, list)
        print(f"digest {digest(outputs)} over {len(outputs)} outputs")
        if args.dump:
            args.dump.write_bytes(pickle.dumps([(o.topic, o.partition, o.key, o.value,
                                                 o.headers) for o in outputs]))
    if args.profile:
        profiler = cProfile.Profile()
        run = lane_rating(fx)[1]
        profiler.runcall(run)
        profiler.dump_stats(str(args.profile))
        print(f"profile: {args.profile}")
    for name in (n.strip() for n in args.lanes.split(",") if n.strip()):
        count, run = LANE_RUNNERS[name](fx)
        seconds = measure(run, args.repeat)
        median, best = statistics.median(seconds), min(seconds)
        print(f"{name:8s} {count:7d} events  median {median / count * 1e6:6.1f} us/event "
              f"({count / median:7,.0f} ev/s), best {best / count * 1e6:6.1f} us/event "
              f"({count / best:7,.0f} ev/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
