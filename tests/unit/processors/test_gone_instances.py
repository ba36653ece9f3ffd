"""Instances an account does not hold: never seen, blocked by quota, or deleted.

Quota remembers a blocked or deleted instance for the dedup window after its latest
event (its ``qi|`` entry holds ``gone``, ``processors/quota/state.py``), which tells them apart
from an instance it has never seen (one that predates quota tracking). Hand-checked on
the example catalog: eng/platform may hold 8 VMs (``eng-platform``), data-main 10,000 GB
of storage.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from processors.errors import ReasonCode
from processors.events import Origin, UsageEvent
from processors.pipeline import EventOutcome, PartitionState, process_event
from processors.quota import InstanceKey, UsageKey
from processors.quota.model import BLOCKED, RELEASED, WITHDRAWN, UnknownInstances
from tests.unit.processors.test_pipeline import CATALOG, NOW, event, run, vm

VM_COUNT = "VirtualMachine:count"
VM_VCPU = "VirtualMachine:sum:vcpu"


def platform_used(state: PartitionState, quota: str = VM_COUNT) -> Decimal:
    return state.quota.usage(UsageKey("acct-eng", "eng-platform", quota)).used


def gone_kind(state: PartitionState, item_id: str, item: str = "VirtualMachine",
              account: str = "acct-eng") -> str | None:
    gone = state.quota.gone(InstanceKey(account, item, item_id))
    return None if gone is None else gone.kind


def refused(outcome: EventOutcome) -> ReasonCode | None:
    assert outcome.rated is None
    return None if outcome.quota_rejection is None else outcome.quota_rejection.reason


def adopting(item: UsageEvent, state: PartitionState) -> EventOutcome:
    """``run`` with the setting ``processor.unknown_instances: adopt``."""
    return process_event(item, Origin("t", 0, 0), CATALOG, state, NOW,
                         unknown_instances=UnknownInstances.ADOPT)


def full_platform() -> PartitionState:
    """eng/platform holding its 8 VMs (vm-0 .. vm-7, 4 vCPU each: 32 of 32)."""
    state = PartitionState()
    for n in range(8):
        assert run(vm(f"vm-{n}", "Create", n), state).rated is not None
    return state


def test_by_default_a_resize_or_delete_of_an_instance_never_seen_is_refused() -> None:
    state = PartitionState()
    assert refused(run(vm("vm-old", "Resize", 1, vcpu=6), state)) is \
        ReasonCode.UNKNOWN_INSTANCE
    assert state.all_keys() == set()  # nothing counted, nothing remembered
    assert refused(run(vm("vm-old", "Delete", 2), state)) is ReasonCode.UNKNOWN_INSTANCE
    # Nothing counted; the delete is remembered (a create delivered after it holds nothing).
    assert state.all_keys() == {"qi|acct-eng|VirtualMachine|vm-old"}
    assert gone_kind(state, "vm-old") == RELEASED


def test_a_resize_of_an_instance_never_seen_adopts_it_and_is_billed() -> None:
    state = PartitionState()
    outcome = adopting(vm("vm-old", "Resize", 1, vcpu=6), state)
    assert outcome.rated is not None
    assert outcome.rated.quota_note == "UNKNOWN_INSTANCE"
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (1, 6)
    assert adopting(vm("vm-old", "Resize", 2, vcpu=2), state).rated is not None
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (1, 2)
    assert adopting(vm("vm-old", "Delete", 3), state).skipped == "not_billable"
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (0, 0)
    assert gone_kind(state, "vm-old") == RELEASED


def test_an_adoption_that_does_not_fit_is_blocked_and_not_remembered() -> None:
    state = full_platform()
    resize = vm("vm-old", "Resize", 8, vcpu=1)
    assert refused(adopting(resize, state)) is ReasonCode.QUOTA_EXCEEDED
    assert gone_kind(state, "vm-old") is None  # it exists: a later resize may fit
    assert run(vm("vm-0", "Delete", 9), state).skipped == "not_billable"
    assert adopting(vm("vm-old", "Resize", 10, vcpu=4), state).rated is not None
    assert platform_used(state) == 8


def test_every_follow_up_of_a_blocked_create_is_refused_and_never_billed() -> None:
    state = full_platform()
    assert refused(run(vm("vm-8", "Create", 8), state)) is ReasonCode.QUOTA_EXCEEDED
    assert gone_kind(state, "vm-8") == BLOCKED
    assert refused(run(vm("vm-8", "Resize", 9, vcpu=2), state)) is ReasonCode.BLOCKED_INSTANCE
    assert run(vm("vm-8", "Start", 10), state).skipped == "not_billable"  # billed nothing
    assert refused(run(vm("vm-8", "Delete", 11), state)) is ReasonCode.BLOCKED_INSTANCE
    assert gone_kind(state, "vm-8") == WITHDRAWN  # blocked, then deleted
    assert refused(run(vm("vm-8", "Resize", 12), state)) is ReasonCode.RELEASED_INSTANCE
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (8, 32)


def test_a_snapshot_of_a_blocked_volume_is_not_billed() -> None:
    state = PartitionState()
    volume = event("Storage", "vol-1", "Create", 1, home_ou="eng/data", size_gb=20_000,
                   tier="ssd", region="us-east")
    assert refused(run(volume, state)) is ReasonCode.QUOTA_EXCEEDED
    snapshot = event("Storage", "vol-1", "Snapshot", 2, home_ou="eng/data")
    assert refused(run(snapshot, state)) is ReasonCode.BLOCKED_INSTANCE
    other = event("Storage", "vol-2", "Snapshot", 3, home_ou="eng/data")
    assert run(other, state).rated is not None  # not blocked: rated as before


def test_a_blocked_create_retried_once_quota_is_free_takes_the_instance() -> None:
    state = full_platform()
    blocked = vm("vm-8", "Create", 8)
    assert refused(run(blocked, state)) is ReasonCode.QUOTA_EXCEEDED
    assert run(vm("vm-0", "Delete", 9), state).skipped == "not_billable"
    assert run(blocked, state).rated is not None
    assert gone_kind(state, "vm-8") is None
    assert run(vm("vm-8", "Resize", 10, vcpu=2), state).rated is not None
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (8, 30)


def test_a_resize_replayed_after_the_delete_takes_no_quota() -> None:
    # The slot leak adoption alone would have: a resize of an instance never seen is
    # blocked, the instance is deleted, the resize is replayed once quota is free.
    state = full_platform()
    resize = vm("vm-x", "Resize", 8, vcpu=1)
    assert refused(adopting(resize, state)) is ReasonCode.QUOTA_EXCEEDED
    assert adopting(vm("vm-x", "Delete", 9), state).skipped == "not_billable"
    assert run(vm("vm-0", "Delete", 10), state).skipped == "not_billable"
    assert refused(adopting(resize, state)) is ReasonCode.RELEASED_INSTANCE
    assert platform_used(state) == 7


def test_a_create_replayed_after_its_delete_is_billed_and_holds_nothing() -> None:
    state = PartitionState()
    create = vm("vm-8", "Create", 8)
    assert run(create, state).rated is not None
    assert run(vm("vm-8", "Delete", 9), state).skipped == "not_billable"
    replayed = run(replace(create, event_id="vm-8-create-again"), state)  # replayed late
    assert replayed.rated is not None
    assert replayed.rated.quota_note == "RELEASED_INSTANCE"
    assert replayed.rated.net_amount == Decimal("100.00")  # VM-STD 25.00 x 4 vCPU
    assert platform_used(state) == 0  # the instance is gone: it holds nothing
    assert gone_kind(state, "vm-8") == RELEASED


def test_a_blocked_create_replayed_after_its_delete_stays_refused() -> None:
    state = full_platform()
    blocked = vm("vm-8", "Create", 8)
    assert refused(run(blocked, state)) is ReasonCode.QUOTA_EXCEEDED
    assert refused(run(vm("vm-8", "Delete", 9), state)) is ReasonCode.BLOCKED_INSTANCE
    assert run(vm("vm-0", "Delete", 10), state).skipped == "not_billable"
    # e.g. by an operator from usage.rejected: still the create quota refused, never billed
    assert refused(run(blocked, state)) is ReasonCode.BLOCKED_INSTANCE
    assert platform_used(state) == 7
    assert gone_kind(state, "vm-8") == WITHDRAWN
    assert run(vm("vm-8", "Create", 11), state).rated is not None  # an id used again


def test_a_create_older_than_its_instance_s_delete_must_still_fit() -> None:
    # vm-1 lived and was deleted at minute 20; another create of it stamped minute 5
    # arrives after that, when eng/platform is full: blocked, as any create that does
    # not fit, though it would hold nothing.
    state = PartitionState()
    run(vm("vm-1", "Create", 1), state)
    for n in range(2, 9):
        run(vm(f"vm-{n}", "Create", n), state)
    assert run(vm("vm-1", "Delete", 20), state).skipped == "not_billable"
    assert run(vm("vm-9", "Create", 21), state).rated is not None  # 8 of 8 again
    assert refused(run(vm("vm-1", "Create", 5), state)) is ReasonCode.QUOTA_EXCEEDED
    assert run(vm("vm-2", "Delete", 22), state).skipped == "not_billable"
    late_create = run(vm("vm-1", "Create", 5), state)  # fits now: billed, holds nothing
    assert late_create.rated is not None
    assert late_create.rated.quota_note == "RELEASED_INSTANCE"
    assert platform_used(state) == 7
    assert gone_kind(state, "vm-1") == RELEASED


def test_an_id_used_again_after_its_delete_is_a_new_instance() -> None:
    state = PartitionState()
    run(vm("vm-1", "Create", 1), state)
    run(vm("vm-1", "Delete", 2), state)
    again = run(vm("vm-1", "Create", 3, vcpu=2), state)
    assert again.rated is not None
    assert again.rated.quota_note is None
    assert (platform_used(state), platform_used(state, VM_VCPU)) == (1, 2)
    assert gone_kind(state, "vm-1") is None
    held = json.loads(state.dump("qi|acct-eng|VirtualMachine|vm-1") or b"")
    assert set(held) == {"holds"}  # the entry says "held" again, not "gone"


def test_remembered_instances_are_forgotten_once_out_of_the_dedup_window() -> None:
    state = PartitionState(dedup_window=timedelta(minutes=30))
    run(vm("vm-1", "Create", 1), state)
    run(vm("vm-1", "Delete", 2), state)
    run(vm("vm-2", "Create", 20), state)  # horizon: minute -10
    assert gone_kind(state, "vm-1") == RELEASED
    state.clear_dirty()
    run(vm("vm-3", "Create", 40), state)  # horizon: minute 10, past the delete
    key = "qi|acct-eng|VirtualMachine|vm-1"
    assert key in state.dirty_keys()
    assert state.dump(key) is None
    assert key not in state.all_keys()
    adopted = adopting(vm("vm-1", "Resize", 41), state)  # a stranger now: adopted
    assert adopted.rated is not None
    assert adopted.rated.quota_note == "UNKNOWN_INSTANCE"


def test_each_refused_follow_up_keeps_a_blocked_instance_remembered() -> None:
    state = PartitionState(dedup_window=timedelta(minutes=30))
    for n in range(8):
        run(vm(f"vm-{n}", "Create", n), state)
    assert refused(run(vm("vm-8", "Create", 8), state)) is ReasonCode.QUOTA_EXCEEDED
    assert refused(run(vm("vm-8", "Resize", 30), state)) is ReasonCode.BLOCKED_INSTANCE
    run(vm("vm-9", "Create", 50, home_ou="eng/data"), state)  # horizon: minute 20
    assert refused(run(vm("vm-8", "Resize", 51), state)) is ReasonCode.BLOCKED_INSTANCE


def test_a_restored_state_remembers_the_same_instances() -> None:
    state = full_platform()
    run(vm("vm-8", "Create", 8), state)  # blocked
    run(vm("vm-0", "Delete", 9), state)  # released
    copy = PartitionState()
    for key in state.all_keys():
        copy.load(key, state.dump(key))
    assert copy.quota.gone_instances() == state.quota.gone_instances()
    assert {gone.kind for gone in copy.quota.gone_instances().values()} == {BLOCKED, RELEASED}
    outcomes = []
    for later in (vm("vm-8", "Resize", 10), vm("vm-0", "Resize", 11), vm("vm-9", "Create", 12)):
        outcome = summary(run(later, copy))
        assert outcome == summary(run(later, state))
        outcomes.append(outcome[1] or outcome[0] is not None)
    assert outcomes == [ReasonCode.BLOCKED_INSTANCE, ReasonCode.RELEASED_INSTANCE, True]


def summary(outcome: EventOutcome) -> tuple[object, ReasonCode | None, str | None]:
    rejection = outcome.quota_rejection
    return (outcome.rated, None if rejection is None else rejection.reason,
            None if rejection is None else rejection.message)
