"""A small licence catalog with hand-checkable rates, and licence events to feed it.

Rates: ``crm`` 100.00 USD a month (an annual fee of 1,200.00), ``events``
30.00 USD a month. Fiscal year July-June. Campus ``north`` (account
acct-north, speedtype SPD-N-1) and ``south`` (acct-south, SPD-S-2).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from processors.catalog import Catalog, load_catalog_sources
from processors.events import Origin
from processors.licences.billing import RunOutcome, run_billing
from processors.licences.changes import Applied, apply_licence_event
from processors.licences.model import BillingRunRequest, LicenceAction, LicenceEvent
from processors.licences.state import SubscriptionState

CATALOG = """
version: licences-test-1
fiscal_periods:
  - {name: FY2024, start: 2023-07-01}
  - {name: FY2025, start: 2024-07-01}
  - {name: FY2026, start: 2025-07-01}
  - {name: FY2027, start: 2026-07-01}
rate_groups:
  - {name: standard}
service_item_types:
  - name: Licence
    attributes:
      - {name: licence_product, type: string}
      - {name: months, type: number}
    operations:
      - {name: AnnualFee, billable: true}
      - {name: TrueUp, billable: true}
org_units: [campuses, campuses/north, campuses/south]
accounts:
  - {id: acct-north, kind: tenant, ou: campuses/north,
     rate_groups: [{rate_group: standard, from: FY2024}]}
  - {id: acct-south, kind: tenant, ou: campuses/south,
     rate_groups: [{rate_group: standard, from: FY2024}]}
rate_tables:
  - name: licences
    rate_groups: [standard]
    service_item_type: Licence
    operations: [AnnualFee, TrueUp]
    lookup: [licence_product]
    currency: USD
    pricing: unit
    quantity_attribute: months
    rows:
      - {match: {licence_product: crm}, rate_code: LIC-CRM, unit: month, rate: "100.00"}
      - {match: {licence_product: events}, rate_code: LIC-EVENTS, unit: month, rate: "30.00"}
licence_billing:
  fiscal_year_start_month: 7
  proration: PRORATION
  runs:
    - {name: annual, kind: annual, month: 7}
    - {name: true-up-january, kind: true-up, month: 1, through_month: 12}
    - {name: true-up-june, kind: true-up, month: 6, through_month: 6}
licence_groups:
  - name: crm
    title: CRM
    products: [{id: crm, name: CRM Cloud}]
  - name: events
    title: Events
    products: [{id: events, name: Event Manager}]
campuses:
  - {id: north, name: North Campus, account: acct-north, billing_target: SPD-N-1}
  - {id: south, name: South Campus, account: acct-south, billing_target: SPD-S-2}
"""

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)
ORIGIN = Origin("licence.events", 0, 42)


def licence_catalog(proration: str = "month", text: str = CATALOG) -> Catalog:
    return load_catalog_sources({"licences.yaml": text.replace("PRORATION", proration)})


def change(action: LicenceAction, record: str, user: str, on: date, *, campus: str = "north",
           product: str = "crm", event_id: str | None = None,
           previous_user: str | None = None, billing_target: str | None = None,
           unit_billing_target: str | None = None) -> LicenceEvent:
    return LicenceEvent(event_id=event_id or f"{action}-{campus}-{record}-{user}-{on}",
                        action=action, event_time=NOW, source="test", campus=campus,
                        record_number=record, user=user, product=product, effective_date=on,
                        previous_user=previous_user, billing_target=billing_target,
                        unit_billing_target=unit_billing_target)


def provision(record: str, user: str, on: date, **kwargs: str) -> LicenceEvent:
    return change(LicenceAction.PROVISIONED, record, user, on, **kwargs)


def transfer(record: str, user: str, on: date, **kwargs: str) -> LicenceEvent:
    return change(LicenceAction.TRANSFERRED, record, user, on, **kwargs)


def deprovision(record: str, user: str, on: date, **kwargs: str) -> LicenceEvent:
    return change(LicenceAction.DEPROVISIONED, record, user, on, **kwargs)


def apply_all(catalog: Catalog, state: SubscriptionState,
              *events: LicenceEvent) -> list[Applied]:
    return [apply_licence_event(event, catalog.licences, state) for event in events]


def bill(catalog: Catalog, state: SubscriptionState, run: str,
         fiscal_year: int = 2027) -> RunOutcome:
    request = BillingRunRequest(f"req-{run}", fiscal_year, run, NOW, "test")
    return run_billing(request, catalog, state, ORIGIN, NOW)


def amounts(outcome: RunOutcome) -> dict[str, str]:
    """record number -> charged amount, as text (what the invoice shows)."""
    return {r.event.service_item_id: format(r.charged_amount, "f") for r in outcome.charges}
