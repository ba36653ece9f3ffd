"""RouterPacer: the router's input paused while the rater of the process lags."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from stream.pacing import STALLED_BATCHES, RouterPacer

EVENTS, BY_ACCOUNT = "usage.events", "usage.by-account"
INVALID = -1001


class FakeConsumer:
    """Positions, cached high watermarks and committed offsets as the test sets them;
    pause and resume calls are logged."""

    def __init__(self, partitions: int = 2) -> None:
        self.assigned = [TopicPartition(topic, p) for topic in (EVENTS, BY_ACCOUNT)
                         for p in range(partitions)]
        self.positions: dict[tuple[str, int], int] = {}
        self.highs: dict[tuple[str, int], int] = {}
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []
        self.committed_lookups = 0

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition,
                               self.positions.get((tp.topic, tp.partition), INVALID))
                for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached  # never a broker round trip on the loop thread
        return INVALID, self.highs.get((tp.topic, tp.partition), INVALID)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
        self.committed_lookups += 1
        return [TopicPartition(tp.topic, tp.partition,
                               self.committed_offsets.get((tp.topic, tp.partition), INVALID))
                for tp in partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", sorted((tp.topic, tp.partition) for tp in partitions)))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", sorted((tp.topic, tp.partition) for tp in partitions)))

    def rater_at(self, position: int, high: int) -> None:
        """Both by-account partitions at ``position``, ``high`` records written."""
        for p in (0, 1):
            self.positions[BY_ACCOUNT, p] = position
            self.highs[BY_ACCOUNT, p] = high


ROUTER = [(EVENTS, 0), (EVENTS, 1)]
# On a new assignment the pacer first makes the client's pause state its own.
START = ("resume", ROUTER)


def _pacer(consumer: FakeConsumer) -> RouterPacer:
    return RouterPacer(consumer, EVENTS, BY_ACCOUNT, pause_above=1000,  # type: ignore[arg-type]
                       resume_below=200)


def test_the_router_pauses_above_the_lag_and_resumes_below_the_lower_one() -> None:
    consumer = FakeConsumer()
    pacer = _pacer(consumer)
    consumer.rater_at(100, 500)  # lag 2 x 400
    pacer.adjust()
    assert consumer.calls == [START]
    assert not pacer.paused
    consumer.rater_at(100, 700)  # lag 2 x 600: above 1000
    pacer.adjust()
    assert consumer.calls == [START, ("pause", ROUTER)]
    assert pacer.paused
    consumer.rater_at(300, 700)  # 800: between the two figures, still paused
    pacer.adjust()
    consumer.rater_at(550, 700)  # 300
    pacer.adjust()
    assert consumer.calls == [START, ("pause", ROUTER)]
    assert pacer.paused
    consumer.rater_at(650, 700)  # 100: resume
    pacer.adjust()
    assert consumer.calls == [START, ("pause", ROUTER), ("resume", ROUTER)]
    assert not pacer.paused
    assert pacer.pauses == 1


def test_a_rater_that_no_longer_moves_never_keeps_the_router_paused() -> None:
    # Aborted records and commit markers count in the lag and are never consumed.
    consumer = FakeConsumer()
    pacer = _pacer(consumer)
    consumer.rater_at(100, 1000)
    pacer.adjust()
    assert consumer.calls == [("pause", ROUTER)]
    consumer.rater_at(400, 1000)
    for _ in range(STALLED_BATCHES):
        pacer.adjust()
    assert pacer.paused  # it moved once, then stalled: not yet
    pacer.adjust()
    assert consumer.calls == [("pause", ROUTER), ("resume", ROUTER)]
    assert not pacer.paused
    pacer.adjust()  # still lagging, but not moving: left running
    assert consumer.calls[-1] == ("resume", ROUTER)
    assert not pacer.paused
    consumer.rater_at(450, 1000)
    pacer.adjust()  # it moves again, and still lags: paused again
    assert consumer.calls[-1] == ("pause", ROUTER)
    assert pacer.pauses == 2


def test_a_partition_not_consumed_yet_lags_from_its_committed_offset_or_from_0() -> None:
    consumer = FakeConsumer()
    pacer = _pacer(consumer)
    consumer.highs[BY_ACCOUNT, 0] = 900  # no position: committed 500 -> 400 behind
    consumer.committed_offsets[BY_ACCOUNT, 0] = 500
    consumer.highs[BY_ACCOUNT, 1] = 300  # no position, nothing committed -> 300
    pacer.adjust()
    assert consumer.calls == [START]
    consumer.highs[BY_ACCOUNT, 1] = 700  # 400 + 700
    pacer.adjust()
    assert consumer.calls == [START, ("pause", ROUTER)]
    assert consumer.committed_lookups == 1  # once per assignment


def test_nothing_fetched_yet_is_no_lag_and_a_process_without_the_router_is_left_alone() -> None:
    consumer = FakeConsumer()
    pacer = _pacer(consumer)
    pacer.adjust()  # no watermark known for any partition
    assert consumer.calls == [START]
    consumer.assigned = [tp for tp in consumer.assigned if tp.topic == BY_ACCOUNT]
    consumer.rater_at(0, 5000)
    pacer.adjust()
    assert consumer.calls == [START]
    assert not pacer.paused


def test_after_a_rebalance_the_pause_is_said_again_whatever_the_client_kept() -> None:
    consumer = FakeConsumer()
    pacer = _pacer(consumer)
    consumer.rater_at(0, 1500)
    pacer.adjust()
    consumer.assigned = [tp for tp in consumer.assigned if tp.partition == 0]
    pacer.adjust()  # still lagging, fewer router partitions: paused again
    assert consumer.calls == [("pause", ROUTER), ("pause", ROUTER[:1])]
    consumer.assigned = FakeConsumer().assigned
    consumer.rater_at(1400, 1500)  # caught up
    pacer.adjust()
    assert consumer.calls[-1] == ("resume", ROUTER)
    assert not pacer.paused
    consumer.assigned = [tp for tp in consumer.assigned if tp.partition == 1]
    pacer.adjust()  # not paused by us: resumed, in case the client kept a pause
    assert consumer.calls[-1] == ("resume", [(EVENTS, 1)])
