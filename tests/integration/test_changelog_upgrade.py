"""A rater changelog written before seen-id blocks still restores, on the real broker.

Versions before blocks wrote one ``seen|<event id>`` record per rated event (see
processors/state.py). A processor of this version must restore such a changelog and go
on recognising those events as duplicates; otherwise an upgrade would bill again every
event re-published within the dedup window.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from processors.dedup import payload_fingerprint
from stream.clients import idempotent_producer
from stream.readback import read_all
from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def test_seen_ids_of_one_record_each_restore_and_their_events_are_duplicates(
        pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    events = pipeline.publish(order_independent_mix(1_500, seed=5))
    by_id = {event.event_id: event for event in events}
    # Route only: usage.by-account then tells which rater partition holds each event.
    router = pipeline.start_processor("0", "--stages", "router")
    pipeline.wait_committed(pipeline.settings.topics.events.name, len(events), router)
    router.stop()
    routed = read_all(pipeline.connections, pipeline.settings.topics.by_account.name,
                      pipeline.codecs.event_decoder)
    partition_of = {str(record.value["event_id"]): record.partition for record in routed}
    assert len(partition_of) == len(by_id)

    # The changelog an older version would have left for the first half of the ids.
    old_ids = list(by_id)[: len(by_id) // 2]
    producer = idempotent_producer(pipeline.connections)
    for event_id in old_ids:
        event = by_id[event_id]
        value = json.dumps({"event_time": event.event_time.isoformat(),
                            "fingerprint": payload_fingerprint(event)},
                           separators=(",", ":"), sort_keys=True)
        producer.produce(pipeline.settings.topics.changelog.name,
                         key=f"seen|{event_id}".encode(), value=value.encode(),
                         partition=partition_of[event_id])
    assert producer.flush(30) == 0

    pipeline.start_processor("0")  # router and rater: the rater restores those records
    pipeline.wait_caught_up()

    rated = Counter(str(record.value["event_id"]) for record in pipeline.rated())
    assert [event_id for event_id, count in rated.items() if count > 1] == []
    assert set(rated).isdisjoint(old_ids), "an event the old changelog had seen was rated"
    assert len(rated) > len(by_id) // 4  # the other half was rated as usual
    keys = pipeline.restored_state().all_keys()
    # The old records stay until their ids leave the window; the new ids are in blocks.
    assert sum(key.startswith("seen|") for key in keys) == len(old_ids)
    assert any(key.startswith("seenb|") for key in keys)
