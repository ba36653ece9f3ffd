"""The licence state survives its changelog: dump every dirty key, load into a new state."""

from __future__ import annotations

from datetime import date

import pytest

from processors.licences.state import LicenceStateError, SubscriptionState
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


def _replay(changelog: dict[str, bytes | None]) -> SubscriptionState:
    restored = SubscriptionState()
    for key, value in changelog.items():
        restored.load(key, value)
    restored.clear_dirty()
    return restored


def _flush(state: SubscriptionState, changelog: dict[str, bytes | None]) -> None:
    """What the stream layer does at the end of a batch (compaction keeps the last value)."""
    for key in sorted(state.dirty_keys()):
        changelog[key] = state.dump(key)
    state.clear_dirty()


def test_a_restored_state_bills_exactly_like_the_original() -> None:
    state, changelog = SubscriptionState(), {}
    apply_all(CATALOG, state, provision("A", "alice", date(2025, 1, 1)),
              provision("B", "bob", date(2026, 9, 15), unit_billing_target="U-7"),
              transfer("B", "carl", date(2026, 10, 1)))
    _flush(state, changelog)
    bill(CATALOG, state, "annual")
    _flush(state, changelog)
    apply_all(CATALOG, state, deprovision("A", "alice", date(2026, 8, 31)))
    _flush(state, changelog)

    restored = _replay(changelog)
    assert {key: restored.dump(key) for key in restored.all_keys()} == {
        key: state.dump(key) for key in state.all_keys()}
    assert amounts(bill(CATALOG, restored, "true-up-january")) == {"B": "1000.00"}
    assert amounts(bill(CATALOG, restored, "annual")) == {}  # A paid, B not due


def test_tombstones_remove_entries() -> None:
    state, changelog = SubscriptionState(), {}
    apply_all(CATALOG, state, provision("A", "alice", date(2022, 1, 1)))
    bill(CATALOG, state, "annual", fiscal_year=2024)
    apply_all(CATALOG, state, deprovision("A", "alice", date(2023, 12, 31)))
    _flush(state, changelog)
    bill(CATALOG, state, "annual", fiscal_year=2026)  # forgets FY2024 marks and A
    _flush(state, changelog)
    assert changelog["paid|2024|north|A"] is None
    assert changelog["lic|north|A"] is None
    assert _replay(changelog).all_keys() == {"billed|newest"}  # what stays: FY2026 billed
    assert changelog["billed|newest"] == b'{"fiscal_year":2026}'


def test_an_unreadable_entry_is_named() -> None:
    with pytest.raises(LicenceStateError, match=r"lic\|north\|A"):
        SubscriptionState().load("lic|north|A", b'{"campus": "north"}')
    with pytest.raises(LicenceStateError, match="unknown state key"):
        SubscriptionState().load("acc|x", b"{}")
