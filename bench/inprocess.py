"""The in-process contenders: pass-through, the rating pipeline, and its two stages apart.

Each runs in this process on its own lane, timed by bench.clock.LoopClock.
The rating contenders call stream.processor.run_processor exactly as
`rating process` does; only the stop event comes from the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from confluent_kafka import Message

from bench.broker_cpu import broker_cpu_reader
from bench.clock import LoopClock, Timing
from bench.lanes import Lane
from bench.outputs import read_outputs
from bench.results import Result
from bench.workload import Expected
from stream.clients import processing_consumer, transactional_producer
from stream.contracts import Codecs
from stream.loop import ExactlyOnceLoop, Stage, StatelessStage
from stream.messages import Output, origin_of
from stream.processor import RunOptions, run_processor


class PassThroughStage(StatelessStage):
    """Forwards each record's key and bytes unchanged: the loop's own cost and nothing else."""

    name = "pass-through"

    def __init__(self, source: str, target: str):
        self._source = source
        self._target = target

    @property
    def topics(self) -> Sequence[str]:
        return [self._source]

    def process(self, message: Message) -> Iterable[Output]:
        return (Output(topic=self._target, key=message.key(), value=message.value()),)


class AvroPassThroughStage(PassThroughStage):
    """Decodes each record with fastavro and encodes it again: what any stage that reads
    and writes Avro pays, and nothing else (a yardstick, not a contender)."""

    name = "avro-pass-through"

    def __init__(self, source: str, target: str, codecs: Codecs):
        super().__init__(source, target)
        self._decoder = codecs.event_decoder
        self._encoder = codecs.event_encoder

    def process(self, message: Message) -> Iterable[Output]:
        value = self._encoder.encode(self._decoder.decode(message.value()))
        return (Output(topic=self._target, key=message.key(), value=value),)


class SecondHopStage(PassThroughStage):
    """The rater's Kafka work without the rating: each record forwarded once more, plus
    one small state record per record on the changelog partition of its input partition
    (the rater writes about that much: the event id it has seen, in the same transaction)."""

    name = "second-hop"

    def __init__(self, source: str, target: str, changelog: str):
        super().__init__(source, target)
        self._changelog = changelog
        self._state: list[Output] = []

    def process(self, message: Message) -> Iterable[Output]:
        origin = origin_of(message)
        self._state.append(Output(topic=self._changelog, partition=origin.partition,
                                  key=f"seen|{origin.offset}".encode(), value=SEEN_VALUE))
        return (Output(topic=self._target, key=message.key(), value=message.value()),)

    def end_batch(self) -> Iterable[Output]:
        state, self._state = self._state, []
        return state

    def abort_batch(self) -> None:
        self._state = []


# The size of a changelog value for a seen event id.
SEEN_VALUE = b'{"event_time":"2026-11-22T10:32:27.993000+00:00","fingerprint":"' + b"0" * 64 + b'"}'


def time_pass_through(lane: Lane, expected_records: int, limit_s: float,
                      stages: Sequence[Stage] | None = None) -> Timing:
    """The same loop, clients, batch size and timeout as the processor; a trivial stage."""
    processor = lane.settings.processor
    topics = lane.settings.topics
    stop = threading.Event()
    producer = transactional_producer(lane.connections, f"{processor.group_id}-passthrough-0",
                                      processor.transaction_timeout_ms)
    consumer = processing_consumer(lane.connections, processor.group_id)
    loop = ExactlyOnceLoop(consumer, producer,
                           stages or [PassThroughStage(topics.events.name,
                                                       topics.by_account.name)],
                           processor.batch_size, processor.batch_timeout_s)
    clock = LoopClock(expected_records, stop, limit_s,
                      broker_cpu=broker_cpu_reader(lane.connections))
    clock.start()
    try:
        loop.run(should_stop=stop.is_set)
    finally:
        timing = clock.result()
    return timing


def time_processor(lane: Lane, stages: Sequence[str], expected_records: int,
                   limit_s: float) -> Timing:
    """run_processor in this thread until ``expected_records`` input records are committed."""
    stop = threading.Event()
    clock = LoopClock(expected_records, stop, limit_s,
                      broker_cpu=broker_cpu_reader(lane.connections))
    clock.start()
    try:
        run_processor(lane.settings, lane.connections,
                      RunOptions(stages=stages, instance_id="bench"), stop=stop)
    finally:
        timing = clock.result()
    return timing


def _result(contender: str, lane: Lane, timing: Timing, events: int, records_per_event: float,
            expected_outputs: dict[str, int], rated_records: bool = True) -> Result:
    # The loop commits records of every topic it reads; the rate is in input events.
    processed = events if timing.complete else int(timing.committed / records_per_event)
    outputs, twice = read_outputs(lane, list(expected_outputs), rated_records)
    return Result(contender=contender, events=events, seconds=timing.seconds,
                  complete=timing.complete, processed=processed, outputs=outputs,
                  expected_outputs=expected_outputs, rated_twice=twice,
                  extra={"batches": timing.batches, "records_committed": timing.committed,
                         "in_batches_s": round(timing.in_batches_s, 3),
                         # this process (all its threads), and the local broker
                         "cpu_us_per_event": _us_per_event(timing.cpu_s, timing,
                                                           records_per_event),
                         "broker_cpu_us_per_event": _us_per_event(timing.broker_cpu_s, timing,
                                                                  records_per_event)})


def _us_per_event(cpu_s: float | None, timing: Timing,
                  records_per_event: float) -> float | None:
    """CPU µs per input event, from the first commit to the last (None: not measured)."""
    if timing.cpu_records <= 0 or cpu_s is None:
        return None
    return round(cpu_s / (timing.cpu_records / records_per_event) * 1e6, 1)


def rater_outputs(expected: Expected) -> dict[str, int]:
    """role -> records the rater writes for this input (``dlq``: the router's too)."""
    return {"rated": expected.rated, "rejected": expected.quota_rejected,
            "quota_alerts": expected.alerts, "late": expected.late,
            "dlq": expected.dead_letters}


def pass_through(lane: Lane, expected: Expected, limit_s: float) -> Result:
    timing = time_pass_through(lane, expected.events, limit_s)
    return _result("pass-through", lane, timing, expected.events, 1.0,
                   {"by_account": expected.events})


def avro_pass_through(lane: Lane, expected: Expected, codecs: Codecs, limit_s: float) -> Result:
    """Pass-through that decodes and re-encodes every event with fastavro. The input holds
    no undecodable record (the workload's bad events are valid Avro)."""
    topics = lane.settings.topics
    stage = AvroPassThroughStage(topics.events.name, topics.by_account.name, codecs)
    timing = time_pass_through(lane, expected.events, limit_s, [stage])
    return _result("Avro pass-through", lane, timing, expected.events, 1.0,
                   {"by_account": expected.events})


def two_hop_pass_through(lane: Lane, expected: Expected, limit_s: float) -> Result:
    """The Kafka work of rating without the rating: events -> by-account -> rated, plus one
    changelog record per record, in one loop and one transaction per batch."""
    topics = lane.settings.topics
    stages: list[Stage] = [
        PassThroughStage(topics.events.name, topics.by_account.name),
        SecondHopStage(topics.by_account.name, topics.rated.name, topics.changelog.name)]
    timing = time_pass_through(lane, 2 * expected.events, limit_s, stages)
    return _result("two-hop pass-through", lane, timing, expected.events, 2.0,
                   {"by_account": expected.events, "rated": expected.events},
                   rated_records=False)


def rating(lane: Lane, expected: Expected, limit_s: float) -> Result:
    """Router and rater in one loop, as `rating process` runs by default."""
    records = expected.events + expected.routed  # the loop reads both topics
    timing = time_processor(lane, ("router", "rater"), records, limit_s)
    return _result("rating (router+rater)", lane, timing, expected.events,
                   records / expected.events,
                   {"by_account": expected.routed, **rater_outputs(expected)})


def router_only(lane: Lane, expected: Expected, limit_s: float) -> Result:
    timing = time_processor(lane, ("router",), expected.events, limit_s)
    return _result("router only", lane, timing, expected.events, 1.0,
                   {"by_account": expected.routed, "dlq": expected.router_dead_letters})


def rater_only(lane: Lane, expected: Expected, limit_s: float) -> Result:
    """The rater alone, on the account-keyed topic that ``router_only`` filled on this lane."""
    timing = time_processor(lane.with_group("rater"), ("rater",), expected.routed, limit_s)
    return _result("rater only", lane, timing, expected.routed, 1.0,
                   rater_outputs(expected))
