"""A billing history for API tests: real events rated by the rating engine on the example
catalog (config/catalog), stored the way the history sink stores them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.catalog import Catalog, load_catalog_dir
from processors.events import Origin, UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState
from sinks.base import SinkRecord
from sinks.history.model import BillingHistoryStore
from stream.codec import rated_to_avro
from stream.publisher import new_event
from stream.settings import REPO_ROOT

EXAMPLE_CATALOG = REPO_ROOT / "config" / "catalog"
NOVEMBER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RATED_TOPIC = "usage.rated"
PARTITIONS = 3


def example_catalog() -> Catalog:
    return load_catalog_dir(EXAMPLE_CATALOG)


def _events() -> Iterator[UsageEvent]:
    n = 0

    def event(item_type: str, operation: str, attributes: dict[str, Any], home_ou: str,
              when: datetime, **extra: Any) -> UsageEvent:
        nonlocal n
        n += 1
        return new_event(service_item_type=item_type, service_item_id=f"{item_type}-{n % 5}",
                         operation=operation, attributes=attributes, requester="alice",
                         home_ou=home_ou, source="api-test", event_id=f"ev-{n:04d}",
                         event_time=when, **extra)

    for i in range(12):  # acct-eng, November: VMs, disks, metered object storage
        when = NOVEMBER + timedelta(hours=i)
        yield event("VirtualMachine", "Create", {"vcpu": 2 + i % 3, "memory_gb": 8,
                                                 "region": "us-east", "os": "linux"},
                    "eng/platform", when)
        yield event("HardDisk", "Order", {"quantity": 1 + i % 2, "model": "hgst-8tb"},
                    "eng/platform", when + timedelta(minutes=5))
        if i < 4:  # 10 + 20 + 30 + 20 = 80 GB this month: the first tier (0-100) holds 20 more
            yield event("ObjectStorage", "Meter", {"stored_gb": (10, 20, 30, 20)[i],
                                                   "region": "us-east"},
                        "eng/platform", when + timedelta(minutes=7))
    for i in range(8):  # acct-partner-acme, November: marketplace apps of two providers
        when = NOVEMBER + timedelta(days=1, hours=i)
        product, provider = (("acme-backup-std", "acme") if i % 2 == 0
                             else ("nimbus-postgres", "nimbus"))
        yield event("MarketplaceApp", "Deploy", {"instances": 1 + i % 3, "plan": "monthly"},
                    "partners/acme", when, provider=provider, product=product)
    same_time = NOVEMBER + timedelta(days=2)
    for _ in range(3):  # three rows with one event time: the order falls back to event_id
        yield event("Storage", "Create", {"size_gb": 100, "tier": "ssd", "region": "us-east"},
                    "eng/data", same_time)
    for i in range(5):  # December rows of two accounts
        yield event("VirtualMachine", "Create", {"vcpu": 4, "memory_gb": 16,
                                                 "region": "eu-west", "os": "windows"},
                    "eng/platform" if i % 2 else "sales/emea", DECEMBER + timedelta(hours=i))


def rated_values(catalog: Catalog) -> list[dict[str, Any]]:
    """The rated records (fastavro dicts, as decoded from usage.rated), in rating order."""
    state = RatingState()
    values = []
    for offset, event in enumerate(_events()):
        outcome = rate(event, Origin("usage.by-account", 0, offset), catalog, state,
                       event.event_time + timedelta(seconds=1))
        assert isinstance(outcome, Rated), outcome
        values.append(rated_to_avro(outcome.record))
    return values


def sink_records(values: list[dict[str, Any]]) -> list[SinkRecord]:
    """As the history sink receives them: partitioned by account, offsets increasing."""
    next_offset = [0] * PARTITIONS
    records = []
    for value in values:
        partition = sum(value["account_id"].encode()) % PARTITIONS
        records.append(SinkRecord(RATED_TOPIC, partition, next_offset[partition], value))
        next_offset[partition] += 1
    return records


def fill(store: BillingHistoryStore, values: list[dict[str, Any]]) -> None:
    records = sink_records(values)
    for start in range(0, len(records), 10):  # several batches, as the sink writes them
        store.write_batch(records[start:start + 10])
