"""The in-process contenders: pass-through, the rating pipeline, and its two stages apart.

Each runs in this process on its own lane, timed by bench.clock.LoopClock.
The rating contenders call stream.processor.run_processor exactly as
`rating process` does; only the stop event comes from the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from confluent_kafka import Message

from bench.clock import LoopClock, Timing
from bench.lanes import Lane
from bench.outputs import read_outputs
from bench.results import Result
from bench.workload import Expected
from stream.clients import processing_consumer, transactional_producer
from stream.loop import ExactlyOnceLoop, Output, StatelessStage
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


def time_pass_through(lane: Lane, expected_records: int, limit_s: float) -> Timing:
    """The same loop, clients, batch size and timeout as the processor; a trivial stage."""
    processor = lane.settings.processor
    topics = lane.settings.topics
    stop = threading.Event()
    producer = transactional_producer(lane.connections, f"{processor.group_id}-passthrough-0",
                                      processor.transaction_timeout_ms)
    consumer = processing_consumer(lane.connections, processor.group_id)
    loop = ExactlyOnceLoop(consumer, producer,
                           [PassThroughStage(topics.events.name, topics.by_account.name)],
                           processor.batch_size, processor.batch_timeout_s)
    clock = LoopClock(expected_records, stop, limit_s)
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
    clock = LoopClock(expected_records, stop, limit_s)
    clock.start()
    try:
        run_processor(lane.settings, lane.connections,
                      RunOptions(stages=stages, instance_id="bench"), stop=stop)
    finally:
        timing = clock.result()
    return timing


def _result(contender: str, lane: Lane, timing: Timing, events: int, records_per_event: float,
            expected_outputs: dict[str, int]) -> Result:
    # The loop commits records of every topic it reads; the rate is in input events.
    processed = events if timing.complete else int(timing.committed / records_per_event)
    outputs, twice = read_outputs(lane, list(expected_outputs))
    return Result(contender=contender, events=events, seconds=timing.seconds,
                  complete=timing.complete, processed=processed, outputs=outputs,
                  expected_outputs=expected_outputs, rated_twice=twice,
                  extra={"batches": timing.batches, "records_committed": timing.committed,
                         "in_batches_s": round(timing.in_batches_s, 3)})


def rater_outputs(expected: Expected) -> dict[str, int]:
    """role -> records the rater writes for this input (``dlq``: the router's too)."""
    return {"rated": expected.rated, "rejected": expected.quota_rejected,
            "quota_alerts": expected.alerts, "late": expected.late,
            "dlq": expected.dead_letters}


def pass_through(lane: Lane, expected: Expected, limit_s: float) -> Result:
    timing = time_pass_through(lane, expected.events, limit_s)
    return _result("pass-through", lane, timing, expected.events, 1.0,
                   {"by_account": expected.events})


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
