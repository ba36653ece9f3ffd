"""QuotaState persistence: the same changelog protocol as the rating state."""

from __future__ import annotations

import json

import pytest

from processors.quota import QuotaState, QuotaStateError
from tests.unit.processors.quota.factories import Clock, run


def _restored(state: QuotaState) -> QuotaState:
    copy = QuotaState()
    for key in state.all_keys():
        copy.load(key, state.dump(key))
    return copy


def test_keys_and_values_are_readable_json_with_decimal_strings() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm|1", vcpu="2.5", home_ou="eng/platform"), state)
    assert state.dirty_keys() == state.all_keys()
    assert "qi|acct-eng|VirtualMachine|vm|1" in state.all_keys()
    assert state.dump("qu|acct-eng|eng-platform|VirtualMachine:sum:vcpu") == (
        b'{"fired":[],"used":"2.5"}'
    )
    holds = json.loads(state.dump("qi|acct-eng|VirtualMachine|vm|1") or b"")["holds"]
    assert {"agreement": "eng", "quota": "VirtualMachine:sum:vcpu", "amount": "2.5"} in holds


def test_round_trip_restores_the_next_decision_exactly() -> None:
    state, clock = QuotaState(), Clock()
    for n in range(8):
        run(clock.event("Create", f"vm-{n}", vcpu=1), state)
    copy = _restored(state)
    assert copy.usages() == state.usages()
    assert copy.instances() == state.instances()
    assert copy.dirty_keys() == set()
    event = clock.event("Create", "vm-9", vcpu=1)
    assert run(event, copy) == run(event, state)


def test_released_entries_become_tombstones() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4), state)
    copy = _restored(state)
    state.clear_dirty()
    run(clock.event("Delete", "vm-1"), state)
    assert state.all_keys() == set()
    for key in state.dirty_keys():
        assert state.dump(key) is None
        copy.load(key, None)
    assert copy.all_keys() == set()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("acc|x", b"{}"),
        ("qu|acct|only-two", b"{}"),
        ("qu|a|b|c", b"not json"),
        ("qu|a|b|c", b'{"used": "1"}'),
        ("qi|a|b|c", b'{"holds": [{"quota": "q"}]}'),
    ],
)
def test_unreadable_entries_fail_loudly(key: str, value: bytes) -> None:
    with pytest.raises(QuotaStateError):
        QuotaState().load(key, value)
