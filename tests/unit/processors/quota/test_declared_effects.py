"""What an operation does to quota is catalog data (``quota:`` on the operation), with
the conventional names (Create, Resize, Delete ...) as the default: a platform whose
services say Provision and Decommission is enforced like one that says Create and
Delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from processors.catalog import Catalog, CatalogError, load_catalog_sources
from processors.catalog.diff import diff_catalogs
from processors.catalog.model import QuotaEffect
from processors.errors import ReasonCode
from processors.events import Origin, UsageEvent
from processors.pipeline import PartitionState, process_event
from processors.quota import QuotaState
from tests.unit.processors.quota.factories import BASE, Clock, run, used

OPS_STORAGE = """
agreements:
  - id: ops
    account: acct-ops
    quotas: [{service_item_type: Storage, aggregate: count, quota: 1}]
"""
STORAGE_OPERATIONS = ("      - {name: Create, billable: true}\n"
                      "      - {name: Delete, billable: false}\n"
                      "  - name: Bucket")


def with_storage_operations(operations: str, agreements: str = OPS_STORAGE) -> Catalog:
    base = BASE.replace(STORAGE_OPERATIONS, operations + "  - name: Bucket")
    assert base != BASE
    return load_catalog_sources({"base.yaml": base, "agreements.yaml": agreements})


PROVISION = ("      - {name: Provision, billable: true, quota: acquire}\n"
             "      - {name: Decommission, billable: false, quota: release}\n"
             "      - {name: Delete, billable: false, quota: none}\n")


def test_declared_operations_take_and_give_back_quota() -> None:
    catalog = with_storage_operations(PROVISION)
    state, clock = QuotaState(), Clock()
    assert run(clock.event("Provision", "s-1", item="Storage", size_gb=1, home_ou="ops"),
               state, catalog).allowed
    second = run(clock.event("Provision", "s-2", item="Storage", size_gb=1, home_ou="ops"),
                 state, catalog)
    assert second.rejection is not None
    assert second.rejection.reason is ReasonCode.QUOTA_EXCEEDED
    # "Delete" is declared to leave quota alone here: the slot stays taken.
    assert run(clock.event("Delete", "s-1", item="Storage", home_ou="ops"),
               state, catalog).change is None
    assert used(state, "ops", "Storage:count", account="acct-ops") == Decimal(1)
    assert run(clock.event("Decommission", "s-1", item="Storage", home_ou="ops"),
               state, catalog).allowed
    assert used(state, "ops", "Storage:count", account="acct-ops") == Decimal(0)
    assert run(clock.event("Provision", "s-2", item="Storage", size_gb=1, home_ou="ops"),
               state, catalog).allowed


def test_conventional_names_are_the_default_and_only_for_quota_managed_types() -> None:
    catalog = load_catalog_sources({"base.yaml": BASE})
    vm = catalog.service_item_types["VirtualMachine"].operations
    assert {name: op.quota for name, op in vm.items()} == {
        "Create": QuotaEffect.ACQUIRE, "Resize": QuotaEffect.RESIZE, "Start": None,
        "Delete": QuotaEffect.RELEASE}
    # Bucket has no quota-managed attribute: its Create moves no quota.
    assert catalog.service_item_types["Bucket"].operations["Create"].quota is None


@pytest.mark.parametrize(("operations", "message"), [
    ("      - {name: Create, billable: true, quota: take}\n",
     r"base.yaml.*quota must be one of acquire, resize, release, none, got 'take'"),
    ("      - {name: Create, billable: true, quota: [acquire]}\n",
     r"base.yaml:\d+: service_item_type 'Storage' operations\[0\]: quota: expected a text "
     r"value"),
])
def test_an_unknown_quota_effect_is_refused_at_load(operations: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        with_storage_operations(operations, agreements="agreements: []\n")


def test_a_quota_effect_on_an_item_type_without_quota_managed_attributes_is_refused() -> None:
    base = BASE.replace("    operations: [{name: Create, billable: true}]",
                        "    operations: [{name: Create, billable: true, quota: acquire}]")
    assert base != BASE
    with pytest.raises(CatalogError, match=r"operation 'Create' declares quota 'acquire', "
                                           r"but its item type has no quota_managed attribute"):
        load_catalog_sources({"base.yaml": base})


def test_quota_none_on_every_taking_operation_leaves_a_quota_nothing_to_limit() -> None:
    operations = ("      - {name: Create, billable: true, quota: none}\n"
                  "      - {name: Delete, billable: false}\n")
    with pytest.raises(CatalogError, match=r"none of Storage's operations \(Create, Delete\) "
                                           r"takes quota \(declare `quota: acquire`"):
        with_storage_operations(operations)


def test_the_catalog_diff_names_a_changed_quota_effect() -> None:
    before = with_storage_operations(PROVISION)
    after = with_storage_operations(PROVISION.replace(
        "{name: Delete, billable: false, quota: none}",
        "{name: Delete, billable: false, quota: release}"))
    lines = diff_catalogs(before, after)
    assert any("Storage" in line and "Delete" in line and "quota none -> release" in line
               for line in lines), lines


def test_the_catalog_diff_shows_the_effects_of_an_added_item_type() -> None:
    # Without them, an added type whose Delete is declared `quota: none` reads like one
    # whose Delete gives quota back.
    before = load_catalog_sources({"base.yaml": BASE})
    after = load_catalog_sources({"base.yaml": BASE.replace("  - name: Bucket\n", (
        "  - name: Disk\n"
        "    attributes: [{name: gb, type: number, quota_managed: true}]\n"
        "    operations:\n"
        + PROVISION +
        "  - name: Bucket\n"))})
    assert diff_catalogs(before, after) == [
        "service item type added: Disk (billable operations Provision (quota acquire); "
        "other operations Decommission (quota release), Delete; "
        "attributes gb (number, quota managed))"]


def test_the_pipeline_follows_the_declared_effect() -> None:
    # The example catalog with VirtualMachine's Delete renamed Decommission: declared as a
    # release, eng/platform's eighth VM slot comes back and a ninth VM is rated.
    folder = Path(__file__).resolve().parents[4] / "config" / "catalog"
    sources = {path.name: path.read_text() for path in folder.glob("*.yaml")}
    items = sources["service-items.yaml"]
    sources["service-items.yaml"] = items.replace(
        "      - {name: Delete, billable: false}\n\n  - name: Storage",
        "      - {name: Decommission, billable: false, quota: release}\n\n  - name: Storage")
    assert sources["service-items.yaml"] != items
    catalog = load_catalog_sources(sources)
    state, start = PartitionState(), datetime(2026, 11, 3, 9, 0, tzinfo=UTC)

    def outcome(item_id: str, operation: str, minute: int) -> object:
        event = UsageEvent(event_id=f"{item_id}-{operation}-{minute}",
                           service_item_type="VirtualMachine",
                           event_time=start + timedelta(minutes=minute),
                           service_item_id=item_id, operation=operation,
                           attributes={"vcpu": Decimal(4), "memory_gb": Decimal(16),
                                       "region": "us-east", "os": "linux"},
                           requester="alice", home_ou="eng/platform", source="test")
        result = process_event(event, Origin("t", 0, minute), catalog, state,
                               start + timedelta(hours=3))
        return "rated" if result.rated else (
            result.quota_rejection.reason.value if result.quota_rejection else "skipped")

    assert [outcome(f"vm-{n}", "Create", n) for n in range(8)] == ["rated"] * 8
    assert outcome("vm-8", "Create", 8) == "QUOTA_EXCEEDED"
    assert outcome("vm-0", "Decommission", 9) == "skipped"  # not billable, quota given back
    assert outcome("vm-8", "Create", 10) == "rated"
