"""The pipeline's two stages, as driven by stream/loop.py.

router: usage.events -> decode, validate, resolve the account, re-key by account
        -> usage.by-account (the original bytes, unchanged) | usage.dlq
rater:  usage.by-account -> rate with the current catalog and the partition's
        state -> usage.rated | usage.dlq, plus changelog records for the state.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from confluent_kafka import Message, TopicPartition
from prometheus_client import Counter, Histogram

from processors.catalog import Catalog
from processors.catalog.model import MissingPolicy
from processors.errors import EventRejected, ReasonCode
from processors.events import RatedUsage, UsageEvent
from processors.lookups import account_of
from processors.money import ZERO
from processors.pipeline import process_event
from processors.quota import QuotaAlert
from processors.quota.model import UnknownInstances
from stream import metrics
from stream.codec import (
    EVENT_ID_DETAIL,
    alert_to_avro,
    rated_to_bytes,
    read_event,
    rejection_to_bytes,
)
from stream.contracts import Codecs
from stream.dead_letters import dead_letter
from stream.loop import StatelessStage
from stream.messages import Output, origin_of
from stream.settings import Topics
from stream.state_store import RaterStateStore, partitions_of

log = logging.getLogger(__name__)
HANDOFF_LIMIT = 10_000  # decoded events held for the rater: about 15 MB at most


class _Tally:
    """Counter increments of one batch, added to Prometheus once per batch.

    A labelled ``inc()`` takes a lock and costs about as much as a small step
    of rating; several per event were a visible share of the per-event cost.
    Stages flush in ``end_batch`` and ``abort_batch``, so a scrape sees a
    batch's counts once it is done, committed or not (as before). The rater's
    amounts are tallied apart (``_RatedTally``).
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
        self._fixed: list[_Count] = []

    def fixed(self, metric: Counter, *labels: str) -> _Count:
        """A count with labels known in advance, for the ones every record makes: its
        ``n += 1`` costs a tenth of ``count`` (no key to build, hash and look up)."""
        count = _Count(metric, labels)
        self._fixed.append(count)
        return count

    def count(self, metric: Counter, *labels: str) -> None:
        key = (metric, labels)
        self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self) -> None:
        for fixed in self._fixed:
            if fixed.n:
                _increase(fixed.metric, fixed.labels, fixed.n)
                fixed.n = 0
        for (metric, labels), count in self._counts.items():
            _increase(metric, labels, count)
        self._counts.clear()


def _increase(metric: Counter, labels: tuple[str, ...], amount: float) -> None:
    (metrics.labelled(metric, *labels) if labels else metric).inc(amount)


class _RatedTally:
    """What the rater counts per rated record, tallied per batch like ``_Tally``, under
    one key (currency, provider) instead of three: ``rating_events_rated_total{currency}``
    and ``rating_amount_rated_total{kind, currency, provider}`` for net and gross."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], _RatedSums] = {}

    def add(self, currency: str, provider: str, net: Decimal, gross: Decimal) -> None:
        key = (currency, provider)
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = _RatedSums()
        sums.count += 1
        sums.net += net
        sums.gross += gross

    def flush(self) -> None:
        for (currency, provider), sums in self._sums.items():
            metrics.labelled(metrics.EVENTS_RATED, currency).inc(sums.count)
            # Label order: kind, currency, provider.
            metrics.labelled(metrics.AMOUNT_RATED, "net", currency, provider).inc(
                float(sums.net))
            metrics.labelled(metrics.AMOUNT_RATED, "gross", currency, provider).inc(
                float(sums.gross))
        self._sums.clear()


class _RatedSums:
    def __init__(self) -> None:
        self.count = 0
        self.net = ZERO
        self.gross = ZERO


class _Count:
    """The increments of one labelled counter in the current batch (``_Tally.fixed``)."""

    def __init__(self, metric: Counter, labels: tuple[str, ...]) -> None:
        self.metric = metric
        self.labels = labels
        self.n = 0


class _HistogramTally:
    """Observations of one batch, added to a Prometheus histogram once per batch.

    ``Histogram.observe`` is interpreted prometheus-client code that takes two locks per
    value (about 4% of the rater when called per rated event). Here a value costs a
    bisect and two additions in compiled code, and ``flush`` adds each bucket's count
    once: the exposition is the same as observing each value (a test compares them).
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        # The same buckets as observe(): the first upper bound >= the value (+Inf last).
        self._bounds: list[float] = list(histogram._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._total += value

    def flush(self) -> None:
        if not any(self._counts):
            return
        buckets = self._histogram._buckets
        for index, count in enumerate(self._counts):
            if count:
                buckets[index].inc(count)
                self._counts[index] = 0
        self._histogram._sum.inc(self._total)
        self._total = 0.0


class DecodedEvents:
    """The events a router decoded, kept for the rater of the same process.

    When one process runs both stages, every event is decoded twice: by the router,
    and by the rater when the same bytes come back from ``usage.by-account`` (a
    tenth of the rater's work). The router leaves its event here under the record's
    bytes, and the rater takes it instead of decoding those bytes again: equal bytes
    (schema id included) decode to equal events. Nothing depends on finding one: an
    event whose partition another process rates is never taken, and the oldest
    entries are dropped past ``limit`` (two generations of ``limit // 2``), so the
    rater decodes what it does not find, as it would without this.
    """

    def __init__(self, limit: int = HANDOFF_LIMIT) -> None:
        self._generation = max(1, limit // 2)
        self._recent: dict[bytes, UsageEvent] = {}
        self._older: dict[bytes, UsageEvent] = {}
        self.taken = 0
        self.missed = 0

    def put(self, value: bytes, event: UsageEvent) -> None:
        if len(self._recent) >= self._generation:
            self._older = self._recent
            self._recent = {}
        self._recent[value] = event

    def take(self, value: bytes) -> UsageEvent | None:
        event = self._recent.pop(value, None)
        if event is None:
            event = self._older.pop(value, None)
            if event is None:
                self.missed += 1
                return None
        self.taken += 1
        return event

    def __len__(self) -> int:
        return len(self._recent) + len(self._older)


class _DecodingStage(StatelessStage):
    name = "stage"

    def __init__(self, codecs: Codecs, topics: Topics, clock: Callable[[], datetime]):
        self._codecs = codecs
        self._topics = topics
        self._clock = clock
        self._tally = _Tally()
        self._consumed = self._tally.fixed(metrics.EVENTS_CONSUMED, self.name)

    def end_batch(self) -> Iterable[Output]:
        self._tally.flush()
        return ()

    def abort_batch(self) -> None:
        self._tally.flush()

    def _decode(self, message: Message) -> UsageEvent:
        return read_event(self._codecs.event_decoder, message.value())

    def _reject(self, message: Message, rejection: EventRejected,
                event: UsageEvent | None) -> Output:
        return dead_letter(self._codecs.dead_letter_encoder, self._topics.dlq.name,
                           stage=self.name, message=message, reason=str(rejection.reason),
                           text=rejection.message,
                           event_id=(event.event_id if event is not None
                                     else rejection.details.get(EVENT_ID_DETAIL)),
                           now=self._clock(), details=rejection.details)


class RouterStage(_DecodingStage):
    name = "router"

    def __init__(self, codecs: Codecs, topics: Topics, catalog: Callable[[], Catalog],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 handoff: DecodedEvents | None = None):
        super().__init__(codecs, topics, clock)
        self._catalog = catalog
        self._handoff = handoff
        self._routed = self._tally.fixed(metrics.EVENTS_ROUTED)

    @property
    def topics(self) -> Sequence[str]:
        return [self._topics.events.name]

    def process(self, message: Message) -> Iterable[Output]:
        self._consumed.n += 1
        event = None
        try:
            event = self._decode(message)
            account = account_of(event, self._catalog())
        except EventRejected as rejection:
            return [self._reject(message, rejection, event)]
        self._routed.n += 1
        # The original bytes go on unchanged: the rater decodes with the same schema id.
        value = message.value()
        if self._handoff is not None and value is not None:
            self._handoff.put(value, event)
        return [Output(topic=self._topics.by_account.name, key=account.account_id.encode(),
                       value=value)]


class RaterStage(_DecodingStage):
    name = "rater"

    def __init__(self, codecs: Codecs, topics: Topics, catalog: Callable[[], Catalog],
                 store: RaterStateStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 no_agreement: MissingPolicy = MissingPolicy.ALLOW,
                 handoff: DecodedEvents | None = None,
                 unknown_instances: UnknownInstances = UnknownInstances.REJECT):
        super().__init__(codecs, topics, clock)
        self._catalog = catalog
        self._store = store
        self._handoff = handoff
        self._no_agreement = no_agreement
        self._unknown_instances = unknown_instances
        self._blocked: dict[str, int] = {}  # quota rejections of the batch, by reason
        self._end_to_end = _HistogramTally(metrics.END_TO_END_SECONDS)
        self._rated_sums = _RatedTally()

    @property
    def topics(self) -> Sequence[str]:
        return [self._topics.by_account.name]

    def process(self, message: Message) -> Iterable[Output]:
        self._consumed.n += 1
        event = None
        try:
            event = self._routed_event(message)
            origin = origin_of(message)
            state = self._store.state(origin.partition)
            if state.is_late(event.event_time):
                return [self._park_late(message, event)]
            # The key is the account the router chose: it pays (paying_account).
            key = message.key()
            outcome = process_event(event, origin, self._catalog(), state, self._clock(),
                                    self._no_agreement, None if key is None else key.decode(),
                                    self._unknown_instances)
        except EventRejected as rejection:
            return [self._reject(message, rejection, event)]
        outputs = [self._alert(alert) for alert in outcome.alerts] if outcome.alerts else []
        if outcome.quota_rejection is not None:
            outputs.append(self._quota_rejected(message, outcome.quota_rejection, event))
        elif outcome.rated is not None:
            outputs.append(self._rated(outcome.rated))
        else:
            self._tally.count(metrics.EVENTS_SKIPPED, str(outcome.skipped))
        return outputs

    def _routed_event(self, message: Message) -> UsageEvent:
        """The event the router of this process decoded from these bytes, if it is still
        held; else decoded here."""
        if self._handoff is not None:
            value = message.value()
            if value is not None:
                event = self._handoff.take(value)
                if event is not None:
                    return event
        return self._decode(message)

    def _rated(self, rated: RatedUsage) -> Output:
        event = rated.event
        self._end_to_end.observe(max(0.0, (self._clock() - event.event_time).total_seconds()))
        self._rated_sums.add(rated.currency, event.provider or "-", rated.net_amount,
                             rated.gross_amount)
        return Output(topic=self._topics.rated.name, key=rated.account_id.encode(),
                      value=rated_to_bytes(self._codecs.rated_encoder, rated))

    def _alert(self, alert: QuotaAlert) -> Output:
        metrics.QUOTA_ALERTS.labels(threshold=str(alert.threshold_percent),
                                    action=alert.action).inc()
        return Output(topic=self._topics.quota_alerts.name, key=alert.account_id.encode(),
                      value=self._codecs.alert_encoder.encode(alert_to_avro(alert)))

    def _quota_rejected(self, message: Message, rejection: EventRejected,
                        event: UsageEvent) -> Output:
        """Blocked by the agreement: to usage.rejected for the platform, never billed.

        The same record as ``dead_letter`` writes, but not its WARNING line per event:
        a block is an expected business outcome (one event in eight in the benchmark),
        and the line cost more than the record. One INFO line per batch counts them
        by reason; DEBUG logs each.
        """
        origin = origin_of(message)
        reason = str(rejection.reason)
        if log.isEnabledFor(logging.DEBUG):  # the fields are built only when logged
            log.debug("quota %s at %s[%d]@%d event=%s: %s", reason, origin.topic,
                      origin.partition, origin.offset, event.event_id, rejection.message,
                      extra={"event_id": event.event_id, "topic": origin.topic,
                             "partition": origin.partition, "offset": origin.offset,
                             "stage": "quota", "reason": reason})
        self._tally.count(metrics.EVENTS_DEAD_LETTERED, "quota", reason)
        self._blocked[reason] = self._blocked.get(reason, 0) + 1
        timestamp_type, timestamp_ms = message.timestamp()
        value = rejection_to_bytes(
            self._codecs.rejected_encoder, reason=reason, message=rejection.message,
            stage="quota", origin=origin, key=message.key(), value=message.value(),
            event_id=event.event_id,
            source_timestamp_ms=timestamp_ms if timestamp_type else None,
            details=rejection.details, rejected_at=self._clock())
        return Output(topic=self._topics.rejected.name, key=message.key(), value=value)

    def _log_blocked(self) -> None:
        if self._blocked:
            log.info("quota blocked %d events (to %s): %s", sum(self._blocked.values()),
                     self._topics.rejected.name,
                     ", ".join(f"{reason} {count}" for reason, count in
                               sorted(self._blocked.items())))
            self._blocked.clear()

    def _park_late(self, message: Message, event: UsageEvent) -> Output:
        """Older than the dedup window: rating it could double-bill, so park it for review."""
        return dead_letter(self._codecs.late_encoder, self._topics.late.name, stage=self.name,
                           message=message, reason=str(ReasonCode.LATE),
                           text=f"event {event.event_id} at {event.event_time.isoformat()} is "
                                "older than the duplicate-detection window",
                           event_id=event.event_id, now=self._clock(),
                           details={"event_time": event.event_time.isoformat()})

    def end_batch(self) -> Iterable[Output]:
        self._tally.flush()
        self._rated_sums.flush()
        self._end_to_end.flush()
        self._log_blocked()
        return self._store.changelog_records()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.restore(partitions_of(partitions))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.drop(partitions_of(partitions))

    def abort_batch(self) -> None:
        self._tally.flush()
        self._rated_sums.flush()
        self._end_to_end.flush()
        self._log_blocked()
        self._store.reset()
