"""Billing runs on the licence state: annual, true-ups, net new, idempotency, hand-checked.

Rates (factories.py): crm 100.00 USD a month, events 30.00. FY2027 = July 2026 -
June 2027. Proration by month unless the test says by day.
"""

from __future__ import annotations

from datetime import date

import pytest

from processors.catalog import load_catalog_sources
from processors.errors import EventRejected, ReasonCode
from processors.licences.billing import covered
from processors.licences.state import SubscriptionState
from tests.unit.processors.licences.factories import (
    CATALOG,
    NOW,
    ORIGIN,
    amounts,
    apply_all,
    bill,
    deprovision,
    licence_catalog,
    provision,
    transfer,
)

BY_MONTH = licence_catalog("month")
BY_DAY = licence_catalog("day")


def _year_of_changes(state: SubscriptionState) -> None:
    """A campus's year: three licences from before the year, growth in August-June."""
    apply_all(BY_MONTH, state,
              provision("OLD-1", "alice", date(2024, 3, 1)),
              provision("OLD-2", "bob", date(2026, 5, 20), product="events"),
              provision("OLD-3", "carol", date(2025, 1, 1)),
              deprovision("OLD-3", "carol", date(2026, 6, 30)),  # gone before July
              provision("JUL-1", "dave", date(2026, 7, 6)),  # first week of July
              provision("SEP-1", "erin", date(2026, 9, 15)),
              provision("FEB-1", "frank", date(2027, 2, 1), product="events"))


def test_annual_bills_every_active_licence_twelve_months() -> None:
    state = SubscriptionState()
    _year_of_changes(state)
    outcome = bill(BY_MONTH, state, "annual")
    # 12 x 100.00 for crm, 12 x 30.00 for events; OLD-3 ended, SEP-1 and FEB-1 are later.
    assert amounts(outcome) == {"OLD-1": "1200.00", "OLD-2": "360.00", "JUL-1": "1200.00"}
    assert {str(r.quantity) for r in outcome.charges} == {"12"}


def test_january_true_up_bills_net_new_august_to_december_prorated() -> None:
    state = SubscriptionState()
    _year_of_changes(state)
    bill(BY_MONTH, state, "annual")
    january = bill(BY_MONTH, state, "true-up-january")
    assert amounts(january) == {"SEP-1": "1000.00"}  # September..June: 10 x 100.00
    june = bill(BY_MONTH, state, "true-up-june")
    assert amounts(june) == {"FEB-1": "150.00"}  # February..June: 5 x 30.00


def test_the_charge_record_explains_itself() -> None:
    state = SubscriptionState()
    apply_all(BY_DAY, state, provision("SEP-1", "erin", date(2026, 9, 15)))
    (record,) = bill(BY_DAY, state, "true-up-january").charges
    assert record.event.event_id == "licence:FY2027:true-up-january:north:SEP-1"
    assert (record.account_id, record.billing_period, record.fiscal_period, record.rate_group,
            record.rate_table, record.rate_code, record.unit_of_measure, record.pricing) == (
        "acct-north", "2027-01", "FY2027", "standard", "licences", "LIC-CRM", "month", "unit")
    # 289 of 365 days from 15 September: 1200 x 289 / 365 = 950.1369... -> 950.14
    assert (str(record.rate), str(record.quantity), str(record.net_amount),
            str(record.charged_amount)) == ("100.00", "9.501369863014", "950.14", "950.14")
    assert (record.event.requester, record.event.service_item_id, record.event.operation,
            record.event.source, record.event.product) == (
        "erin", "SEP-1", "TrueUp", "licences:FY2027:true-up-january", "crm")
    assert (record.origin, record.rated_at, record.catalog_version) == (
        ORIGIN, NOW, "licences-test-1")
    assert record.memo["billing_target"] == "SPD-N-1"
    assert record.memo["product_group"] == "crm"
    assert record.memo["proration"] == "289 of 365 days from 2026-09-15"
    assert record.memo["transferred"] == "no"


def test_a_transfer_is_not_billed_as_net_new() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("R1", "alice", date(2025, 10, 1)))
    assert amounts(bill(BY_MONTH, state, "annual")) == {"R1": "1200.00"}
    # Alice leaves in September, her licence goes to bob; and a licence arrives by
    # transfer from another campus's user as a new record.
    apply_all(BY_MONTH, state, transfer("R1", "bob", date(2026, 9, 10)),
              transfer("R7", "gina", date(2026, 10, 3), previous_user="hank"))
    assert bill(BY_MONTH, state, "true-up-january").charges == ()
    assert bill(BY_MONTH, state, "true-up-june").charges == ()
    # Next year's annual bills both: they are active licences.
    assert amounts(bill(BY_MONTH, state, "annual", fiscal_year=2028)) == {
        "R1": "1200.00", "R7": "1200.00"}


def test_provision_and_transfer_in_the_same_window_bill_once_from_the_provisioning_date() -> None:
    for catalog, expected in ((BY_MONTH, "1000.00"), (BY_DAY, "950.14")):
        state = SubscriptionState()
        apply_all(catalog, state, provision("R1", "alice", date(2026, 9, 15)),
                  transfer("R1", "bob", date(2026, 11, 2)))
        outcome = bill(catalog, state, "true-up-january")
        assert amounts(outcome) == {"R1": expected}  # the licence is net new, once
        (record,) = outcome.charges
        assert (record.event.requester, record.memo["transferred"],
                record.memo["provisioned_on"], record.memo["holder_since"]) == (
            "bob", "yes", "2026-09-15", "2026-11-02")


def test_running_a_run_twice_bills_nothing_twice() -> None:
    state = SubscriptionState()
    _year_of_changes(state)
    first = bill(BY_MONTH, state, "annual")
    marks = {key: state.dump(key) for key in state.all_keys() if key.startswith("paid|")}
    second = bill(BY_MONTH, state, "annual")
    assert (len(first.charges), second.charges, second.already_paid) == (3, (), 3)
    assert {key: state.dump(key) for key in state.all_keys()
            if key.startswith("paid|")} == marks
    # A licence is paid for the year whichever run billed it: the June run does not
    # bill September's licence again, nor the annual ones.
    bill(BY_MONTH, state, "true-up-january")
    june = bill(BY_MONTH, state, "true-up-june")
    assert amounts(june) == {"FEB-1": "150.00"}
    # Covered by June's window but paid: JUL-1 (net new in July, billed by the annual run)
    # and SEP-1 (billed in January).
    assert june.already_paid == 2


def test_a_rerun_after_new_provisions_bills_only_the_new_ones() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("A", "a", date(2026, 8, 3)))
    assert amounts(bill(BY_MONTH, state, "true-up-january")) == {"A": "1100.00"}
    apply_all(BY_MONTH, state, provision("B", "b", date(2026, 12, 28)))
    assert amounts(bill(BY_MONTH, state, "true-up-january")) == {"B": "700.00"}


def test_deprovisioned_before_the_true_up_is_not_billed_and_nothing_is_refunded() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("OLD", "alice", date(2025, 2, 1)),
              provision("NEW", "bob", date(2026, 8, 10)))
    assert amounts(bill(BY_MONTH, state, "annual")) == {"OLD": "1200.00"}
    apply_all(BY_MONTH, state, deprovision("OLD", "alice", date(2026, 9, 30)),
              deprovision("NEW", "bob", date(2026, 11, 30)))
    # NEW came and went inside the window: not active at the true-up, not billed (the
    # seed bills current active users). OLD was billed for the year: no refund.
    january = bill(BY_MONTH, state, "true-up-january")
    assert (january.charges, january.failures, january.already_paid) == ((), (), 0)


def test_a_deprovisioning_dated_after_the_run_has_not_happened_at_the_run() -> None:
    """Published ahead of its date, a deprovisioning must not stop the billing of a licence
    still held on the run's billing date: it was billed by no run at all."""
    state = SubscriptionState()
    apply_all(BY_MONTH, state,
              provision("KEPT", "gus", date(2025, 1, 1)),
              deprovision("KEPT", "gus", date(2027, 9, 30)),  # next fiscal year
              provision("NEW", "nia", date(2026, 9, 1)),
              deprovision("NEW", "nia", date(2027, 3, 31)),  # after the January true-up
              provision("GONE", "gil", date(2026, 9, 1)),
              deprovision("GONE", "gil", date(2026, 12, 31)))  # before it
    assert amounts(bill(BY_MONTH, state, "annual")) == {"KEPT": "1200.00"}
    # NEW: September..June, 10 x 100.00; GONE ended before the billing date, 1 January.
    assert amounts(bill(BY_MONTH, state, "true-up-january")) == {"NEW": "1000.00"}


def test_a_july_licence_missed_by_the_annual_run_is_caught_by_the_january_true_up() -> None:
    state = SubscriptionState()
    bill(BY_MONTH, state, "annual")  # ran on, say, 10 July
    apply_all(BY_MONTH, state, provision("LATE", "ivy", date(2026, 7, 20)))
    assert amounts(bill(BY_MONTH, state, "true-up-january")) == {"LATE": "1200.00"}


def test_window_edges() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("DEC31", "a", date(2026, 12, 31)),
              provision("JAN1", "b", date(2027, 1, 1)),
              provision("AUG1", "c", date(2026, 8, 1)))
    spec = BY_MONTH.licences.runs["true-up-january"] if BY_MONTH.licences else None
    assert spec is not None
    year = bill(BY_MONTH, SubscriptionState(), "annual").year
    by_record = {lic.record_number: covered(lic, spec, year) for lic in state.licences_of("north")}
    assert by_record == {"AUG1": True, "DEC31": True, "JAN1": False}
    assert amounts(bill(BY_MONTH, state, "annual")) == {}  # none provisioned by end of July


def test_a_leap_year_true_up_by_day() -> None:
    state = SubscriptionState()
    apply_all(BY_DAY, state, provision("LEAP", "lee", date(2024, 2, 29)),
              provision("EV", "eve", date(2024, 3, 1), product="events"))
    outcome = bill(BY_DAY, state, "true-up-june", fiscal_year=2024)
    # 123 of 366 days: 1200 x 123 / 366 = 403.2786... ; events 122 days: 360 x 122 / 366 = 120
    assert amounts(outcome) == {"LEAP": "403.28", "EV": "120.00"}
    assert outcome.charges[0].billing_period == "2024-06"


def test_campuses_are_billed_to_their_own_target() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("N1", "a", date(2025, 1, 1)),
              provision("S1", "b", date(2025, 1, 1), campus="south"))
    targets = {(r.account_id, r.memo["billing_target"])
               for r in bill(BY_MONTH, state, "annual").charges}
    assert targets == {("acct-north", "SPD-N-1"), ("acct-south", "SPD-S-2")}


def test_the_invoice_memo_lists_the_active_licences_the_user_holds() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("C1", "ann", date(2025, 1, 1)),
              provision("E1", "ann", date(2025, 1, 1), product="events"),
              provision("C2", "ann", date(2025, 5, 1)))
    held = {r.event.service_item_id: r.memo["active_licences"]
            for r in bill(BY_MONTH, state, "annual").charges}
    assert held == {"C1": "CRM Cloud", "C2": "CRM Cloud", "E1": "Event Manager"}


def test_a_licence_the_catalog_cannot_price_fails_alone_and_stays_unpaid() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("N1", "a", date(2025, 1, 1)),
              provision("S1", "b", date(2025, 1, 1), campus="south"))
    without_south = load_catalog_sources({"licences.yaml": CATALOG.replace(
        "PRORATION", "month").replace(
        "  - {id: south, name: South Campus, account: acct-south, billing_target: SPD-S-2}\n",
        "")})
    outcome = bill(without_south, state, "annual")
    assert amounts(outcome) == {"N1": "1200.00"}
    (failure,) = outcome.failures
    assert (failure.event_id, failure.rejection.reason) == (
        "licence:FY2027:annual:south:S1", ReasonCode.NO_ACCOUNT)
    # Once the catalog is fixed, a re-run bills exactly the one left.
    assert amounts(bill(BY_MONTH, state, "annual")) == {"S1": "1200.00"}


def test_old_paid_marks_and_ended_licences_are_forgotten() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("A", "a", date(2023, 1, 1)),
              provision("B", "b", date(2023, 1, 1)))
    bill(BY_MONTH, state, "annual", fiscal_year=2024)
    apply_all(BY_MONTH, state, deprovision("B", "b", date(2024, 1, 31)))
    bill(BY_MONTH, state, "annual", fiscal_year=2025)
    bill(BY_MONTH, state, "annual", fiscal_year=2026)  # keeps FY2025 and FY2026 marks
    assert sorted(key for key in state.all_keys()) == [
        "billed|newest", "lic|north|A", "paid|2025|north|A", "paid|2026|north|A"]


def test_a_year_whose_paid_marks_were_dropped_is_closed_to_billing_runs() -> None:
    # Found by review: FY2029's run dropped the marks of every year before 2028, and
    # FY2027's true-up then billed JUL-1 a second time in FY2027.
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("JUL-1", "dave", date(2026, 7, 6)))
    assert amounts(bill(BY_MONTH, state, "annual", 2027)) == {"JUL-1": "1200.00"}
    bill(BY_MONTH, state, "annual", 2029)  # a typo, or simply two years on
    before = {key: state.dump(key) for key in state.all_keys()}
    with pytest.raises(EventRejected) as refused:
        bill(BY_MONTH, state, "true-up-january", 2027)
    assert refused.value.reason is ReasonCode.INVALID_EVENT
    assert "fiscal year 2027 is closed: 2029 has been billed, and only 2028 and later" in \
        refused.value.message
    assert {key: state.dump(key) for key in state.all_keys()} == before  # nothing changed
    assert amounts(bill(BY_MONTH, state, "annual", 2028)) == {"JUL-1": "1200.00"}


def test_a_run_for_an_older_year_keeps_the_newer_years_marks() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("JUL-1", "dave", date(2026, 7, 6)))
    bill(BY_MONTH, state, "annual", 2028)
    assert amounts(bill(BY_MONTH, state, "annual", 2027)) == {"JUL-1": "1200.00"}
    assert amounts(bill(BY_MONTH, state, "annual", 2028)) == {}  # still paid
    assert state.newest_billed_year() == 2028


def test_the_newest_billed_year_is_restored_from_the_changelog() -> None:
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("JUL-1", "dave", date(2026, 7, 6)))
    bill(BY_MONTH, state, "annual", 2029)
    restored = SubscriptionState()
    for key in sorted(state.all_keys()):
        restored.load(key, state.dump(key))
    assert restored.newest_billed_year() == 2029
    with pytest.raises(EventRejected):
        bill(BY_MONTH, restored, "annual", 2027)


def test_state_written_before_the_newest_year_was_kept_closes_the_same_years() -> None:
    # Found by review: a partition billed for FY2029 by the version before had dropped
    # its FY2027 marks but has no billed|newest; its newest paid mark stands in.
    state = SubscriptionState()
    apply_all(BY_MONTH, state, provision("JUL-1", "dave", date(2026, 7, 6)))
    bill(BY_MONTH, state, "annual", 2027)
    bill(BY_MONTH, state, "annual", 2029)
    older = SubscriptionState()
    for key in sorted(state.all_keys() - {"billed|newest"}):  # as the old version wrote it
        older.load(key, state.dump(key))
    assert older.newest_billed_year() == 2029
    with pytest.raises(EventRejected, match="fiscal year 2027 is closed"):
        bill(BY_MONTH, older, "true-up-january", 2027)
    assert amounts(bill(BY_MONTH, older, "annual", 2028)) == {"JUL-1": "1200.00"}
    assert older.newest_billed_year() == 2029  # billing 2028 does not lower it
