"""The rating steps end to end on the small test catalog; every number checked by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from processors.catalog import load_catalog_dir
from processors.errors import EventRejected, ReasonCode
from processors.rating import (
    ESTIMATE_ORIGIN,
    NotBillableError,
    Rated,
    Skipped,
    estimate,
    rate,
)
from processors.state import RatingState
from tests.unit.processors.factories import CATALOG, NOV, ORIGIN, RATED_AT, event, rated

D = Decimal


def test_seed_hard_disk_unit_rate_10_usd_times_2_is_20_usd() -> None:
    record = rated(event(quantity=2, model="hdd-2tb"))
    assert (record.rate, record.quantity, record.net_amount) == (D(10), D(2), D("20.00"))
    assert str(record.net_amount) == "20.00"
    assert record.gross_amount == record.charged_amount == D("20.00")


def test_seed_example_with_the_example_catalog() -> None:
    example = load_catalog_dir(Path(__file__).parents[3] / "config" / "catalog")
    e = event(item="HardDisk", operation="Order", home_ou="eng/platform", quantity=2, model="x")
    record = rated(e, cat=example)
    assert (record.rate_table, record.rate_code, record.net_amount) == (
        "hard-disk-standard",
        "HD-UNIT",
        D("20.00"),
    )


def test_the_record_explains_its_amount() -> None:
    record = rated(event(quantity=2, model="hdd-2tb"))
    assert record.account_id == "acct-eng"
    assert record.account_kind == "tenant"
    assert record.billing_period == "2026-11"
    assert record.fiscal_period == "P2"
    assert record.rate_group == "standard"
    assert record.rate_table == "disk-std"
    assert record.rate_code == "HD"
    assert record.unit_of_measure == "disk"
    assert record.pricing == "unit"
    assert record.currency == "USD"
    assert record.catalog_version == "test-1"
    assert record.origin == ORIGIN
    assert record.rated_at == RATED_AT
    assert record.memo == {"model": "hdd-2tb"}
    assert (record.markup_rate, record.markup_amount) == (D(0), D("0.00"))
    assert (record.credit_applied, record.credit_remaining) == (D("0.00"), D("0.00"))
    assert record.tiers == ()
    assert not record.minimum_charge_applied


@pytest.mark.parametrize(
    ("region", "os", "code", "net"),
    [
        ("eu-west", "linux", "VM-EU-LNX", "55.00"),  # both attributes fixed: most specific
        ("eu-west", "windows", "VM-WIN", "64.00"),  # only os fixed
        ("us-east", "windows", "VM-WIN", "64.00"),
        ("us-east", "linux", "VM-ANY", "50.00"),  # the "*" row
    ],
)
def test_most_specific_row_wins(region: str, os: str, code: str, net: str) -> None:
    e = event(item="VM", operation="Create", vcpu=2, memory_gb=8, region=region, os=os)
    record = rated(e)
    assert (record.rate_code, record.net_amount) == (code, D(net))
    assert record.memo == {"memory_gb": "8"}


def test_flat_pricing_charges_the_rate_per_operation() -> None:
    record = rated(event(item="VM", operation="Resize", region="us-east", vcpu=16))
    assert (record.pricing, record.quantity, record.net_amount) == ("flat", D(1), D("1.25"))


def test_rate_group_changes_at_the_fiscal_boundary_instant() -> None:
    boundary = datetime(2026, 7, 1, tzinfo=UTC)
    before = rated(
        event("a", home_ou="eng/data", at=boundary - timedelta(microseconds=1), quantity=2)
    )
    at = rated(event("b", home_ou="eng/data", at=boundary, quantity=2))
    assert (before.fiscal_period, before.rate_group, before.net_amount) == (
        "P1",
        "standard",
        D("20.00"),
    )
    assert (at.fiscal_period, at.rate_group, at.net_amount) == ("P2", "enterprise", D("16.00"))


def test_an_explicit_project_account_uses_its_own_rate_group() -> None:
    record = rated(event(account_id="proj-x", quantity=2))
    assert (record.account_id, record.account_kind, record.rate_group) == (
        "proj-x",
        "project",
        "enterprise",
    )
    assert record.net_amount == D("16.00")


def test_non_billable_operation_is_skipped_without_state() -> None:
    state = RatingState()
    outcome = rate(event(operation="Return", quantity=1), ORIGIN, CATALOG, state, RATED_AT)
    assert outcome == Skipped("not_billable")
    assert state.all_keys() == set()


def test_a_repeated_event_is_skipped_as_duplicate() -> None:
    state = RatingState()
    first = rate(event("dup", quantity=2), ORIGIN, CATALOG, state, RATED_AT)
    assert isinstance(first, Rated)
    again = rate(event("dup", quantity=D("2.0")), ORIGIN, CATALOG, state, RATED_AT)
    assert again == Skipped("duplicate")


def test_same_id_different_payload_is_a_conflict() -> None:
    state = RatingState()
    rate(event("dup", quantity=2), ORIGIN, CATALOG, state, RATED_AT)
    with pytest.raises(EventRejected) as raised:
        rate(event("dup", quantity=3), ORIGIN, CATALOG, state, RATED_AT)
    assert raised.value.reason is ReasonCode.DUPLICATE_CONFLICT
    assert "dup" in raised.value.message


def test_rating_is_deterministic() -> None:
    e = event(item="Bucket", operation="Meter", stored_gb=120)
    assert rated(e, RatingState()) == rated(e, RatingState())


def test_estimate_changes_no_state_and_ignores_dedup() -> None:
    state = RatingState()
    rate(
        event("e-1", item="Bucket", operation="Meter", stored_gb=90),
        ORIGIN,
        CATALOG,
        state,
        RATED_AT,
    )
    state.clear_dirty()
    before = {key: state.dump(key) for key in state.all_keys()}
    quote = estimate(
        event("e-1", item="Bucket", operation="Meter", stored_gb=20), CATALOG, state, NOV
    )
    # Tiers continue from the 90 GB already used, like rating would.
    assert quote.net_amount == D("1.80")
    assert quote.origin == ESTIMATE_ORIGIN
    assert quote.rated_at == NOV
    assert {key: state.dump(key) for key in state.all_keys()} == before
    assert state.dirty_keys() == set()


def test_estimate_of_a_non_billable_operation_is_an_error() -> None:
    with pytest.raises(NotBillableError, match="not billable"):
        estimate(event(operation="Return"), CATALOG, RatingState(), NOV)
