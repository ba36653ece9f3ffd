"""The subscription stage, driven by stream/loop.py like the router and the rater.

licence.events (keyed by campus) -> the partition's licence state
  licence change       -> state (licences held, since when, from a transfer or not)
                          | usage.dlq (undecodable, unknown campus or product, conflicts)
  billing-run request  -> one RatedUsage per covered, unpaid licence -> usage.rated
                          licences the engine cannot price -> usage.dlq (request bytes)
                          one run report (JSON) -> licence.runs
  state changes (licences, paid marks) -> licence.changelog

All of it, with the consumed offsets, is one Kafka transaction per batch, so a
billing run is billed exactly once per partition whatever crashes: its
charges, the paid marks that stop a re-run from billing them again, and the
report saying it is done become visible together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from confluent_kafka import Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from processors.catalog import Catalog
from processors.errors import EventRejected, ReasonCode
from processors.events import RatedUsage
from processors.licences.billing import run_billing
from processors.licences.changes import Applied, apply_licence_event
from processors.licences.model import BillingRunRequest, LicenceEvent
from processors.licences.state import SubscriptionState
from stream import metrics
from stream.clients import admin_client, reading_consumer, registry_client
from stream.codec import rated_to_avro
from stream.contracts import Codecs
from stream.dead_letters import dead_letter
from stream.licence_codec import SCHEMA_FILE, subscription_from_avro
from stream.messages import Output, origin_of
from stream.run_reports import RunReport
from stream.serde import AvroDecoder, SerdeError, register
from stream.settings import Connections, Topics
from stream.state_store import UNDECIDED_TIMEOUT_S, ChangelogStore, log_ends_of, partitions_of

STAGE = "subscriptions"


def subscription_decoder(client: SchemaRegistryClient, topics: Topics) -> AvroDecoder:
    """The subscriptions topic's decoder, its schema registered (BACKWARD) on the way."""
    decoder = AvroDecoder(client, SCHEMA_FILE)
    decoder.remember(register(client, topics.subscriptions.name, SCHEMA_FILE), SCHEMA_FILE)
    return decoder


class SubscriptionStage:
    name = STAGE

    def __init__(self, codecs: Codecs, decoder: AvroDecoder, topics: Topics,
                 catalog: Callable[[], Catalog], store: ChangelogStore[SubscriptionState],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._codecs = codecs
        self._decoder = decoder
        self._topics = topics
        self._catalog = catalog
        self._store = store
        self._clock = clock

    @property
    def topics(self) -> Sequence[str]:
        return [self._topics.subscriptions.name]

    def process(self, message: Message) -> Iterable[Output]:
        metrics.labelled(metrics.EVENTS_CONSUMED, self.name).inc()
        try:
            record = subscription_from_avro(self._decoder.decode(message.value()))
        except SerdeError as exc:
            return [self._reject(message, EventRejected(ReasonCode.UNDECODABLE, str(exc)),
                                 None)]
        except EventRejected as rejection:
            return [self._reject(message, rejection, None)]
        state = self._store.state(origin_of(message).partition)
        if isinstance(record, BillingRunRequest):
            return self._bill(message, record, state)
        return self._apply(message, record, state)

    def _apply(self, message: Message, event: LicenceEvent,
               state: SubscriptionState) -> list[Output]:
        try:
            applied = apply_licence_event(event, self._catalog().licences, state)
        except EventRejected as rejection:
            return [self._reject(message, rejection, event.event_id)]
        if applied is Applied.DUPLICATE:
            metrics.EVENTS_SKIPPED.labels(reason="duplicate").inc()
        return []

    def _bill(self, message: Message, request: BillingRunRequest,
              state: SubscriptionState) -> list[Output]:
        origin = origin_of(message)
        catalog = self._catalog()
        try:
            outcome = run_billing(request, catalog, state, origin, self._clock())
        except EventRejected as rejection:
            report = RunReport.refused(request, origin, catalog.version, rejection.message,
                                       self._clock())
            return [self._reject(message, rejection, request.request_id), self._report(report)]
        outputs = [self._rated(record) for record in outcome.charges]
        outputs += [self._reject(message, failure.rejection, failure.event_id)
                    for failure in outcome.failures]
        outputs.append(self._report(RunReport.of(request, origin, catalog.version, outcome,
                                                 self._clock())))
        return outputs

    def _rated(self, rated: RatedUsage) -> Output:
        metrics.labelled(metrics.EVENTS_RATED, rated.currency).inc()
        metrics.labelled(metrics.AMOUNT_RATED, "net", rated.currency, "-").inc(
            float(rated.net_amount))
        metrics.labelled(metrics.AMOUNT_RATED, "gross", rated.currency, "-").inc(
            float(rated.gross_amount))
        return Output(topic=self._topics.rated.name, key=rated.account_id.encode(),
                      value=self._codecs.rated_encoder.encode(rated_to_avro(rated)))

    def _report(self, report: RunReport) -> Output:
        return Output(topic=self._topics.licence_runs.name, key=report.request_id.encode(),
                      value=report.encode())

    def _reject(self, message: Message, rejection: EventRejected,
                event_id: str | None) -> Output:
        return dead_letter(self._codecs.dead_letter_encoder, self._topics.dlq.name,
                           stage=self.name, message=message, reason=str(rejection.reason),
                           text=rejection.message, event_id=event_id, now=self._clock(),
                           details=rejection.details)

    def end_batch(self) -> Iterable[Output]:
        return self._store.changelog_records()

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.restore(partitions_of(partitions))

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        self._store.drop(partitions_of(partitions))

    def abort_batch(self) -> None:
        self._store.reset()

    def close(self) -> None:
        self._store.close()


def build_subscription_stage(codecs: Codecs, connections: Connections, topics: Topics,
                             catalog: Callable[[], Catalog],
                             undecided_s: float = UNDECIDED_TIMEOUT_S) -> SubscriptionStage:
    """The stage with its changelog store (licence.changelog) and decoder, for `rating process`."""
    store = ChangelogStore(reading_consumer(connections), topics.subscriptions_changelog.name,
                           SubscriptionState, log_ends_of(admin_client(connections)),
                           undecided_s)
    return SubscriptionStage(codecs, subscription_decoder(registry_client(connections), topics),
                             topics, catalog, store)
