"""A small catalog with agreements, and events, for hand-checked quota tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from processors.accounts import ResolvedAccount, resolve_account
from processors.catalog import Catalog, load_catalog_sources
from processors.events import UsageEvent
from processors.quota import QuotaDecision, QuotaState, UsageKey, check_quota
from processors.quota.model import QuotaUsage, UnknownInstances

BASE = """
version: quota-test
fiscal_periods: [{name: P1, start: 2026-01-01}]
rate_groups: [{name: standard}]
service_item_types:
  - name: VirtualMachine
    attributes:
      - {name: vcpu, type: number, quota_managed: true}
      - {name: memory_gb, type: number, quota_managed: true}
      - {name: region, type: string}
    operations:
      - {name: Create, billable: true}
      - {name: Resize, billable: true}
      - {name: Start, billable: false}
      - {name: Delete, billable: false}
  - name: Storage
    attributes:
      - {name: size_gb, type: number, quota_managed: true}
    operations:
      - {name: Create, billable: true}
      - {name: Delete, billable: false}
  - name: Bucket
    attributes: [{name: stored_gb, type: number}]
    operations: [{name: Create, billable: true}]
org_units: [eng, eng/platform, eng/platform/k8s, eng/data, sales, ops]
accounts:
  - {id: acct-eng, kind: tenant, ou: eng, rate_groups: [{rate_group: standard, from: P1}]}
  - {id: acct-sales, kind: tenant, ou: sales, rate_groups: [{rate_group: standard, from: P1}]}
  - {id: acct-ops, kind: tenant, ou: ops, rate_groups: [{rate_group: standard, from: P1}]}
  - {id: proj-x, kind: project, ous: [eng/data], rate_groups: [{rate_group: standard, from: P1}]}
"""

# The seed's VM example: 10 VMs and 20 vCPU for acct-eng (default policy 80/100);
# eng/platform gets 4 VMs and 8 vCPU of it with a 50/90/100 policy.
AGREEMENTS = """
agreement_templates:
  - name: vm
    quotas:
      - {service_item_type: VirtualMachine, aggregate: count, quota: 10}
      - {service_item_type: VirtualMachine, aggregate: sum, attribute: vcpu, quota: 20}
agreements:
  - {id: eng, account: acct-eng, template: vm}
  - id: eng-platform
    parent: eng
    ous: [eng/platform]
    quotas:
      - {service_item_type: VirtualMachine, aggregate: count, quota: 4}
      - {service_item_type: VirtualMachine, aggregate: sum, attribute: vcpu, quota: 8}
    quota_policy:
      - {percent: 50, action: notify}
      - {percent: 90, action: notify}
      - {percent: 100, action: block}
  - id: sales
    account: acct-sales
    on_missing_quota: allow
    quotas: [{service_item_type: Storage, aggregate: sum, attribute: size_gb, quota: 100}]
  - id: ops
    account: acct-ops
    quotas: [{service_item_type: Storage, aggregate: count, quota: 1}]
"""

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VM = "VirtualMachine"
VM_COUNT = "VirtualMachine:count"
VM_VCPU = "VirtualMachine:sum:vcpu"


def catalog(agreements: str = AGREEMENTS) -> Catalog:
    return load_catalog_sources({"base.yaml": BASE, "agreements.yaml": agreements})


CATALOG = catalog()


class Clock:
    """Event ids and times that increase, so every event is distinct."""

    def __init__(self) -> None:
        self.n = 0

    def event(
        self,
        operation: str,
        item_id: str,
        *,
        item: str = VM,
        home_ou: str = "eng/data",
        account_id: str | None = None,
        **numbers: int | str,
    ) -> UsageEvent:
        self.n += 1
        return UsageEvent(
            event_id=f"e-{self.n}",
            event_time=T0 + timedelta(minutes=self.n),
            service_item_type=item,
            service_item_id=item_id,
            operation=operation,
            attributes={name: Decimal(str(value)) for name, value in numbers.items()},
            requester="alice",
            home_ou=home_ou,
            source="unit-test",
            account_id=account_id,
        )


def account_of(event: UsageEvent, cat: Catalog = CATALOG) -> ResolvedAccount:
    return resolve_account(event, cat)


def decide(event: UsageEvent, state: QuotaState, cat: Catalog = CATALOG,
           unknown_instances: UnknownInstances = UnknownInstances.REJECT) -> QuotaDecision:
    return check_quota(event, account_of(event, cat), cat, state,
                       unknown_instances=unknown_instances)


def run(event: UsageEvent, state: QuotaState, cat: Catalog = CATALOG,
        unknown_instances: UnknownInstances = UnknownInstances.REJECT) -> QuotaDecision:
    """Decide and apply, like the pipeline: of a refused decision, only the blocked
    instance it remembers."""
    decision = decide(event, state, cat, unknown_instances)
    state.apply(decision)
    return decision


def used(state: QuotaState, agreement: str, quota: str, account: str = "acct-eng") -> Decimal:
    return state.usage(UsageKey(account, agreement, quota)).used


def usage(state: QuotaState, agreement: str, quota: str, account: str = "acct-eng") -> QuotaUsage:
    return state.usage(UsageKey(account, agreement, quota))
