"""The stages over a small workload, without a broker: metrics per batch, quota-block logs."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from confluent_kafka import Message
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest

from bench import offline
from stream.serde import SCHEMA_FILES, AvroDecoder
from stream.stages import DecodedEvents, _HistogramTally

FIXTURE = offline.fixture(events=600, seed=11)


def _sample(name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(sample.value for metric in REGISTRY.collect() for sample in metric.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def test_counters_add_up_per_batch_to_what_the_stages_wrote() -> None:
    topics = FIXTURE.settings.topics
    before = {"router": _sample("rating_events_consumed_total", stage="router"),
              "rater": _sample("rating_events_consumed_total", stage="rater"),
              "routed": _sample("rating_events_routed_total"),
              "rated": _sample("rating_events_rated_total", currency="USD"),
              "blocked": _sample("rating_events_dead_lettered_total", stage="quota"),
              "net": _sample("rating_amount_rated_total", kind="net", currency="USD"),
              "latencies": _sample("rating_end_to_end_seconds_count")}
    lane = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog)
    routed = offline.routed_messages(offline.run_stage(lane.router, FIXTURE.inputs),
                                     topics.by_account.name)
    outputs = offline.run_stage(lane.rater, routed)
    decoder = AvroDecoder(None, SCHEMA_FILES["rated"])  # type: ignore[arg-type]
    decoder.remember(offline.SCHEMA_IDS["rated"], SCHEMA_FILES["rated"])
    rated = [decoder.decode(o.value) for o in outputs if o.topic == topics.rated.name]
    blocked = [o for o in outputs if o.topic == topics.rejected.name]
    assert rated
    assert blocked
    assert _sample("rating_events_consumed_total", stage="router") - before["router"] == 600
    assert _sample("rating_events_consumed_total", stage="rater") - before["rater"] == len(routed)
    assert _sample("rating_events_routed_total") - before["routed"] == len(routed)
    assert _sample("rating_events_rated_total", currency="USD") - before["rated"] == len(rated)
    assert _sample("rating_events_dead_lettered_total", stage="quota") - before["blocked"] == \
        len(blocked)
    assert _sample("rating_end_to_end_seconds_count") - before["latencies"] == len(rated)
    net = _sample("rating_amount_rated_total", kind="net", currency="USD") - before["net"]
    assert net == pytest.approx(float(sum(Decimal(r["net_amount"]) for r in rated)))


def test_quota_blocks_are_logged_once_per_batch_not_once_per_event(
        caplog: pytest.LogCaptureFixture) -> None:
    topics = FIXTURE.settings.topics
    lane = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog)
    with caplog.at_level(logging.DEBUG):
        outputs = offline.run_stage(lane.rater, FIXTURE.routed)
    blocked = [o for o in outputs if o.topic == topics.rejected.name]
    summaries = [r for r in caplog.records if r.getMessage().startswith("quota blocked")]
    per_event = [r for r in caplog.records if r.getMessage().startswith("quota ")
                 and r not in summaries]
    assert blocked
    assert all(r.levelno == logging.INFO for r in summaries)
    assert sum(int(r.getMessage().split()[2]) for r in summaries) == len(blocked)
    assert len(per_event) == len(blocked)
    assert all(r.levelno == logging.DEBUG and getattr(r, "stage", None) == "quota"
               for r in per_event)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and getattr(r, "stage", None) == "quota"]


def test_the_rater_takes_the_routers_events_and_writes_what_it_writes_decoding_them() -> None:
    topics = FIXTURE.settings.topics
    apart = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog, handoff=False)
    routed = offline.run_stage(apart.router, FIXTURE.inputs)
    decoding = routed + offline.run_stage(
        apart.rater, offline.routed_messages(routed, topics.by_account.name))
    together = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog)
    handoff = together.handoff
    assert handoff is not None
    taking = offline.run_both(together, FIXTURE.inputs, topics.by_account.name)
    assert taking == decoding
    # Each distinct record is taken once; a re-published copy (the same bytes, put
    # again under the same key) finds nothing the second time and is decoded.
    distinct = len({m.value() for m in FIXTURE.routed})
    assert distinct < len(FIXTURE.routed)  # the workload re-publishes some events
    assert (handoff.taken, handoff.missed) == (distinct, len(FIXTURE.routed) - distinct)
    assert len(handoff) == 0


def test_decoded_events_are_taken_once_by_their_bytes_and_the_oldest_dropped() -> None:
    events = FIXTURE.decoded
    values = [m.value() for m in FIXTURE.routed]
    handoff = DecodedEvents(limit=4)
    for value, event in zip(values[:3], events[:3], strict=True):
        handoff.put(value, event)
    assert handoff.take(bytes(values[1])) is events[1]  # equal bytes, another object
    assert handoff.take(values[1]) is None
    assert (handoff.taken, handoff.missed) == (1, 1)
    for value, event in zip(values[3:6], events[3:6], strict=True):
        handoff.put(value, event)
    assert len(handoff) <= 4
    assert handoff.take(values[0]) is None  # two generations of two: the oldest went
    assert [handoff.take(v) for v in values[4:6]] == events[4:6]


def test_a_batch_of_observations_exposes_as_the_same_values_observed_one_by_one() -> None:
    buckets = (0.05, 0.1, 0.25, 1, 60)
    values = [0.0, 0.01, 0.05, 0.050001, 0.1, 0.2, 0.25, 0.7, 1.0, 59.9, 60.0, 61.0, 1e9]
    expositions = []
    for batched in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("latency_seconds", "test", buckets=buckets, registry=registry)
        if batched:
            tally = _HistogramTally(histogram)
            for value in values[:5]:
                tally.observe(value)
            tally.flush()
            tally.flush()  # nothing new: adds nothing
            for value in values[5:]:
                tally.observe(value)
            tally.flush()
        else:
            for value in values:
                histogram.observe(value)
        expositions.append([line for line in generate_latest(registry).decode().splitlines()
                            if "_created" not in line])
    assert expositions[0] == expositions[1]
    assert 'latency_seconds_bucket{le="0.05"} 3.0' in expositions[1]  # bounds are inclusive
    assert 'latency_seconds_bucket{le="+Inf"} 13.0' in expositions[1]


def test_the_rater_rates_for_the_account_in_the_records_key() -> None:
    # The router's key is the account that pays (processors.lookups.paying_account): a
    # record keyed by an account the rater's catalog does not have is not quietly rated
    # for the account its OU resolves to now; it is dead-lettered naming the key.
    topics = FIXTURE.settings.topics
    lane = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog, handoff=False)
    first = FIXTURE.routed[0]
    moved = Message(topic=first.topic(), partition=first.partition(), offset=first.offset(),
                    key=b"acct-gone", value=first.value(), timestamp=(1, 1_795_000_000_000))
    outputs = offline.run_stage(lane.rater, [moved, *FIXTURE.routed[1:50]])
    rejected = AvroDecoder(None, SCHEMA_FILES["rejected"])  # type: ignore[arg-type]
    rejected.remember(offline.SCHEMA_IDS["dlq"], SCHEMA_FILES["dlq"])
    dead = [rejected.decode(o.value) for o in outputs if o.topic == topics.dlq.name]
    assert [(d["reason_code"], d["original_key"]) for d in dead] == [("NO_ACCOUNT", b"acct-gone")]
    assert "it was routed to account 'acct-gone'" in dead[0]["message"]
    rated = AvroDecoder(None, SCHEMA_FILES["rated"])  # type: ignore[arg-type]
    rated.remember(offline.SCHEMA_IDS["rated"], SCHEMA_FILES["rated"])
    keys = {m.value(): m.key() for m in FIXTURE.routed[1:50]}
    records = [(o.key, rated.decode(o.value)) for o in outputs if o.topic == topics.rated.name]
    assert records
    assert all(record["account_id"].encode() == key for key, record in records)
    assert len(keys) > 1


@pytest.mark.parametrize(("change", "reason"), [
    ({"requester": "al\x00ice"}, "INVALID_EVENT"),
    ({"operation": " "}, "INVALID_EVENT"),
    ({"attributes": [{"name": "quantity", "number": "NaN", "text": None}]}, "INVALID_EVENT"),
])
def test_a_decoded_event_the_router_refuses_is_dead_lettered_with_its_id(
        change: dict[str, object], reason: str) -> None:
    """rejected_usage.avsc: event_id is null only when the bytes could not be decoded; the
    publisher finds its event by it."""
    from datetime import UTC, datetime

    topics = FIXTURE.settings.topics
    record = {"event_id": "ev-refused-1", "event_time": datetime(2026, 11, 20, tzinfo=UTC),
              "service_item_type": "HardDisk", "service_item_id": "hd-1", "operation": "Order",
              "attributes": [{"name": "quantity", "number": "1", "text": None}],
              "requester": "alice", "home_ou": "eng/platform", "account_id": None,
              "provider": None, "product": None, "source": "test", **change}
    value = FIXTURE.codecs.event_encoder.encode(record)
    lane = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog)
    (output,) = offline.run_stage(lane.router, offline.input_messages(
        [(b"hd-1", value)], topics.events.name))
    assert output.topic == topics.dlq.name
    dead = FIXTURE.codecs.dead_letter_decoder.decode(output.value)
    assert (dead["reason_code"], dead["event_id"]) == (reason, "ev-refused-1")
    assert dead["original_value"] == value
