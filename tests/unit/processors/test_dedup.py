from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from processors.dedup import DEFAULT_WINDOW, DedupWindow, Verdict, payload_fingerprint
from tests.unit.processors.factories import event

T0 = datetime(2026, 11, 1, tzinfo=UTC)


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
    assert window.check("a", "f1") is Verdict.NEW
    window.record("a", "f1", T0)
    assert window.check("a", "f1") is Verdict.DUPLICATE
    assert window.check("a", "f2") is Verdict.CONFLICT
    assert window.check("b", "f1") is Verdict.NEW


def test_entries_expire_behind_the_newest_event_time() -> None:
    window = DedupWindow(timedelta(days=2))
    assert window.record("day0", "f", T0) == []
    assert window.record("day1", "f", T0 + timedelta(days=1)) == []
    # Newest is day 3, so the horizon is day 1: day 0 goes, day 1 stays.
    assert window.record("day3", "f", T0 + timedelta(days=3)) == ["day0"]
    assert window.horizon == T0 + timedelta(days=1)
    assert window.check("day0", "f") is Verdict.NEW
    assert window.check("day1", "f") is Verdict.DUPLICATE
    # An older event does not move the horizon back.
    assert window.record("late", "f", T0 + timedelta(days=2)) == []
    assert window.horizon == T0 + timedelta(days=1)


def test_default_window_is_35_days() -> None:
    assert DedupWindow().window == DEFAULT_WINDOW
    assert DEFAULT_WINDOW.days == 35
