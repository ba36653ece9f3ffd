"""Event factories for integration tests, on the example catalog (config/catalog)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from processors.events import UsageEvent
from stream.publisher import new_event

NOVEMBER = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def vm(vcpu: int, *, region: str = "us-east", os: str = "linux", operation: str = "Create",
       requester: str = "alice", home_ou: str = "eng/platform", item_id: str = "vm-1",
       when: datetime = NOVEMBER, account_id: str | None = None) -> UsageEvent:
    return new_event(service_item_type="VirtualMachine", service_item_id=item_id,
                     operation=operation,
                     attributes={"vcpu": vcpu, "memory_gb": 16, "region": region, "os": os},
                     requester=requester, home_ou=home_ou, source="test", event_time=when,
                     account_id=account_id)


def hard_disk(quantity: int, *, home_ou: str = "eng/platform", item_id: str = "hd-1",
              when: datetime = NOVEMBER) -> UsageEvent:
    return new_event(service_item_type="HardDisk", service_item_id=item_id, operation="Order",
                     attributes={"quantity": quantity, "model": "hgst-8tb"}, requester="alice",
                     home_ou=home_ou, source="test", event_time=when)


def object_storage(stored_gb: int, *, home_ou: str = "eng/platform", item_id: str = "bkt-1",
                   when: datetime = NOVEMBER) -> UsageEvent:
    return new_event(service_item_type="ObjectStorage", service_item_id=item_id,
                     operation="Meter", attributes={"stored_gb": stored_gb, "region": "us-east"},
                     requester="alice", home_ou=home_ou, source="test", event_time=when)


def marketplace(product: str, provider: str, instances: int = 1, *,
                home_ou: str = "partners/acme", item_id: str = "app-1",
                when: datetime = NOVEMBER) -> UsageEvent:
    return new_event(service_item_type="MarketplaceApp", service_item_id=item_id,
                     operation="Deploy", attributes={"instances": instances, "plan": "monthly"},
                     requester="farah", home_ou=home_ou, source="test", event_time=when,
                     provider=provider, product=product)


OUS = ("eng/platform", "eng/data/ml", "sales/emea", "partners/acme", "partners/nimbus")
STANDARD_OUS = ("eng/platform", "partners/acme", "partners/nimbus")
NO_AGREEMENT_OUS = ("sales/emea", "partners/acme", "partners/nimbus")
# eng/platform's sub-agreement allows 8 VMs and 32 vCPU: 8 of these pass, the rest block.
QUOTA_VM = {"vcpu": 4, "region": "us-east", "os": "linux"}


def order_independent_mix(count: int, seed: int) -> list[UsageEvent]:
    """Events whose per-account totals do not depend on processing order.

    Unit and flat prices, graduated tiers with whole-GB quantities and cent
    rates (slices never round), marketplace markups on whole-dollar nets and
    credits: whichever order the account's events are rated in, its totals for
    the month are the same. Includes non-billable Starts, re-published
    duplicates, and identical VM creates that fill eng/platform's quota (alerts)
    and then get blocked.
    """
    rng = random.Random(seed)
    events: list[UsageEvent] = []
    quota_creates = count // 500
    for index in range(count - quota_creates):
        ou = rng.choice(OUS)
        # Within 2026-11-03..21: in the past of any run of these tests, as the processor
        # rejects an event more than an hour ahead of its clock (processors/pipeline.py).
        when = NOVEMBER + timedelta(minutes=rng.randrange(0, 60 * 24 * 18))
        roll = rng.random()
        if events and roll < 0.03:
            events.append(rng.choice(events))  # re-published duplicate: same id and payload
        elif roll < 0.40:
            # Only where no agreement limits VMs: which VM a quota blocks depends on order.
            events.append(vm(rng.choice([1, 2, 4, 8]), home_ou=rng.choice(NO_AGREEMENT_OUS),
                             item_id=f"vm-{index}",
                             operation=rng.choice(["Create", "Create", "Start"]), when=when,
                             region=rng.choice(["us-east", "eu-west"]),
                             os=rng.choice(["linux", "windows"])))
        elif roll < 0.55:
            events.append(hard_disk(rng.choice([1, 2, 3]), home_ou=ou, item_id=f"hd-{index}",
                                    when=when))
        elif roll < 0.85:
            # Standard-priced accounts only: the enterprise table's per-record minimum
            # charge makes graduated amounts depend on the order within the month.
            events.append(object_storage(rng.choice([7, 40, 130, 600]),
                                         home_ou=rng.choice(STANDARD_OUS),
                                         item_id=f"bkt-{index}", when=when))
        else:
            product, provider = rng.choice([("acme-backup-std", "acme"),
                                            ("bluefin-waf", "bluefin"),
                                            ("nimbus-kafka", "nimbus")])
            events.append(marketplace(product, provider, rng.choice([1, 2]), home_ou=ou,
                                      item_id=f"app-{index}", when=when))
    # Identical VM creates against eng/platform's quota, never re-published: whatever the
    # order, the same number pass, the same thresholds fire and the rest are blocked.
    for index in range(quota_creates):
        position = rng.randrange(len(events) + 1)
        events.insert(position, vm(QUOTA_VM["vcpu"], region="us-east", os="linux",
                                   item_id=f"vm-quota-{index}",
                                   when=NOVEMBER + timedelta(minutes=rng.randrange(0, 60 * 24))))
    return events


def money(value: object) -> Decimal:
    return Decimal(str(value))
