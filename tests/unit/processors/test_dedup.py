import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from processors.dedup import (
    DEFAULT_WINDOW,
    DedupWindow,
    SeenEvent,
    Verdict,
    payload_fingerprint,
)
from tests.unit.processors.factories import event

T0 = datetime(2026, 11, 1, tzinfo=UTC)
F1, F2 = (hashlib.sha256(text.encode()).hexdigest() for text in ("one", "two"))


def test_fingerprint_is_deterministic_and_canonical() -> None:
    e = event(quantity=2, model="m")
    assert payload_fingerprint(e) == payload_fingerprint(event(model="m", quantity=2))
    assert payload_fingerprint(e) == payload_fingerprint(event(quantity=Decimal("2.00"), model="m"))
    same_instant = replace(e, event_time=e.event_time.astimezone(timezone(timedelta(hours=2))))
    assert payload_fingerprint(same_instant) == payload_fingerprint(e)
    assert len(payload_fingerprint(e)) == 64


def test_fingerprint_changes_with_every_field() -> None:
    e = event(quantity=2, model="m")
    variants = [
        replace(e, event_time=e.event_time + timedelta(milliseconds=1)),
        replace(e, service_item_type="Other"),
        replace(e, service_item_id="other"),
        replace(e, operation="Other"),
        replace(e, attributes={"quantity": Decimal(3), "model": "m"}),
        replace(e, attributes={"quantity": "2", "model": "m"}),  # text is not a number
        replace(e, requester="bob"),
        replace(e, home_ou="sales"),
        replace(e, source="other"),
        replace(e, account_id="proj-x"),
        replace(e, provider="acme"),
        replace(e, product="acme-basic"),
    ]
    prints = {payload_fingerprint(v) for v in variants}
    assert len(prints) == len(variants)
    assert payload_fingerprint(e) not in prints


def test_check_tells_new_duplicate_and_conflict() -> None:
    window = DedupWindow()
    assert window.check("a", F1) is Verdict.NEW
    window.record("a", F1, T0)
    assert window.check("a", F1) is Verdict.DUPLICATE
    assert window.check("a", F2) is Verdict.CONFLICT
    assert window.check("b", F1) is Verdict.NEW


def test_entries_expire_behind_the_newest_event_time() -> None:
    window = DedupWindow(timedelta(days=2))
    assert window.record("day0", F1, T0) == []
    assert window.record("day1", F1, T0 + timedelta(days=1)) == []
    # Newest is day 3, so the horizon is day 1: day 0 goes, day 1 stays.
    assert window.record("day3", F1, T0 + timedelta(days=3)) == ["day0"]
    assert window.horizon == T0 + timedelta(days=1)
    assert window.check("day0", F1) is Verdict.NEW
    assert window.check("day1", F1) is Verdict.DUPLICATE
    # An older event does not move the horizon back.
    assert window.record("late", F1, T0 + timedelta(days=2)) == []
    assert window.horizon == T0 + timedelta(days=1)


def test_default_window_is_35_days() -> None:
    assert DedupWindow().window == DEFAULT_WINDOW
    assert DEFAULT_WINDOW.days == 35


def test_an_id_behind_the_horizon_is_forgotten_at_once_and_dropped_by_the_minute() -> None:
    window = DedupWindow(timedelta(hours=1))
    window.record("a", F1, T0 + timedelta(seconds=10))
    window.record("b", F1, T0 + timedelta(seconds=50))
    # The horizon moves to T0 + 30 s: "a" is out of the window, "b" is not.
    assert window.record("c", F1, T0 + timedelta(hours=1, seconds=30)) == []
    assert window.check("a", F1) is Verdict.NEW  # exact: not a duplicate any more
    assert window.check("b", F1) is Verdict.DUPLICATE
    assert sorted(window.ids()) == ["a", "b", "c"]  # their minute is not over: still held
    # The horizon passes the end of their minute: "a" goes (a tombstone), "b" too.
    assert window.record("d", F1, T0 + timedelta(hours=1, seconds=61)) == ["a", "b"]
    assert sorted(window.ids()) == ["c", "d"]


def test_an_id_put_again_with_a_newer_time_stays_when_its_old_minute_goes() -> None:
    window = DedupWindow(timedelta(hours=1))
    window.record("a", F1, T0)
    window.put("a", SeenEvent(F2, T0 + timedelta(minutes=30)))  # e.g. a replayed changelog
    assert window.record("b", F1, T0 + timedelta(hours=1, minutes=5)) == []
    assert window.check("a", F2) is Verdict.DUPLICATE
    window.remove("a")
    assert window.record("c", F1, T0 + timedelta(hours=2)) == []  # removed: no tombstone


def test_entries_are_kept_exactly() -> None:
    window = DedupWindow()
    moment = datetime(2026, 11, 1, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    window.record("a", F1, moment)
    assert window.get("a") == SeenEvent(F1, moment)  # as given, until the batch is written
    window.forget_recent()
    seen = window.get("a")  # unpacked: the same instant, to the microsecond, in UTC
    assert seen == SeenEvent(F1, moment)
    assert seen is not None
    assert seen.event_time.tzinfo is UTC
    window.put("b", SeenEvent(F2.upper(), moment))
    assert window.check("b", F2) is Verdict.DUPLICATE


@pytest.mark.parametrize("fingerprint", ["f", F1[:-1], F1 + "0", "0x" + F1[2:],
                                         "+" + F1[1:], " " + F1[1:], F1[:10] + "_" + F1[11:],
                                         "g" * 64])
def test_anything_but_a_sha256_hex_digest_is_refused(fingerprint: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        DedupWindow().put("a", SeenEvent(fingerprint, T0))
