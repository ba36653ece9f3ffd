"""Small catalogs and events for the rating unit tests, with hand-checkable prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from processors.catalog import Catalog, load_catalog_sources
from processors.events import AttributeValue, Origin, RatedUsage, UsageEvent
from processors.rating import Rated, rate
from processors.state import RatingState

BASE = """
version: test-1
fiscal_periods:
  - {name: P1, start: 2026-01-01}
  - {name: P2, start: 2026-07-01}
rate_groups:
  - {name: standard}
  - {name: enterprise}
credit_plans:
  - {name: gold, amount: "7000.00", currency: USD}
  - {name: small, amount: "30.00", currency: USD}
service_item_types:
  - name: Disk
    attributes:
      - {name: quantity, type: number, quota_managed: true}
      - {name: model, type: string}
    operations:
      - {name: Order, billable: true}
      - {name: Return, billable: false}
  - name: VM
    attributes:
      - {name: vcpu, type: number, quota_managed: true}
      - {name: memory_gb, type: number}
      - {name: region, type: string}
      - {name: os, type: string}
    operations:
      - {name: Create, billable: true}
      - {name: Resize, billable: true}
      - {name: Start, billable: false}
  - name: Bucket
    attributes:
      - {name: stored_gb, type: number}
    operations:
      - {name: Meter, billable: true}
  - name: Seat
    attributes:
      - {name: seats, type: number}
    operations:
      - {name: Subscribe, billable: true}
  - name: App
    marketplace: true
    attributes:
      - {name: instances, type: number}
    operations:
      - {name: Deploy, billable: true}
      - {name: Meter, billable: true}
org_units: [eng, eng/platform, eng/platform/k8s, eng/data, sales, finance, partners, partners/acme]
accounts:
  - {id: acct-eng, kind: tenant, ou: eng, rate_groups: [{rate_group: standard, from: P1}]}
  - id: acct-data
    kind: tenant
    ou: eng/data
    rate_groups:
      - {rate_group: standard, from: P1}
      - {rate_group: enterprise, from: P2}
  - id: acct-acme
    kind: tenant
    ou: partners/acme
    credit_plan: small
    rate_groups: [{rate_group: standard, from: P1}]
  - id: proj-x
    kind: project
    ous: [eng/platform, sales]
    rate_groups: [{rate_group: enterprise, from: P1}]
providers:
  - id: acme
    name: Acme
    markup: "0.15"
    products:
      - {sku: acme-basic, name: Acme Basic, service_item_type: App}
      - {sku: acme-pro, name: Acme Pro, service_item_type: App, markup: "0.25"}
"""

RATES = """
rate_tables:
  - name: disk-std
    rate_groups: [standard]
    service_item_type: Disk
    operations: [Order]
    memo: [model]
    currency: USD
    pricing: unit
    quantity_attribute: quantity
    rows:
      - {rate_code: HD, unit: disk, rate: "10"}
  - name: disk-ent
    rate_groups: [enterprise]
    service_item_type: Disk
    operations: [Order]
    currency: USD
    pricing: unit
    quantity_attribute: quantity
    rows:
      - {rate_code: HD-ENT, unit: disk, rate: "8"}
  - name: vm-std
    rate_groups: [standard]
    service_item_type: VM
    operations: [Create]
    lookup: [region, os]
    memo: [memory_gb]
    currency: USD
    pricing: unit
    quantity_attribute: vcpu
    rows:
      - {match: {region: "*", os: "*"}, rate_code: VM-ANY, unit: vcpu, rate: "25.00"}
      - {match: {os: windows}, rate_code: VM-WIN, unit: vcpu, rate: "32.00"}
      - {match: {region: eu-west, os: linux}, rate_code: VM-EU-LNX, unit: vcpu, rate: "27.50"}
  - name: vm-std-resize
    rate_groups: [standard]
    service_item_type: VM
    operations: [Resize]
    lookup: [region]
    currency: USD
    pricing: flat
    rows:
      - {match: {region: us-east}, rate_code: VM-RESIZE, unit: operation, rate: "1.25"}
  - name: bucket
    rate_groups: [standard, enterprise]
    service_item_type: Bucket
    operations: [Meter]
    currency: USD
    pricing: graduated
    quantity_attribute: stored_gb
    rows:
      - rate_code: GB
        unit: GB
        minimum_charge: "0.50"
        tiers:
          - {from: 0, to: 100, rate: "0.10"}
          - {from: 100, to: 1000, rate: "0.08"}
          - {from: 1000, rate: "0.05"}
  - name: seats
    rate_groups: [standard, enterprise]
    service_item_type: Seat
    operations: [Subscribe]
    currency: USD
    pricing: volume
    quantity_attribute: seats
    rows:
      - rate_code: SEAT
        unit: seat
        tiers:
          - {from: 0, to: 10, rate: "12.00"}
          - {from: 10, to: 50, rate: "10.00"}
          - {from: 50, rate: "8.00"}
  - name: apps
    rate_groups: [standard, enterprise]
    service_item_type: App
    operations: [Deploy]
    lookup: [product]
    currency: USD
    pricing: unit
    quantity_attribute: instances
    rows:
      - {match: {product: acme-basic}, rate_code: MP-BASIC, unit: instance, rate: "100.00"}
      - {match: {product: acme-pro}, rate_code: MP-PRO, unit: instance, rate: "33.33"}
"""

ORIGIN = Origin(topic="usage.by-account", partition=0, offset=42)
RATED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NOV = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)


def catalog(rates: str = RATES, base: str = BASE) -> Catalog:
    return load_catalog_sources({"base.yaml": base, "rates.yaml": rates})


def event(
    event_id: str = "e-1",
    *,
    item: str = "Disk",
    operation: str = "Order",
    at: datetime = NOV,
    home_ou: str = "eng/platform",
    account_id: str | None = None,
    provider: str | None = None,
    product: str | None = None,
    **attributes: AttributeValue | int | str,
) -> UsageEvent:
    """An event; integer attributes become Decimal numbers, like decoded events."""
    typed: dict[str, AttributeValue] = {
        name: Decimal(value) if isinstance(value, int) else value
        for name, value in attributes.items()
    }
    return UsageEvent(
        event_id=event_id,
        event_time=at,
        service_item_type=item,
        service_item_id=f"{item.lower()}-1",
        operation=operation,
        attributes=typed,
        requester="alice",
        home_ou=home_ou,
        source="unit-test",
        account_id=account_id,
        provider=provider,
        product=product,
    )


def rated(
    e: UsageEvent, state: RatingState | None = None, cat: Catalog | None = None
) -> RatedUsage:
    """The record of an event that must be rated (fails the test otherwise)."""
    outcome = rate(e, ORIGIN, cat or CATALOG, state or RatingState(), RATED_AT)
    assert isinstance(outcome, Rated), outcome
    return outcome.record


CATALOG = catalog()
