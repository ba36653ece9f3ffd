"""The licence sections of the catalog: the example loads, a bad one names file and line.

Each case breaks the factory catalog in one place and marks the line the error
must point at with ``# <-``.
"""

from __future__ import annotations

import pytest

from processors.catalog import CatalogError, load_catalog_dir, load_catalog_sources
from processors.catalog.diff import diff_catalogs
from processors.catalog.licence_model import Proration, RunKind
from stream.settings import REPO_ROOT
from tests.unit.processors.licences.factories import CATALOG

BASE = CATALOG.replace("PRORATION", "month") + (
    "credit_plans:\n  - {name: gold, amount: '7000.00', currency: USD}\n")
MARK = "# <-"


def test_the_example_catalog_bills_the_seeds_licences() -> None:
    licences = load_catalog_dir(REPO_ROOT / "config" / "catalog").licences
    assert licences is not None
    assert (licences.service_item_type, licences.fiscal_year_start_month,
            licences.proration) == ("Licence", 7, Proration.MONTH)
    assert {name: (run.kind, run.month, run.through_month)
            for name, run in licences.runs.items()} == {
        "annual": (RunKind.ANNUAL, 7, 7),
        "true-up-january": (RunKind.TRUE_UP, 1, 12),
        "true-up-june": (RunKind.TRUE_UP, 6, 6)}
    assert [group.title for group in licences.groups.values()] == [
        "Salesforce and Marketing Cloud", "Cvent"]
    assert {campus.billing_target for campus in licences.campuses.values()} == {
        "SPD-11000101", "SPD-21000202", "SPD-31000303"}


def test_a_catalog_without_licences_keeps_its_content_version() -> None:
    # Content versions are hashes of the sections: adding the (empty) licence sections to
    # the loader must not change the version of catalogs that have none.
    text = "fiscal_periods:\n  - {name: P1, start: 2026-01-01}\nrate_groups: [{name: a}]\n"
    # The hash the loader gave before licence sections existed.
    assert load_catalog_sources({"a.yaml": text}).version == "sha256:5e8f040137a5"
    assert load_catalog_sources({"a.yaml": text}).licences is None


CASES: list[tuple[str, tuple[str, str], str]] = [
    ("unknown campus account",
     ("account: acct-south, billing_target", "account: acct-west, billing_target"),
     "unknown account 'acct-west'"),
    ("campus account with a credit plan",
     ("  - {id: acct-south, kind: tenant, ou: campuses/south,\n",
      "  - {id: acct-south, kind: tenant, ou: campuses/south, credit_plan: gold,\n"),
     "licence fees cannot draw usage credit"),
    ("product without a rate",
     ("products: [{id: events, name: Event Manager}]",
      "products: [{id: events, name: Event Manager}, {id: erp, name: ERP}]"),
     "no monthly rate for licence product 'erp'"),
    ("month out of range", ("{name: annual, kind: annual, month: 7}",
                            "{name: annual, kind: annual, month: 13}"),
     "a month is a whole number from 1 to 12"),
    ("window after the run",
     ("{name: true-up-june, kind: true-up, month: 6, through_month: 6}",
      "{name: true-up-june, kind: true-up, month: 1, through_month: 6}"),
     "comes after the run's month 1"),
    ("true-up without a window",
     ("{name: true-up-june, kind: true-up, month: 6, through_month: 6}",
      "{name: true-up-june, kind: true-up, month: 6}"),
     "names the last provisioning month it covers"),
    ("unknown run kind", ("kind: annual, month: 7", "kind: yearly, month: 7"),
     "kind must be annual or true-up"),
    ("unknown proration", ("proration: month", "proration: week"),
     "proration must be month or day"),
    ("product in two groups",
     ("products: [{id: events, name: Event Manager}]",
      "products: [{id: crm, name: CRM again}]"),
     "licence product 'crm' is already in group 'crm'"),
    ("campus without a billing target",
     ("name: North Campus, account: acct-north, billing_target: SPD-N-1",
      "name: North Campus, account: acct-north, billing_target: ''"),
     "needs its billing target"),
    ("licence table priced by volume",
     ("    pricing: unit\n    quantity_attribute: months\n",
      "    pricing: volume\n    quantity_attribute: months\n"),
     "volume pricing"),
]


def _mark(text: str, needle: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if needle in line:
            lines[index] = f"{line}  {MARK}"
            return "\n".join(lines)
    raise AssertionError(f"no line holds {needle!r}")


@pytest.mark.parametrize(("replace", "fragment"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_licence_catalog_names_file_line_and_problem(replace: tuple[str, str],
                                                         fragment: str) -> None:
    assert replace[0] in BASE, "the test must break something that exists"
    broken = BASE.replace(replace[0], replace[1], 1)
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources({"licences.yaml": broken})
    error = raised.value
    assert fragment in error.message, str(error)
    assert error.file == "licences.yaml"
    assert str(error).startswith(f"licences.yaml:{error.line}: ")


@pytest.mark.parametrize(("replace", "needle", "fragment"), [
    (("account: acct-south, billing_target", "account: acct-west, billing_target"),
     "acct-west", "unknown account"),
    (("through_month: 6}", "through_month: 6, month2: 1}"), "month2", "unknown key 'month2'"),
    (("month: 7}", "month: 7.5}"), "month: 7.5", "whole number"),
])
def test_the_error_points_at_the_offending_line(replace: tuple[str, str], needle: str,
                                                fragment: str) -> None:
    broken = _mark(BASE.replace(replace[0], replace[1], 1), needle)
    expected = next(i for i, line in enumerate(broken.split("\n"), 1) if MARK in line)
    with pytest.raises(CatalogError) as raised:
        load_catalog_sources({"licences.yaml": broken})
    assert fragment in raised.value.message
    assert raised.value.line == expected, str(raised.value)


def test_licence_billing_is_set_once_and_needed_by_campuses() -> None:
    with pytest.raises(CatalogError, match=r"b.yaml:1: licence_billing: section "
                                           r"'licence_billing' is already set in a.yaml:\d+"):
        load_catalog_sources({"a.yaml": BASE,
                              "b.yaml": "licence_billing: {runs: []}\n"})
    without = BASE[:BASE.index("licence_billing:")] + BASE[BASE.index("licence_groups:"):]
    with pytest.raises(CatalogError, match="need a licence_billing section"):
        load_catalog_sources({"a.yaml": without})


def test_catalog_diff_shows_licence_changes() -> None:
    old = load_catalog_sources({"licences.yaml": BASE})
    new = load_catalog_sources({"licences.yaml": BASE.replace(
        "billing_target: SPD-N-1", "billing_target: SPD-N-9").replace(
        "proration: month", "proration: day").replace(
        "products: [{id: events, name: Event Manager}]",
        "products: [{id: events, name: Event Manager}, {id: erp, name: ERP}]").replace(
        "      - {match: {licence_product: events}",
        "      - {match: {licence_product: erp}, rate_code: LIC-ERP, unit: month, "
        "rate: '9.00'}\n      - {match: {licence_product: events}")})
    lines = diff_catalogs(old, new)
    assert "licence billing: proration month -> day" in lines
    assert "campus north: billing target SPD-N-1 -> SPD-N-9" in lines
    assert "licence product added: erp (name ERP, group events)" in lines
    assert diff_catalogs(old, old) == []
