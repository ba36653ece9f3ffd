"""Licence changes: who holds which licence since when, transfers, duplicates, conflicts."""

from __future__ import annotations

from datetime import date

import pytest

from processors.errors import EventRejected, ReasonCode
from processors.licences.changes import Applied, apply_licence_event
from processors.licences.model import LicenceEvent
from processors.licences.state import SubscriptionState
from tests.unit.processors.licences.factories import CATALOG as CATALOG_TEXT
from tests.unit.processors.licences.factories import (
    amounts,
    apply_all,
    bill,
    deprovision,
    licence_catalog,
    provision,
    transfer,
)

CATALOG = licence_catalog()
SEP_15 = date(2026, 9, 15)


def test_a_transfer_keeps_the_licence_and_its_provisioning_date() -> None:
    state = SubscriptionState()
    assert apply_all(CATALOG, state, provision("R1", "alice", SEP_15),
                     transfer("R1", "bob", date(2026, 11, 2))) == [
        Applied.PROVISIONED, Applied.TRANSFERRED]
    licence = state.licence("north", "R1")
    assert licence is not None
    assert (licence.user, licence.previous_user, licence.provisioned_on, licence.holder_since,
            licence.from_transfer, licence.transferred) == (
        "bob", "alice", SEP_15, date(2026, 11, 2), False, True)


def test_a_transfer_into_a_new_record_comes_from_a_transfer() -> None:
    state = SubscriptionState()
    apply_all(CATALOG, state, transfer("R9", "carol", SEP_15, previous_user="dave"))
    licence = state.licence("north", "R9")
    assert licence is not None
    assert (licence.from_transfer, licence.provisioned_on, licence.previous_user) == (
        True, SEP_15, "dave")


def test_republished_changes_are_duplicates_and_change_nothing() -> None:
    state = SubscriptionState()
    first = provision("R1", "alice", SEP_15)
    apply_all(CATALOG, state, first)
    state.clear_dirty()
    again = provision("R1", "alice", SEP_15, event_id="another-id")
    assert apply_all(CATALOG, state, again, transfer("R1", "alice", date(2026, 10, 1))) == [
        Applied.DUPLICATE, Applied.DUPLICATE]
    apply_all(CATALOG, state, deprovision("R1", "alice", date(2026, 12, 31)))
    assert apply_all(CATALOG, state, deprovision("R1", "alice", date(2026, 12, 31))) == [
        Applied.DUPLICATE]
    assert state.dirty_keys() == {"lic|north|R1"}


def test_the_provisioning_of_an_ended_licence_delivered_again_is_a_duplicate() -> None:
    """Re-published after the deprovisioning, it must not bring the licence back (it was
    billed by the January true-up as a net new licence)."""
    state = SubscriptionState()
    started = provision("R1", "eve", SEP_15, event_id="e1")
    assert apply_all(CATALOG, state, started, deprovision("R1", "eve", date(2026, 10, 31)),
                     started) == [Applied.PROVISIONED, Applied.DEPROVISIONED, Applied.DUPLICATE]
    licence = state.licence("north", "R1")
    assert licence is not None
    assert (licence.active, licence.ended_on) == (False, date(2026, 10, 31))
    assert amounts(bill(CATALOG, state, "true-up-january")) == {}


def test_an_ended_licence_can_be_provisioned_again_from_a_new_date() -> None:
    state = SubscriptionState()
    apply_all(CATALOG, state, provision("R1", "alice", SEP_15),
              deprovision("R1", "alice", date(2026, 10, 1)),
              provision("R1", "erin", date(2027, 2, 1)))
    licence = state.licence("north", "R1")
    assert licence is not None
    assert (licence.user, licence.provisioned_on, licence.active) == (
        "erin", date(2027, 2, 1), True)


@pytest.mark.parametrize(("events", "reason", "fragment"), [
    ([provision("R1", "alice", SEP_15), provision("R1", "bob", SEP_15)],
     ReasonCode.INVALID_EVENT, "already held by alice"),
    ([deprovision("R1", "alice", SEP_15)], ReasonCode.INVALID_EVENT, "has no licence R1"),
    ([provision("R1", "alice", SEP_15), deprovision("R1", "alice", SEP_15, product="events")],
     ReasonCode.INVALID_EVENT, "the deprovisioning names events"),
    ([provision("R1", "alice", SEP_15), deprovision("R1", "alice", date(2026, 9, 1))],
     ReasonCode.INVALID_EVENT, "before its holder got it"),
    ([provision("R1", "alice", SEP_15), transfer("R1", "bob", SEP_15, product="events")],
     ReasonCode.INVALID_EVENT, "is a crm licence"),
    # A deprovisioning naming the holder before a transfer must not end the new holder's.
    ([provision("R1", "alice", SEP_15), transfer("R1", "bob", date(2026, 11, 1)),
      deprovision("R1", "alice", date(2026, 11, 1))],
     ReasonCode.INVALID_EVENT, "is held by bob (since 2026-11-01), the deprovisioning names "
     "alice"),
    # An ended record starts again only from its end on.
    ([provision("R1", "alice", SEP_15), deprovision("R1", "alice", date(2026, 10, 31)),
      provision("R1", "erin", date(2026, 10, 1))],
     ReasonCode.INVALID_EVENT, "before licence R1 ended on 2026-10-31"),
    ([provision("R1", "alice", SEP_15, campus="west")], ReasonCode.NO_ACCOUNT,
     "unknown campus 'west'"),
    ([provision("R1", "alice", SEP_15, product="erp")], ReasonCode.UNKNOWN_PRODUCT,
     "unknown licence product 'erp'"),
    ([provision("R1", "alice", SEP_15, billing_target="SPD-S-2")], ReasonCode.INVALID_EVENT,
     "billed to 'SPD-N-1'"),
])
def test_bad_changes_are_rejected_and_leave_the_state_as_it_was(
        events: list[LicenceEvent], reason: ReasonCode, fragment: str) -> None:
    state = SubscriptionState()
    *before, bad = events
    apply_all(CATALOG, state, *before)
    snapshot = {key: state.dump(key) for key in state.all_keys()}
    with pytest.raises(EventRejected) as rejected:
        apply_licence_event(bad, CATALOG.licences, state)
    assert rejected.value.reason is reason
    assert fragment in rejected.value.message
    assert {key: state.dump(key) for key in state.all_keys()} == snapshot


def test_the_matching_billing_target_is_accepted() -> None:
    state = SubscriptionState()
    assert apply_all(CATALOG, state, provision("R1", "a", SEP_15, billing_target="SPD-N-1")) == [
        Applied.PROVISIONED]


def test_a_licence_whose_product_left_the_catalog_can_still_end() -> None:
    state = SubscriptionState()
    apply_all(CATALOG, state, provision("R1", "alice", SEP_15))
    without_crm = licence_catalog(text=CATALOG_TEXT.replace(
        "products: [{id: crm, name: CRM Cloud}]", "products: [{id: crm2, name: CRM 2}]").replace(
        "licence_product: crm}", "licence_product: crm2}"))
    assert apply_all(without_crm, state, deprovision("R1", "alice", date(2026, 12, 31))) == [
        Applied.DEPROVISIONED]
