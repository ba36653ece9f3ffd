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
