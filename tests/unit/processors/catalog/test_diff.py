"""The catalog diff: copies of the example catalog, edited as text, compared."""

from __future__ import annotations

import shutil
from pathlib import Path

from processors.catalog import load_catalog_dir
from processors.catalog.diff import diff_catalogs
from stream.settings import REPO_ROOT

EXAMPLE = REPO_ROOT / "config" / "catalog"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLE, target)
    return target


def _edit(folder: Path, file: str, old: str, new: str) -> None:
    path = folder / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))


def _diff(old: Path, new: Path) -> list[str]:
    return diff_catalogs(load_catalog_dir(old), load_catalog_dir(new))


def test_identical_catalogs_have_no_changes(tmp_path: Path) -> None:
    assert _diff(EXAMPLE, _copy(tmp_path, "same")) == []


def test_rates_accounts_plans_providers_agreements(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "catalog.yaml", '"2026.11-demo.1"', '"2026.12-demo.2"')
    _edit(new, "catalog.yaml", 'amount: "7000.00"', 'amount: "7500.00"')
    _edit(new, "rates-standard.yaml", 'rate: "25.00"}', 'rate: "26.00"}')
    _edit(new, "rates-standard.yaml", '{from: 1000, rate: "0.05"}', '{from: 1000, rate: "0.04"}')
    _edit(new, "rates-standard.yaml", 'minimum_charge: "1.00"', 'minimum_charge: "1.50"')
    _edit(new, "organization.yaml", "{rate_group: standard, from: FY2026-H1}",
          "{rate_group: enterprise, from: FY2026-H1}")
    _edit(new, "providers.yaml", 'markup: "0.18"', 'markup: "0.20"')
    _edit(new, "agreements.yaml", "quota: 96}", "quota: 128}")
    _edit(new, "agreements.yaml", "{percent: 90, action: notify}",
          "{percent: 80, action: notify}")
    assert _diff(EXAMPLE, new) == [
        "version: 2026.11-demo.1 -> 2026.12-demo.2",
        "rate table object-storage-standard: row OBJ-GB: tiers 0-100 @ 0.10, "
        "100-1000 @ 0.08, 1000+ @ 0.05 -> 0-100 @ 0.10, 100-1000 @ 0.08, 1000+ @ 0.04",
        "rate table storage-standard: row STO-HDD: minimum charge 1.00 -> 1.50",
        "rate table vm-standard: row VM-STD: rate 25.00 -> 26.00",
        "account acct-eng: rate groups standard from FY2026-H1 -> enterprise from FY2026-H1",
        "credit plan partner-gold: amount 7000.00 USD -> 7500.00 USD",
        "provider bluefin: markup 0.18 -> 0.20",
        "agreement eng-main: quota VirtualMachine:sum:vcpu: limit 96 -> 128",
        "agreement eng-platform: policy 50% notify, 90% notify, 100% block -> "
        "50% notify, 80% notify, 100% block",
    ]


def test_rows_and_tables_added_and_removed(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "rates-standard.yaml",
          '      - {match: {os: windows}, rate_code: VM-STD-WIN, unit: vcpu, rate: "32.00"}\n', "")
    _edit(new, "rates-standard.yaml",
          '      - {rate_code: HD-UNIT, unit: disk, rate: "10"}\n',
          '      - {rate_code: HD-UNIT, unit: disk, rate: "10"}\n'
          '      - {match: {model: ssd}, rate_code: HD-SSD, unit: disk, rate: "14"}\n')
    _edit(new, "rates-standard.yaml", "    memo: [model]\n", "    lookup: [model]\n")
    assert _diff(EXAMPLE, new) == [
        "rate table hard-disk-standard: lookup none -> model",
        "rate table hard-disk-standard: memo model -> none",
        "rate table hard-disk-standard: row added: HD-SSD 14 USD/disk",
        "rate table vm-standard: row removed: VM-STD-WIN 32.00 USD/vcpu",
    ]


def test_added_and_removed_entities_are_reported_the_other_way_round(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "catalog.yaml", '  - {name: partner-platinum, amount: "15000.00", currency: USD}\n',
          '  - {name: partner-platinum, amount: "15000.00", currency: USD}\n'
          '  - {name: partner-bronze, amount: "500.00", currency: USD}\n')
    forward, backward = _diff(EXAMPLE, new), _diff(new, EXAMPLE)
    assert forward == ["credit plan added: partner-bronze (500.00 USD a month)"]
    assert backward == ["credit plan removed: partner-bronze"]


# Service item types: how events are handled before any rate table is looked at.


def test_an_operation_that_becomes_billable_is_reported(tmp_path: Path) -> None:
    # Its events go from skipped (not_billable) to priced or dead-lettered.
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "{name: Start, billable: false}",
          "{name: Start, billable: true}")
    assert _diff(EXAMPLE, new) == [
        "service item type VirtualMachine: operation Start: billable false -> true"]


def test_operations_added_and_removed_are_reported(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "      - {name: Resize, billable: true}\n",
          "      - {name: Resize, billable: true}\n      - {name: Reboot, billable: false}\n")
    assert _diff(EXAMPLE, new) == [
        "service item type VirtualMachine: operation added: Reboot (not billable)"]
    assert _diff(new, EXAMPLE) == [
        "service item type VirtualMachine: operation removed: Reboot"]


def test_an_attribute_type_change_is_reported(tmp_path: Path) -> None:
    # Events carrying the old type are now dead-lettered with BAD_ATTRIBUTE.
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "{name: model, type: string}",
          "{name: model, type: number}")
    assert _diff(EXAMPLE, new) == [
        "service item type HardDisk: attribute model: type string -> number"]


def test_an_attribute_that_becomes_quota_managed_is_reported(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "{name: stored_gb, type: number}",
          "{name: stored_gb, type: number, quota_managed: true}")
    assert _diff(EXAMPLE, new) == [
        "service item type ObjectStorage: attribute stored_gb: quota managed false -> true"]


def test_attributes_added_and_removed_are_reported(tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "      - {name: os, type: string}\n",
          "      - {name: os, type: string}\n"
          "      - {name: gpus, type: number, quota_managed: true}\n")
    assert _diff(EXAMPLE, new) == [
        "service item type VirtualMachine: attribute added: gpus (number, quota managed)"]
    assert _diff(new, EXAMPLE) == [
        "service item type VirtualMachine: attribute removed: gpus"]


def test_a_marketplace_flag_change_is_reported(tmp_path: Path) -> None:
    # Events of the type must now name a provider and a product.
    new = _copy(tmp_path, "new")
    _edit(new, "service-items.yaml", "  - name: SaaSSeat\n",
          "  - name: SaaSSeat\n    marketplace: true\n")
    assert _diff(EXAMPLE, new) == ["service item type SaaSSeat: marketplace false -> true"]


def test_an_added_service_item_type_is_shown_with_its_operations_and_attributes(
        tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    (new / "gpu.yaml").write_text(
        "service_item_types:\n"
        "  - name: GpuNode\n"
        "    attributes:\n"
        "      - {name: gpus, type: number, quota_managed: true}\n"
        "      - {name: model, type: string}\n"
        "    operations:\n"
        "      - {name: Create, billable: true}\n"
        "      - {name: Resize, billable: true}\n"
        "      - {name: Delete, billable: false}\n")
    assert _diff(EXAMPLE, new) == [
        "service item type added: GpuNode (billable operations Create (quota acquire), "
        "Resize (quota resize); other operations Delete (quota release); "
        "attributes gpus (number, quota managed), model (string))"]
    assert _diff(new, EXAMPLE) == ["service item type removed: GpuNode"]


# Fiscal periods: the event time picks the period, the period the account's rate group.


def test_a_moved_fiscal_period_is_reported_with_the_period_it_lengthens(
        tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "catalog.yaml", "{name: FY2027-H1, start: 2026-07-01}",
          "{name: FY2027-H1, start: 2026-08-01}")
    # The same instant written with another offset is no change.
    _edit(new, "catalog.yaml", "{name: FY2027-H2, start: 2027-01-01}",
          '{name: FY2027-H2, start: "2027-01-01T01:00:00+01:00"}')
    assert _diff(EXAMPLE, new) == [
        "fiscal period FY2026-H2: end 2026-07-01T00:00:00+00:00 -> 2026-08-01T00:00:00+00:00",
        "fiscal period FY2027-H1: start 2026-07-01T00:00:00+00:00 -> 2026-08-01T00:00:00+00:00",
    ]


def test_an_explicit_end_that_leaves_a_gap_is_reported(tmp_path: Path) -> None:
    # Events in the gap are now rejected with NO_RATE_GROUP.
    new = _copy(tmp_path, "new")
    _edit(new, "catalog.yaml", "{name: FY2027-H1, start: 2026-07-01}",
          "{name: FY2027-H1, start: 2026-07-01, end: 2026-12-01}")
    assert _diff(EXAMPLE, new) == [
        "fiscal period FY2027-H1: end 2027-01-01T00:00:00+00:00 -> 2026-12-01T00:00:00+00:00"]


def test_an_added_fiscal_period_is_shown_with_its_dates_and_ends_the_open_one(
        tmp_path: Path) -> None:
    new = _copy(tmp_path, "new")
    _edit(new, "catalog.yaml", "  - {name: FY2027-H2, start: 2027-01-01}\n",
          "  - {name: FY2027-H2, start: 2027-01-01}\n  - {name: FY2028-H1, start: 2027-07-01}\n")
    assert _diff(EXAMPLE, new) == [
        "fiscal period FY2027-H2: end none -> 2027-07-01T00:00:00+00:00",
        "fiscal period added: FY2028-H1 (from 2027-07-01T00:00:00+00:00, open-ended)",
    ]
    assert _diff(new, EXAMPLE) == [
        "fiscal period FY2027-H2: end 2027-07-01T00:00:00+00:00 -> none",
        "fiscal period removed: FY2028-H1",
    ]
