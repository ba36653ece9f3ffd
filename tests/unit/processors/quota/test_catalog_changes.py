"""Quota enforcement across catalog changes and catalog rules that keep quotas
enforceable: a release after its quota left the catalog, alerts after a limit was
raised, quotas no check would ever apply, nested sub-agreements."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial

import pytest

from processors.catalog import CatalogError, load_catalog_sources
from processors.catalog.model import MissingPolicy
from processors.errors import ReasonCode
from processors.quota import QuotaState, check_quota
from tests.unit.processors.quota.factories import (
    BASE,
    VM_COUNT,
    VM_VCPU,
    Clock,
    account_of,
    catalog,
    run,
    used,
)

OPS_STORAGE = """
agreements:
  - id: ops
    account: acct-ops
    quotas: [{service_item_type: Storage, aggregate: count, quota: 1}]
"""
OPS_VM_ONLY = """
agreements:
  - id: ops
    account: acct-ops
    quotas: [{service_item_type: VirtualMachine, aggregate: count, quota: 5}]
"""


def test_a_delete_gives_its_quota_back_after_the_quota_left_the_catalog() -> None:
    # docs/catalog.md: a Delete gives back exactly what the instance held; decreases are
    # never blocked. It was rejected NO_QUOTA, and the instance kept its slot.
    with_quota, without_quota = catalog(OPS_STORAGE), catalog(OPS_VM_ONLY)
    state, clock = QuotaState(), Clock()
    assert run(clock.event("Create", "s-1", item="Storage", home_ou="ops", size_gb=1),
               state, with_quota).allowed
    delete = run(clock.event("Delete", "s-1", item="Storage", home_ou="ops"), state,
                 without_quota)
    assert delete.allowed, delete.rejection
    # The quota comes back: s-1 is gone, so another Storage fits in the quota of 1.
    again = run(clock.event("Create", "s-2", item="Storage", home_ou="ops", size_gb=1),
                state, with_quota)
    assert again.allowed, again.rejection
    assert used(state, "ops", "Storage:count", account="acct-ops") == Decimal(1)


def test_a_delete_is_not_refused_when_the_agreement_is_gone_and_no_agreement_rejects() -> None:
    with_agreement, without = catalog(OPS_STORAGE), catalog("agreements: []\n")
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "s-1", item="Storage", home_ou="ops", size_gb=1), state,
        with_agreement)
    delete = clock.event("Delete", "s-1", item="Storage", home_ou="ops")
    decision = check_quota(delete, account_of(delete, without), without, state,
                           no_agreement=MissingPolicy.REJECT)
    assert decision.allowed, decision.rejection
    # A create under the same setting is still refused: only releases pass.
    create = clock.event("Create", "s-2", item="Storage", home_ou="ops", size_gb=1)
    refused = check_quota(create, account_of(create, without), without, state,
                          no_agreement=MissingPolicy.REJECT)
    assert refused.rejection is not None
    assert refused.rejection.reason.value == "NO_AGREEMENT"


VCPU_20 = """
agreements:
  - id: eng
    account: acct-eng
    quotas:
      - {service_item_type: VirtualMachine, aggregate: sum, attribute: vcpu, quota: 20}
      - {service_item_type: VirtualMachine, aggregate: count, quota: 100}
"""


def test_crossing_80_percent_again_after_the_limit_was_raised_alerts_again() -> None:
    # docs/catalog.md: an alert each time usage reaches a threshold from below. 80% had
    # fired under the old limit and stayed "fired" under the new one, so the next
    # crossing raised nothing.
    low, raised = catalog(VCPU_20), catalog(VCPU_20.replace("quota: 20", "quota: 40"))
    state, clock = QuotaState(), Clock()
    first = run(clock.event("Create", "vm-1", vcpu=16), state, low)  # 16/20 = 80%
    assert [a.threshold_percent for a in first.alerts if a.quota_id == VM_VCPU] == [80]
    crossing = run(clock.event("Create", "vm-2", vcpu=18), state, raised)  # 34/40 = 85%
    assert used(state, "eng", VM_VCPU) == Decimal(34)
    assert [a.threshold_percent for a in crossing.alerts if a.quota_id == VM_VCPU] == [80]
    # Still above 80% under the raised limit: no second alert.
    later = run(clock.event("Create", "vm-3", vcpu=1), state, raised)  # 35/40
    assert [a for a in later.alerts if a.quota_id == VM_VCPU] == []


def test_a_quota_on_an_item_type_no_check_applies_to_is_refused_at_load() -> None:
    # Bucket has no quota-managed attribute, so its events are never quota-checked: the
    # quota used to load and limit nothing.
    with pytest.raises(CatalogError, match="Bucket has no quota_managed attribute"):
        catalog("""
agreements:
  - id: ops
    account: acct-ops
    quotas: [{service_item_type: Bucket, aggregate: count, quota: 1}]
""")


NESTED = """
agreements:
  - id: eng
    account: acct-eng
    quotas: [{service_item_type: VirtualMachine, aggregate: count, quota: 10}]
  - id: FIRST
    parent: eng
    ous: [FIRST_OU]
  - id: SECOND
    parent: eng
    ous: [SECOND_OU]
"""


@pytest.mark.parametrize(("first", "second", "fragment"), [
    (("platform", "eng/platform"), ("k8s", "eng/platform/k8s"),
     "OU 'eng/platform/k8s' is below 'eng/platform', which sub-agreement 'platform'"),
    (("k8s", "eng/platform/k8s"), ("platform", "eng/platform"),
     "OU 'eng/platform' is above 'eng/platform/k8s', which sub-agreement 'k8s'"),
])
def test_nested_sub_agreement_ous_are_refused_at_load(
        first: tuple[str, str], second: tuple[str, str], fragment: str) -> None:
    # A sub-agreement's OU counts with its sub-tree, and an OU belongs to at most one
    # sub-agreement (DOMAIN.md). Nested, eng/platform/k8s counted against its own share
    # only, so the eng/platform sub-tree held 4 VMs on a share of 2.
    text = (NESTED.replace("FIRST_OU", first[1]).replace("SECOND_OU", second[1])
            .replace("FIRST", first[0]).replace("SECOND", second[0]))
    with pytest.raises(CatalogError, match=fragment):
        catalog(text)


def held_vm_after_the_agreement_is_gone() -> tuple[QuotaState, Callable[[str, int], str]]:
    """vm-1 created with 8 vCPU under VCPU_20; then a catalog without agreements and
    ``no_agreement: reject``: decide(operation, vcpu) applies it, "allowed" or the reason."""
    with_agreement, without = catalog(VCPU_20), catalog("agreements: []\n")
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=8), state, with_agreement)

    def decide(operation: str, vcpu: int) -> str:
        event = clock.event(operation, "vm-1", vcpu=vcpu)
        decision = check_quota(event, account_of(event, without), without, state,
                               no_agreement=MissingPolicy.REJECT)
        state.apply(decision)
        return decision.rejection.reason.value if decision.rejection else "allowed"

    return state, decide


def test_a_resize_down_passes_and_a_resize_up_is_refused_once_the_agreement_is_gone() -> None:
    state, resize = held_vm_after_the_agreement_is_gone()
    decide = partial(resize, "Resize")
    assert decide(4) == "allowed"  # gives 4 vCPU back
    assert used(state, "eng", VM_VCPU) == Decimal(4)
    assert decide(4) == "allowed"  # the same size: takes nothing more
    assert decide(6) == "NO_AGREEMENT"  # would take more: the setting applies
    assert used(state, "eng", VM_VCPU) == Decimal(4)


def test_a_quota_on_an_item_type_whose_operations_never_take_quota_is_refused() -> None:
    # Undeclared, which operations take quota goes by the conventional names
    # (docs/catalog.md): a type whose instances come from "Provision" (with no
    # `quota: acquire`) would count nothing, and its limit would hold nothing back.
    base = BASE.replace("      - {name: Create, billable: true}\n      - {name: Delete, "
                        "billable: false}",
                        "      - {name: Provision, billable: true}\n      - {name: Delete, "
                        "billable: false}")
    assert "Provision" in base
    with pytest.raises(CatalogError, match=r"none of Storage's operations \(Provision, "
                                           r"Delete\) takes quota"):
        load_catalog_sources({"base.yaml": base, "agreements.yaml": OPS_STORAGE})


def test_a_create_of_a_held_instance_is_a_resize_once_the_agreement_is_gone() -> None:
    # docs/catalog.md: a Create for an instance already held is treated as a resize, so
    # one that takes no more quota passes like a resize down; a larger one is refused.
    state, create = held_vm_after_the_agreement_is_gone()
    decide = partial(create, "Create")
    assert decide(8) == "allowed"  # sent again: takes nothing more
    assert decide(10) == "NO_AGREEMENT"
    assert used(state, "eng", VM_VCPU) == Decimal(8)


COUNT_ONLY = ("agreements:\n  - {id: eng, account: acct-eng, quotas: "
              "[{service_item_type: VirtualMachine, aggregate: count, quota: 10}]}\n")
COUNT_AND_VCPU = ("agreements:\n  - {id: eng, account: acct-eng, quotas: "
                  "[{service_item_type: VirtualMachine, aggregate: count, quota: 10}, "
                  "{service_item_type: VirtualMachine, aggregate: sum, attribute: vcpu, "
                  "quota: 20}]}\n")


def test_a_sum_quota_added_later_counts_an_instance_from_its_next_resize() -> None:
    """A vCPU sum added to an agreement that already counted VMs: the VMs created before
    it were never counted in it, so their resizes went through whatever they took."""
    before, after = catalog(COUNT_ONLY), catalog(COUNT_AND_VCPU)
    state, clock = QuotaState(), Clock()
    assert run(clock.event("Create", "vm-old", vcpu=16), state, before).allowed
    assert used(state, "eng", VM_VCPU) == 0  # no such quota yet
    # Adopted into the new quota at the resize's value: 40 does not fit under 20 ...
    refused = run(clock.event("Resize", "vm-old", vcpu=40), state, after)
    assert refused.rejection is not None
    assert refused.rejection.reason is ReasonCode.QUOTA_EXCEEDED
    assert used(state, "eng", VM_VCPU) == 0
    # ... 18 does, and is held from then on, and given back with the VM.
    assert run(clock.event("Resize", "vm-old", vcpu=18), state, after).allowed
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (1, 18)
    assert not run(clock.event("Create", "vm-new", vcpu=4), state, after).allowed  # 22 > 20
    assert run(clock.event("Delete", "vm-old"), state, after).allowed
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (0, 0)
