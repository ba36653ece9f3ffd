"""QuotaState persistence: the same changelog protocol as the rating state."""

from __future__ import annotations

import json

import pytest

from processors.dedup import micros_since_epoch
from processors.quota import QuotaState, QuotaStateError
from processors.quota.model import RELEASED, Gone, InstanceKey
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


def test_released_entries_become_tombstones_and_the_instance_is_remembered() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4), state)
    copy = _restored(state)
    state.clear_dirty()
    delete = clock.event("Delete", "vm-1")
    run(delete, state)
    gone = "qi|acct-eng|VirtualMachine|vm-1"
    assert state.all_keys() == {gone}
    for key in state.dirty_keys():
        assert (state.dump(key) is None) == (key != gone)
        copy.load(key, state.dump(key))
    assert copy.all_keys() == {gone}
    assert copy.gone(InstanceKey("acct-eng", "VirtualMachine", "vm-1")) == Gone(
        RELEASED, micros_since_epoch(delete.event_time))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("acc|x", b"{}"),
        ("qu|acct|only-two", b"{}"),
        ("qu|a|b|c", b"not json"),
        ("qu|a|b|c", b'{"used": "1"}'),
        ("qi|a|b|c", b'{"holds": [{"quota": "q"}]}'),
        ("qi|a|b", b'{"at": 1, "gone": "blocked"}'),
        ("qi|a|b|c", b'{"at": 1, "gone": "lost"}'),
        ("qi|a|b|c", b'{"at": "1", "gone": "released"}'),
        ("qi|a|b|c", b'{"gone": "released"}'),
    ],
)
def test_unreadable_entries_fail_loudly(key: str, value: bytes) -> None:
    with pytest.raises(QuotaStateError):
        QuotaState().load(key, value)
