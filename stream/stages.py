"""The pipeline's two stages, as driven by stream/loop.py.

router: usage.events -> decode, validate, resolve the account, re-key by account
        -> usage.by-account (the original bytes, unchanged) | usage.dlq
rater:  usage.by-account -> rate with the current catalog and the partition's
        state -> usage.rated | usage.dlq, plus changelog records for the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from confluent_kafka import Message, TopicPartition

from processors.accounts import resolve_account
from processors.catalog import Catalog
from processors.catalog.model import MissingPolicy
from processors.errors import EventRejected, ReasonCode
from processors.events import RatedUsage, UsageEvent
from processors.pipeline import process_event
from processors.quota import QuotaAlert
from stream import metrics
from stream.codec import alert_to_avro, event_from_avro, rated_to_avro
from stream.contracts import Codecs
from stream.dead_letters import dead_letter
from stream.loop import Output, StatelessStage
from stream.messages import origin_of
from stream.serde import SerdeError
from stream.settings import Topics
from stream.state_store import ChangelogStateStore, partitions_of

ACCOUNT_HEADER = "rating-account"


class _DecodingStage(StatelessStage):
    name = "stage"

    def __init__(self, codecs: Codecs, topics: Topics, clock: Callable[[], datetime]):
        self._codecs = codecs
        self._topics = topics
        self._clock = clock

    def _decode(self, message: Message) -> UsageEvent:
        try:
            record = self._codecs.event_decoder.decode(message.value())
        except SerdeError as exc:
            raise EventRejected(ReasonCode.UNDECODABLE, str(exc)) from None
        return event_from_avro(record)

    def _reject(self, message: Message, rejection: EventRejected,
                event: UsageEvent | None) -> Output:
        return dead_letter(self._codecs.dead_letter_encoder, self._topics.dlq.name,
                           stage=self.name, message=message, reason=str(rejection.reason),
                           text=rejection.message,
                           event_id=event.event_id if event else None, now=self._clock(),
                           details=rejection.details)


class RouterStage(_DecodingStage):
    name = "router"

    def __init__(self, codecs: Codecs, topics: Topics, catalog: Callable[[], Catalog],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        super().__init__(codecs, topics, clock)
        self._catalog = catalog

    @property
    def topics(self) -> Sequence[str]:
        return [self._topics.events.name]

    def process(self, message: Message) -> Iterable[Output]:
        metrics.labelled(metrics.EVENTS_CONSUMED, self.name).inc()
        event = None
        try:
            event = self._decode(message)
            account = resolve_account(event, self._catalog())
        except EventRejected as rejection:
            return [self._reject(message, rejection, event)]
        metrics.EVENTS_ROUTED.inc()
        # The original bytes go on unchanged: the rater decodes with the same schema id.
        return [Output(topic=self._topics.by_account.name, key=account.account_id.encode(),
                       value=message.value(),
                       headers=[(ACCOUNT_HEADER, account.account_id.encode())])]


class RaterStage(_DecodingStage):
    name = "rater"

    def __init__(self, codecs: Codecs, topics: Topics, catalog: Callable[[], Catalog],
                 store: ChangelogStateStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 no_agreement: MissingPolicy = MissingPolicy.ALLOW):
        super().__init__(codecs, topics, clock)
        self._catalog = catalog
        self._store = store
        self._no_agreement = no_agreement

    @property
    def topics(self) -> Sequence[str]:
        return [self._topics.by_account.name]

    def process(self, message: Message) -> Iterable[Output]:
        metrics.labelled(metrics.EVENTS_CONSUMED, self.name).inc()
        event = None
        try:
            event = self._decode(message)
            origin = origin_of(message)
            state = self._store.state(origin.partition)
            if state.is_late(event.event_time):
                return [self._park_late(message, event)]
            outcome = process_event(event, origin, self._catalog(), state, self._clock(),
                                    self._no_agreement)
        except EventRejected as rejection:
            return [self._reject(message, rejection, event)]
        outputs = [self._alert(alert) for alert in outcome.alerts]
        if outcome.quota_rejection is not None:
            outputs.append(self._quota_rejected(message, outcome.quota_rejection, event))
        elif outcome.rated is not None:
            outputs.append(self._rated(outcome.rated))
        else:
            metrics.EVENTS_SKIPPED.labels(reason=str(outcome.skipped)).inc()
        return outputs

    def _rated(self, rated: RatedUsage) -> Output:
        event = rated.event
        metrics.labelled(metrics.EVENTS_RATED, rated.currency).inc()
        metrics.END_TO_END_SECONDS.observe(
            max(0.0, (self._clock() - event.event_time).total_seconds()))
        provider = rated.event.provider or "-"
        # Label order: kind, currency, provider.
        metrics.labelled(metrics.AMOUNT_RATED, "net", rated.currency, provider).inc(
            float(rated.net_amount))
        metrics.labelled(metrics.AMOUNT_RATED, "gross", rated.currency, provider).inc(
            float(rated.gross_amount))
        return Output(topic=self._topics.rated.name, key=rated.account_id.encode(),
                      value=self._codecs.rated_encoder.encode(rated_to_avro(rated)))

    def _alert(self, alert: QuotaAlert) -> Output:
        metrics.QUOTA_ALERTS.labels(threshold=str(alert.threshold_percent),
                                    action=alert.action).inc()
        return Output(topic=self._topics.quota_alerts.name, key=alert.account_id.encode(),
                      value=self._codecs.alert_encoder.encode(alert_to_avro(alert)))

    def _quota_rejected(self, message: Message, rejection: EventRejected,
                        event: UsageEvent) -> Output:
        """Blocked by the agreement: to usage.rejected for the platform, never billed."""
        return dead_letter(self._codecs.rejected_encoder, self._topics.rejected.name,
                           stage="quota", message=message, reason=str(rejection.reason),
                           text=rejection.message, event_id=event.event_id, now=self._clock(),
                           details=rejection.details)

    def _park_late(self, message: Message, event: UsageEvent) -> Output:
        """Older than the dedup window: rating it could double-bill, so park it for review."""
        return dead_letter(self._codecs.late_encoder, self._topics.late.name, stage=self.name,
                           message=message, reason=str(ReasonCode.LATE),
                           text=f"event {event.event_id} at {event.event_time.isoformat()} is "
                                "older than the duplicate-detection window",
                           event_id=event.event_id, now=self._clock(),
                           details={"event_time": event.event_time.isoformat()})

    def end_batch(self) -> Iterable[Output]:
        return self._store.changelog_records()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.restore(partitions_of(partitions))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.drop(partitions_of(partitions))

    def abort_batch(self) -> None:
        self._store.reset()
