"""State persistence: what the changelog carries, and that a restore is exact."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from processors.events import UsageEvent
from processors.rating import RatingOutcome, rate
from processors.state import AccumulationKey, CreditKey, RatingState, StateError
from tests.unit.processors.factories import CATALOG, ORIGIN, RATED_AT, event

D = Decimal


def _events() -> list[UsageEvent]:
    """Tiers, credits, a duplicate and a non-billable operation, over two months."""
    nov, dec = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    return [
        event("b-1", item="Bucket", operation="Meter", stored_gb=D(90), at=nov),
        event("p-1", home_ou="partners/acme", quantity=2, at=nov),
        event("b-2", item="Bucket", operation="Meter", stored_gb=D("20.5"), at=nov),
        event("b-1", item="Bucket", operation="Meter", stored_gb=D(90), at=nov),
        event("s-1", item="Seat", operation="Subscribe", seats=9, at=nov),
        event("r-1", operation="Return", quantity=1, at=nov),
        event("p-2", home_ou="partners/acme", quantity=1, at=dec),
    ]


def _more_events() -> list[UsageEvent]:
    dec = datetime(2026, 12, 20, tzinfo=UTC)
    return [
        event(
            "b-1", item="Bucket", operation="Meter", stored_gb=D(90), at=dec - timedelta(days=47)
        ),
        event("b-3", item="Bucket", operation="Meter", stored_gb=D(5), at=dec - timedelta(days=40)),
        event("p-3", home_ou="partners/acme", quantity=3, at=dec - timedelta(days=40)),
        event("s-2", item="Seat", operation="Subscribe", seats=2, at=dec - timedelta(days=40)),
        event("p-4", home_ou="partners/acme", quantity=2, at=dec),
    ]


def _rate_all(state: RatingState, events: list[UsageEvent]) -> list[RatingOutcome]:
    return [rate(e, ORIGIN, CATALOG, state, RATED_AT) for e in events]


def _dump_all(state: RatingState) -> dict[str, bytes | None]:
    return {key: state.dump(key) for key in state.all_keys()}


def _restored(entries: Mapping[str, bytes | None]) -> RatingState:
    fresh = RatingState()
    for key, value in entries.items():
        fresh.load(key, value)
    return fresh


def test_dump_and_load_round_trip_then_rating_continues_identically() -> None:
    original = RatingState()
    _rate_all(original, _events())
    copy = _restored(_dump_all(original))
    assert _dump_all(copy) == _dump_all(original)
    assert copy.dirty_keys() == set()
    assert _rate_all(copy, _more_events()) == _rate_all(original, _more_events())
    assert _dump_all(copy) == _dump_all(original)


def test_a_changelog_of_dirty_keys_restores_the_state_exactly() -> None:
    original = RatingState()
    changelog: dict[str, bytes | None] = {}
    for e in _events() + _more_events():
        rate(e, ORIGIN, CATALOG, original, RATED_AT)
        for key in original.dirty_keys():
            changelog[key] = original.dump(key)  # None is a tombstone
        original.clear_dirty()
    compacted = {key: value for key, value in changelog.items() if value is not None}
    restored = _restored(compacted)
    assert _dump_all(restored) == _dump_all(original)
    follow_up = event(
        "x-1", home_ou="partners/acme", quantity=1, at=datetime(2026, 12, 21, tzinfo=UTC)
    )
    assert rate(follow_up, ORIGIN, CATALOG, restored, RATED_AT) == rate(
        follow_up, ORIGIN, CATALOG, original, RATED_AT
    )


def test_keys_and_values_are_prefixed_compact_json() -> None:
    state = RatingState()
    _rate_all(state, _events()[:3])
    assert state.dirty_keys() == {
        "acc|acct-eng|2026-11|bucket|GB",
        "cred|acct-acme|2026-11",
        "seen|b-1",
        "seen|p-1",
        "seen|b-2",
    }
    assert state.dump("acc|acct-eng|2026-11|bucket|GB") == b'{"quantity":"110.5"}'
    assert state.dump("cred|acct-acme|2026-11") == b'{"used":"20.00"}'
    seen = json.loads(state.dump("seen|b-1") or b"")
    assert set(seen) == {"fingerprint", "event_time"}
    assert seen["event_time"] == "2026-11-03T00:00:00+00:00"
    state.clear_dirty()
    assert state.dirty_keys() == set()


def test_expired_dedup_entries_become_tombstones() -> None:
    state = RatingState(dedup_window=timedelta(days=2))
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rate(event("old", quantity=1, at=t0), ORIGIN, CATALOG, state, RATED_AT)
    state.clear_dirty()
    rate(event("new", quantity=1, at=t0 + timedelta(days=3)), ORIGIN, CATALOG, state, RATED_AT)
    assert "seen|old" in state.dirty_keys()
    assert state.dump("seen|old") is None
    assert state.is_late(t0)
    assert not state.is_late(t0 + timedelta(days=1))


def test_months_behind_the_horizon_are_dropped_as_tombstones() -> None:
    state = RatingState()
    _rate_all(state, _events()[:3])  # November tiers and credit
    state.clear_dirty()
    january = event("j-1", quantity=1, at=datetime(2027, 1, 10, tzinfo=UTC))
    rate(january, ORIGIN, CATALOG, state, RATED_AT)
    # The horizon is 2026-12-06: every November event is late now.
    assert {"acc|acct-eng|2026-11|bucket|GB", "cred|acct-acme|2026-11"} <= state.dirty_keys()
    assert state.dump("acc|acct-eng|2026-11|bucket|GB") is None
    assert state.accumulated(AccumulationKey("acct-eng", "2026-11", "bucket", "GB")) == 0


def test_load_none_deletes() -> None:
    state = RatingState()
    state.load("cred|acct-acme|2026-11", b'{"used":"12.50"}')
    assert state.credit_used(CreditKey("acct-acme", "2026-11")) == D("12.50")
    state.load("cred|acct-acme|2026-11", None)
    assert state.all_keys() == set()
    state.load("seen|a|b", b'{"fingerprint":"' + b"ab" * 32
               + b'","event_time":"2026-11-01T00:00:00+00:00"}')
    assert state.all_keys() == {"seen|a|b"}  # ids may contain the separator
    state.load("seen|a|b", None)
    assert state.all_keys() == set()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bogus|x", b"{}"),
        ("nokind", b"{}"),
        ("acc|only|three|parts", b'{"quantity":"1"}'),
        ("cred|a|2026-11", b"not json"),
        ("cred|a|2026-11", b"[1]"),
        ("cred|a|2026-11", b'{"used":"lots"}'),
        ("seen|e", b'{"fingerprint":"f"}'),
        ("seen|e", b'{"fingerprint":"f","event_time":"2026-11-01T00:00:00+00:00"}'),
    ],
)
def test_unreadable_entries_raise_state_error(key: str, value: bytes) -> None:
    with pytest.raises(StateError):
        RatingState().load(key, value)
