"""State persistence: what the changelog carries, and that a restore is exact."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from processors.dedup import payload_fingerprint
from processors.events import UsageEvent
from processors.rating import DUPLICATE, Rated, RatingOutcome, Skipped, rate
from processors.state import (
    SEEN_BLOCK_BYTES,
    AccumulationKey,
    CreditKey,
    RatingState,
    StateError,
)
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


def _logical(state: RatingState) -> dict[str, object]:
    """What a state holds, whatever blocks its seen ids were written in: tiers and
    credits by key, and every seen id with its fingerprint and event time."""
    entries: dict[str, object] = {}
    seen: dict[str, tuple[str, int]] = {}
    for key in sorted(state.all_keys()):
        value = state.dump(key)
        if key.startswith("seenb|"):
            block = json.loads(value or b"")["seen"]
            seen.update({event_id: (fp, us) for event_id, (fp, us) in block.items()})
        elif key.startswith("seen|"):
            legacy = json.loads(value or b"")
            moment = datetime.fromisoformat(legacy["event_time"])
            seen[key[len("seen|"):]] = (legacy["fingerprint"], _micros(moment))
        else:
            entries[key] = value
    return {**entries, "seen": seen}


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


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
    # The copy wrote its new ids in a second block; the original still has one pending.
    assert _logical(copy) == _logical(original)
    assert len(_logical(copy)["seen"]) == 2  # type: ignore[arg-type]  # p-2 and p-4 (Dec)


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
    assert _logical(restored) == _logical(original)
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
        "seenb|0",  # the three ids of the batch, in one block
    }
    assert state.dump("acc|acct-eng|2026-11|bucket|GB") == b'{"quantity":"110.5"}'
    assert state.dump("cred|acct-acme|2026-11") == b'{"used":"20.00"}'
    block = json.loads(state.dump("seenb|0") or b"")
    assert list(block) == ["seen"]
    assert list(block["seen"]) == ["b-1", "p-1", "b-2"]  # in the order seen
    fingerprint, event_us = block["seen"]["b-1"]
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert event_us == _micros(datetime(2026, 11, 3, tzinfo=UTC)) == 1_793_664_000_000_000
    state.clear_dirty()
    assert state.dirty_keys() == set()
    _rate_all(state, _events()[4:5])
    assert state.dirty_keys() == {"acc|acct-eng|2026-11|seats|SEAT", "seenb|1"}  # next block


def test_expired_dedup_entries_become_tombstones() -> None:
    state = RatingState(dedup_window=timedelta(days=2))
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rate(event("old", quantity=1, at=t0), ORIGIN, CATALOG, state, RATED_AT)
    state.clear_dirty()
    rate(event("new", quantity=1, at=t0 + timedelta(days=3)), ORIGIN, CATALOG, state, RATED_AT)
    assert "seenb|0" in state.dirty_keys()  # the block of "old": its newest event is gone
    assert state.dump("seenb|0") is None
    assert "seenb|0" not in state.all_keys()
    assert state.is_late(t0)
    assert not state.is_late(t0 + timedelta(days=1))


def test_a_block_lives_until_its_newest_event_leaves_the_window() -> None:
    state = RatingState(dedup_window=timedelta(days=2))
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    _rate_all(state, [event("a", quantity=1, at=t0),
                      event("b", quantity=1, at=t0 + timedelta(days=1))])
    state.clear_dirty()
    rate(event("c", quantity=1, at=t0 + timedelta(days=2, hours=12)), ORIGIN, CATALOG, state,
         RATED_AT)
    # "a" is out of the window, "b" is not: the block holding both stays.
    assert state.dirty_keys() == {"seenb|1"}
    assert "seenb|0" in state.all_keys()
    state.clear_dirty()
    rate(event("d", quantity=1, at=t0 + timedelta(days=3, hours=1)), ORIGIN, CATALOG, state,
         RATED_AT)
    assert state.dirty_keys() == {"seenb|0", "seenb|2"}
    assert state.dump("seenb|0") is None


def test_a_batch_of_long_ids_fills_as_many_blocks_as_it_needs() -> None:
    """Each block stays under SEEN_BLOCK_BYTES (Kafka refuses records over 1 MB), in the
    order recorded; an id longer than that alone goes in a block of its own."""
    state = RatingState()
    at = datetime(2026, 11, 3, tzinfo=UTC)
    long_ids = [f"{n}-" + "x" * 100_000 for n in range(5)] + ["huge-" + "y" * 300_000, "z"]
    for event_id in long_ids:
        state.remember(event_id, "ab" * 32, at)
    assert state.dirty_keys() == {f"seenb|{n}" for n in range(5)}
    blocks = [json.loads(state.dump(f"seenb|{n}") or b"")["seen"] for n in range(5)]
    assert [list(block) for block in blocks] == [
        long_ids[0:2], long_ids[2:4], long_ids[4:5], long_ids[5:6], long_ids[6:7]]
    assert all(len(state.dump(f"seenb|{n}") or b"") <= SEEN_BLOCK_BYTES for n in (0, 1, 2))
    changelog = _written(state)
    assert state.all_keys() == {f"seenb|{n}" for n in range(5)}
    state.remember("next", "cd" * 32, at)
    assert state.dirty_keys() == {"seenb|5"}
    restored = _restored(dict(changelog))
    seen = _logical(state)["seen"]
    assert isinstance(seen, dict)
    del seen["next"]  # recorded after the changelog was written
    assert _logical(restored)["seen"] == seen
    assert list(seen) == sorted(long_ids)


def test_block_numbers_go_on_from_the_highest_restored() -> None:
    fingerprint = "ab" * 32
    state = _restored({
        "seenb|4": b'{"seen":{"x":["' + fingerprint.encode() + b'",1793664000000000]}}',
        "seenb|7": None,  # a deleted block still counts: its number is not reused
        "seenb|2": b'{"seen":{"y":["' + fingerprint.encode() + b'",1793664000000001]}}',
    })
    assert state.all_keys() == {"seenb|4", "seenb|2"}
    # The horizon follows the newest restored event (2026-11-03T00:00:00.000001).
    horizon = datetime(2026, 11, 3, microsecond=1, tzinfo=UTC) - timedelta(days=35)
    assert state.is_late(horizon - timedelta(microseconds=1))
    assert not state.is_late(horizon)
    rate(event("z", quantity=1, at=datetime(2026, 11, 3, tzinfo=UTC)), ORIGIN, CATALOG, state,
         RATED_AT)
    assert "seenb|8" in state.dirty_keys()
    assert {"seenb|2", "seenb|4"}.isdisjoint(state.dirty_keys())


def test_a_deleted_block_takes_its_ids_out_at_restore() -> None:
    def block(*entries: tuple[str, int]) -> bytes:
        return json.dumps({"seen": {event_id: ["ab" * 32, event_us]
                                    for event_id, event_us in entries}}).encode()

    state = RatingState()
    state.load("seenb|0", block(("a", 1_000), ("b", 1_000)))
    state.load("seenb|1", block(("b", 9_000), ("c", 9_000)))  # "b" seen again, later
    state.load("seenb|0", None)
    assert not state.dedup.knows("a")
    assert state.dedup.knows("b")  # its newer block holds it
    assert state.dedup.knows("c")
    assert state.all_keys() == {"seenb|1"}


def test_an_old_record_of_an_id_seen_again_is_replaced_by_its_block() -> None:
    """What ``remember`` writes when an id of an older version's record comes back (its
    block, then the record's tombstone, one transaction), restored in that order."""
    state = RatingState()
    state.load("seen|d", json.dumps({"event_time": "1970-01-01T00:00:00.001000+00:00",
                                     "fingerprint": "cd" * 32}).encode())
    state.load("seen|e", json.dumps({"event_time": "1970-01-01T00:00:00.001000+00:00",
                                     "fingerprint": "cd" * 32}).encode())
    state.load("seenb|0", json.dumps({"seen": {"d": ["ab" * 32, 9_000]}}).encode())
    state.load("seen|d", None)
    state.load("seen|e", None)
    assert state.dedup.entry("d") == ("ab" * 32, 9_000)  # the block's, not deleted
    assert not state.dedup.knows("e")
    assert state.all_keys() == {"seenb|0"}


def test_one_id_records_of_an_older_version_restore_and_are_deleted_as_ids_go() -> None:
    """Changelogs written before blocks hold ``seen|<id>``: read, then deleted."""
    state = RatingState(dedup_window=timedelta(days=2))
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    old = event("old", quantity=1, at=t0)
    kept = event("kept", quantity=1, at=t0 + timedelta(days=1))
    changelog = [(f"seen|{legacy.event_id}",
                  json.dumps({"event_time": legacy.event_time.isoformat(),
                              "fingerprint": payload_fingerprint(legacy)}).encode())
                 for legacy in (old, kept)]
    for key, value in changelog:
        state.load(key, value)
    assert state.all_keys() == {"seen|old", "seen|kept"}
    assert rate(kept, ORIGIN, CATALOG, state, RATED_AT) == Skipped(DUPLICATE)
    assert state.dirty_keys() == set()
    # Three days on: "old" leaves the window and its record is deleted; "kept" stays.
    rate(event("new", quantity=1, at=t0 + timedelta(days=2, hours=12)), ORIGIN, CATALOG,
         state, RATED_AT)
    assert "seen|old" in state.dirty_keys()
    assert state.dump("seen|old") is None
    assert "seen|kept" not in state.dirty_keys()
    assert state.all_keys() == {"seen|kept", "seenb|0"}
    changelog += _written(state)
    # Seen again once out of the window: its new block has it, the old record goes.
    rate(event("later", quantity=1, at=t0 + timedelta(days=3, hours=1)), ORIGIN, CATALOG,
         state, RATED_AT)
    again = event("kept", quantity=2, at=t0 + timedelta(days=3, hours=2))
    assert isinstance(rate(again, ORIGIN, CATALOG, state, RATED_AT), Rated)
    assert "seen|kept" in state.dirty_keys()
    assert state.dump("seen|kept") is None
    assert "kept" in json.loads(state.dump("seenb|1") or b"")["seen"]
    changelog += _written(state)
    # The changelog as written, replayed in order, restores the same state.
    replayed = RatingState(dedup_window=timedelta(days=2))
    for key, value in changelog:
        replayed.load(key, value)
    assert _logical(replayed) == _logical(state)
    assert replayed.dedup.entry("kept") == state.dedup.entry("kept") is not None
    assert not replayed.dedup.knows("old")


def _written(state: RatingState) -> list[tuple[str, bytes | None]]:
    """A batch's changelog records, in the order the store writes them (sorted keys)."""
    records = [(key, state.dump(key)) for key in sorted(state.dirty_keys())]
    state.clear_dirty()
    return records


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
    state.load("seenb|3", b'{"seen":{"a|b":["' + b"cd" * 32 + b'",1793664000000000]}}')
    assert state.all_keys() == {"seenb|3"}
    state.load("seenb|3", None)
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
        ("seenb|one", b'{"seen":{"e":["' + b"ab" * 32 + b'",1]}}'),
        ("seenb|-1", b'{"seen":{"e":["' + b"ab" * 32 + b'",1]}}'),
        ("seenb|1", b"not json"),
        ("seenb|1", b"[]"),
        ("seenb|1", b'{"seen":{}}'),
        ("seenb|1", b'{"seen":["e"]}'),
        ("seenb|1", b'{"seen":{"e":["' + b"ab" * 32 + b'","1"]}}'),
        ("seenb|1", b'{"seen":{"e":["' + b"ab" * 32 + b'",1.5]}}'),
        ("seenb|1", b'{"seen":{"e":["' + b"ab" * 32 + b'"]}}'),
        ("seenb|1", b'{"seen":{"e":["zz",1]}}'),
        ("seenb|1", b'{"seen":{"e":["' + b"a_" * 32 + b'",1]}}'),
    ],
)
def test_unreadable_entries_raise_state_error(key: str, value: bytes) -> None:
    with pytest.raises(StateError):
        RatingState().load(key, value)
