"""Dedup, then quota, then rating, on the example catalog (config/catalog)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from processors.catalog import load_catalog_dir
from processors.catalog.model import MissingPolicy
from processors.dedup import micros_since_epoch
from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, UsageEvent
from processors.pipeline import EventOutcome, PartitionState, process_event

CATALOG = load_catalog_dir(Path(__file__).resolve().parents[3] / "config" / "catalog")
START = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def event(item_type: str, item_id: str, operation: str, minute: int, home_ou: str = "eng/platform",
          **attributes: object) -> UsageEvent:
    typed = {k: Decimal(v) if isinstance(v, int) else str(v) for k, v in attributes.items()}
    return UsageEvent(event_id=f"{item_id}-{operation}-{minute}",
                      event_time=START + timedelta(minutes=minute),
                      service_item_type=item_type, service_item_id=item_id, operation=operation,
                      attributes=typed, requester="alice", home_ou=home_ou, source="test")


def vm(item_id: str, operation: str, minute: int, vcpu: int = 4,
       home_ou: str = "eng/platform") -> UsageEvent:
    return event("VirtualMachine", item_id, operation, minute, home_ou, vcpu=vcpu,
                 memory_gb=16, region="us-east", os="linux")


def run(item: UsageEvent, state: PartitionState, offset: int = 0) -> EventOutcome:
    return process_event(item, Origin("t", 0, offset), CATALOG, state, NOW)


def snapshot(state: PartitionState) -> dict[str, bytes | None]:
    return {key: state.dump(key) for key in state.all_keys()}


def test_the_ninth_vm_of_eng_platform_is_blocked_and_never_billed() -> None:
    state = PartitionState()
    for n in range(8):  # eng-platform allows 8 VMs and 32 vCPU
        assert run(vm(f"vm-{n}", "Create", n), state).rated is not None
    before = snapshot(state)
    outcome = run(vm("vm-8", "Create", 8), state)
    assert outcome.rated is None
    assert outcome.quota_rejection is not None
    assert outcome.quota_rejection.reason is ReasonCode.QUOTA_EXCEEDED
    assert outcome.quota_rejection.details["agreement"] == "eng-platform"
    assert outcome.alerts == ()
    # Nothing counted; only the blocked instance is remembered, for its follow-ups.
    blocked = "qi|acct-eng|VirtualMachine|vm-8"
    assert {k: v for k, v in snapshot(state).items() if k != blocked} == before
    assert json.loads(state.dump(blocked) or b"") == {
        "gone": "blocked", "at": micros_since_epoch(vm("vm-8", "Create", 8).event_time)}


def test_a_blocked_event_published_again_after_a_release_gets_through() -> None:
    state = PartitionState()
    for n in range(8):
        run(vm(f"vm-{n}", "Create", n), state)
    blocked = vm("vm-8", "Create", 8)
    assert run(blocked, state).quota_rejection is not None
    assert run(vm("vm-0", "Delete", 9), state).skipped == "not_billable"
    retried = run(blocked, state)  # same id: it was never accepted, so not a duplicate
    assert retried.rated is not None
    assert retried.rated.net_amount == Decimal("100.00")  # VM-STD 25.00 x 4 vCPU


def test_a_republished_delete_is_a_duplicate_a_second_delete_is_refused() -> None:
    state = PartitionState()
    run(vm("vm-1", "Create", 1), state)
    delete = vm("vm-1", "Delete", 2)
    assert run(delete, state).skipped == "not_billable"
    assert run(delete, state).skipped == "duplicate"
    second = run(replace(delete, event_id="another-delete"), state).quota_rejection
    assert second is not None
    assert second.reason is ReasonCode.RELEASED_INSTANCE


def test_a_republished_create_is_skipped_before_quota_counts_it_again() -> None:
    state = PartitionState()
    create = vm("vm-1", "Create", 1)
    assert run(create, state).rated is not None
    before = snapshot(state)
    assert run(create, state).skipped == "duplicate"
    assert snapshot(state) == before


def test_a_rating_rejection_leaves_the_quota_untouched() -> None:
    # data-main limits Storage size_gb; the standard storage table has no 'nvme' row.
    state = PartitionState()
    before = snapshot(state)
    nvme = event("Storage", "vol-1", "Create", 1, home_ou="eng/data", size_gb=10, tier="nvme",
                 region="us-east")
    with pytest.raises(EventRejected) as rejected:
        run(nvme, state)
    assert rejected.value.reason is ReasonCode.NO_RATE_ROW
    assert snapshot(state) == before


def test_an_item_without_a_quota_is_rated_with_the_reason_on_the_record() -> None:
    # eng-main limits only VMs and lets other quota-managed items through, counted.
    state = PartitionState()
    disk = event("HardDisk", "hd-1", "Order", 1, quantity=2, model="hgst-8tb")
    outcome = run(disk, state)
    assert outcome.rated is not None
    assert (outcome.rated.net_amount, outcome.rated.quota_note) == (Decimal("20.00"), "NO_QUOTA")


def test_an_account_without_agreement_is_rated_and_says_so() -> None:
    state = PartitionState()
    outcome = run(vm("vm-s", "Create", 1, home_ou="sales/emea"), state)
    assert outcome.rated is not None
    assert outcome.rated.quota_note == "NO_AGREEMENT"


def test_an_account_without_agreement_is_rejected_when_the_policy_says_so() -> None:
    state = PartitionState()
    outcome = process_event(vm("vm-s", "Create", 1, home_ou="sales/emea"), Origin("t", 0, 0),
                            CATALOG, state, NOW, no_agreement=MissingPolicy.REJECT)
    assert outcome.rated is None
    assert outcome.quota_rejection is not None
    assert outcome.quota_rejection.reason is ReasonCode.NO_AGREEMENT
    assert state.all_keys() == {"qi|acct-sales|VirtualMachine|vm-s"}  # blocked: remembered


def test_alerts_come_with_the_rated_event_that_crossed_the_threshold() -> None:
    state = PartitionState()
    run(vm("vm-1", "Create", 1, vcpu=8), state)
    crossing = run(vm("vm-2", "Create", 2, vcpu=8), state)  # 16 of 32 vCPU: 50 %
    assert crossing.rated is not None
    assert [(a.agreement_id, a.quota_id, a.threshold_percent, a.action, a.used, a.limit)
            for a in crossing.alerts] == [
        ("eng-platform", "VirtualMachine:sum:vcpu", 50, "notify", Decimal(16), Decimal(32))]


def test_a_quota_sum_too_large_for_exact_arithmetic_is_rejected_not_a_crash() -> None:
    # The quota decision comes before rating, so its arithmetic needs the same guard as
    # rating's: data-main's used + requested size_gb beyond 60 digits is a rejection with
    # a reason, not an exception that stops the rater, and not a rounded sum.
    state = PartitionState()
    assert run(event("Storage", "vol-1", "Create", 1, home_ou="eng/data", size_gb=5,
                     tier="ssd"), state).rated is not None
    before = snapshot(state)
    tiny = event("Storage", "vol-2", "Create", 2, home_ou="eng/data", size_gb=1,
                 tier="ssd")
    tiny.attributes["size_gb"] = Decimal("0." + "0" * 59 + "1")  # 60 decimals: 5 + it is 61
    with pytest.raises(EventRejected) as raised:
        run(tiny, state)
    assert raised.value.reason is ReasonCode.BAD_ATTRIBUTE
    assert "event vol-2-Create-2: an amount" in raised.value.message
    assert snapshot(state) == before


def test_an_event_far_ahead_of_the_clock_is_rejected_and_moves_no_horizon() -> None:
    # Found by review: one event dated a year ahead, once rated, moved the partition's
    # dedup horizon a year ahead, and every ordinary event after it was parked as late.
    state = PartitionState()
    ahead = vm("vm-1", "Create", 0)
    ahead.event_time = NOW + timedelta(days=365)
    with pytest.raises(EventRejected) as raised:
        run(ahead, state)
    assert raised.value.reason is ReasonCode.INVALID_EVENT
    assert raised.value.message.startswith(
        "event vm-1-Create-0: event_time 2027-11-03T12:00:00+00:00 is more than 1:00:00 "
        "ahead of the processor's clock (2026-11-03T12:00:00+00:00)")
    assert snapshot(state) == {}
    assert not state.is_late(START)
    assert run(vm("vm-2", "Create", 1), state).rated is not None


def test_an_event_a_little_ahead_of_the_clock_is_rated() -> None:
    soon = vm("vm-1", "Create", 0)
    soon.event_time = NOW + timedelta(minutes=59)  # a publisher's clock a little fast
    assert run(soon, PartitionState()).rated is not None
