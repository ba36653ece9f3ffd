"""Remembered instances under re-sent, replayed and out-of-order events (a review's cases).

Example catalog: eng/platform may hold 8 VMs / 32 vCPU (eng-platform), eng/data is
acct-data (data-main: 20 VMs, 64 vCPU, 10,000 GB of storage), sales has no agreement.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest

from processors.catalog.model import MissingPolicy
from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, UsageEvent
from processors.pipeline import EventOutcome, PartitionState, process_event
from processors.quota import UsageKey
from processors.quota.model import UnknownInstances
from tests.unit.processors.test_gone_instances import (
    adopting,
    full_platform,
    platform_used,
    refused,
)
from tests.unit.processors.test_pipeline import CATALOG, NOW, event, run, vm


def storage(item_id: str, operation: str, minute: int, **attributes: object) -> UsageEvent:
    return event("Storage", item_id, operation, minute, home_ou="eng/data", **attributes)


# -- 1. A blocked create turns billable once its (refused) delete has been seen --------

def test_a_blocked_create_resent_after_its_delete_is_not_billed_while_quota_is_full() -> None:
    state = full_platform()  # 8 of 8 VMs
    create = vm("vm-8", "Create", 8)
    assert refused(run(create, state)) is ReasonCode.QUOTA_EXCEEDED
    assert refused(run(vm("vm-8", "Delete", 9), state)) is ReasonCode.BLOCKED_INSTANCE
    again = run(create, state)  # the publisher's retry, or an operator's replay
    # Base: rated, 100.00 USD, quota_note RELEASED_INSTANCE, with eng/platform still 8/8.
    assert again.rated is None, "a create refused by quota is billed once its delete is seen"
    assert refused(again) is ReasonCode.BLOCKED_INSTANCE
    assert platform_used(state) == 8


def test_a_create_refused_for_no_agreement_stays_unbilled_after_its_delete() -> None:
    state = PartitionState()

    def go(item: UsageEvent) -> EventOutcome:
        return process_event(item, Origin("t", 0, 0), CATALOG, state, NOW,
                             no_agreement=MissingPolicy.REJECT)

    create = vm("vm-s", "Create", 1, home_ou="sales/emea")
    assert refused(go(create)) is ReasonCode.NO_AGREEMENT
    assert refused(go(vm("vm-s", "Delete", 2, home_ou="sales/emea"))) is not None
    # Base: billed (quota_note RELEASED_INSTANCE) although the policy rejects the account.
    assert go(create).rated is None


def test_a_snapshot_of_a_blocked_volume_resent_after_its_delete_is_not_billed() -> None:
    state = PartitionState()
    create = storage("vol-1", "Create", 1, size_gb=20_000, tier="ssd", region="us-east")
    assert refused(run(create, state)) is ReasonCode.QUOTA_EXCEEDED
    snapshot = storage("vol-1", "Snapshot", 2)
    assert refused(run(snapshot, state)) is ReasonCode.BLOCKED_INSTANCE
    assert refused(run(storage("vol-1", "Delete", 3), state)) is ReasonCode.BLOCKED_INSTANCE
    # Base: the same snapshot, re-sent, is now rated (the delete turned "blocked" into
    # "released", and only blocked instances refuse operations without a quota effect).
    assert run(snapshot, state).rated is None


# -- 2. Same event time: a delete delivered before its create leaks the slot ------------

def test_a_create_as_old_as_the_delete_delivered_before_it_holds_nothing() -> None:
    # A failed provisioning rolled back within the publisher's clock resolution: create
    # and delete carry the same event time; the delete is delivered first.
    state = PartitionState()
    delete, create = vm("vm-1", "Delete", 5), vm("vm-1", "Create", 5)
    assert adopting(delete, state).skipped == "not_billable"  # never seen: nothing back
    assert adopting(create, state).rated is not None
    # Base: the create takes the instance anew (its time is not < the delete's), and
    # nothing will ever release it: eng/platform keeps 1 VM / 4 vCPU for good.
    assert platform_used(state) == 0
    assert state.quota.instances() == {}


def test_a_blocked_create_as_old_as_its_delete_takes_no_slot_when_retried() -> None:
    state = full_platform()
    create = vm("vm-8", "Create", 8)
    assert refused(run(create, state)) is ReasonCode.QUOTA_EXCEEDED
    run(vm("vm-8", "Delete", 8), state)  # same minute
    assert run(vm("vm-0", "Delete", 9), state).skipped == "not_billable"  # room for one
    run(create, state)  # retried
    assert platform_used(state) == 7  # base: 8, vm-8 holds the freed slot for good


# -- 3. A refused follow-up moves the "release" time: a later create holds nothing ----

def test_a_create_after_the_delete_is_counted_even_after_a_later_refused_resize() -> None:
    # vm-1 deleted at minute 10; the id is used again: created at 15, resized at 20; the
    # resize is delivered before the create (out of order).
    state = PartitionState()
    run(vm("vm-1", "Create", 1), state)
    run(vm("vm-1", "Delete", 10), state)
    assert refused(run(vm("vm-1", "Resize", 20, vcpu=2), state)) is ReasonCode.RELEASED_INSTANCE
    again = run(vm("vm-1", "Create", 15, vcpu=6), state)
    assert again.rated is not None
    # Base: quota_note RELEASED_INSTANCE and nothing held: a live 6-vCPU VM is never
    # counted (the refused resize pushed the entry's "at" past the create).
    assert again.rated.quota_note is None
    assert platform_used(state) == 1
    assert platform_used(state, "VirtualMachine:sum:vcpu") == 6


# -- 4. Adoption across accounts: a slot held for good ----------------------------------

def test_by_default_a_resize_by_a_requester_of_another_account_does_not_leak() -> None:
    # alice (eng/platform, acct-eng) creates and deletes vm-1; bob (eng/data, acct-data)
    # resizes it in between. Adopted, acct-data would hold vm-1 for good: the delete
    # releases acct-eng's copy only (why unknown_instances defaults to reject).
    state = PartitionState()
    run(vm("vm-1", "Create", 1), state)
    resize = run(vm("vm-1", "Resize", 2, vcpu=8, home_ou="eng/data"), state)
    assert refused(resize) is ReasonCode.UNKNOWN_INSTANCE
    run(vm("vm-1", "Delete", 3), state)
    data = UsageKey("acct-data", "data-main", "VirtualMachine:count")
    assert state.quota.usage(data).used == 0
    assert platform_used(state) == 0


# -- 5. Restore equivalence (passes: evidence, not a finding) ---------------------------

def _step(item: UsageEvent, state: PartitionState, unknown: UnknownInstances) -> object:
    if state.is_late(item.event_time):
        return "late"
    try:
        outcome = process_event(item, Origin("t", 0, 0), CATALOG, state, NOW,
                                unknown_instances=unknown)
    except EventRejected as rejection:
        return rejection.reason
    return (None if outcome.rated is None else (outcome.rated.net_amount,
                                                outcome.rated.quota_note),
            outcome.skipped,
            None if outcome.quota_rejection is None else outcome.quota_rejection.reason)


@pytest.mark.parametrize("unknown", list(UnknownInstances))
def test_a_state_restored_from_the_changelog_decides_as_the_original(
        unknown: UnknownInstances) -> None:
    step = partial(_step, unknown=unknown)
    seq = itertools.count()
    for seed in range(60):
        rng = random.Random(seed)
        window = timedelta(minutes=rng.choice([5, 10, 20]))
        events: list[UsageEvent] = []
        for n in range(rng.randint(3, 12)):
            t = rng.randint(0, 60)
            for op in rng.choices(["Create", "Resize", "Delete", "Snap"], k=rng.randint(1, 5)):
                t += rng.randint(0, 8)
                if op == "Snap":
                    events.append(storage(f"v-{n}", rng.choice(["Create", "Snapshot", "Delete"]),
                                          t, size_gb=rng.choice([100, 20_000]), tier="ssd",
                                          region="us-east"))
                else:
                    events.append(vm(f"vm-{n}", op, t, vcpu=rng.randint(1, 6),
                                     home_ou=rng.choice(["eng/platform", "eng/data"])))
        events = [replace(e, event_id=f"{e.event_id}-{next(seq)}") for e in events]
        rng.shuffle(events)
        events += rng.sample(events, k=len(events) // 2)  # re-sent, refused or not
        assert_restored_decides_alike(events, rng, window, step, seed)


def assert_restored_decides_alike(events: list[UsageEvent], rng: random.Random,
                                  window: timedelta,
                                  step: Callable[[UsageEvent, PartitionState], object],
                                  seed: int) -> None:
    """Process ``events``, ending a batch at random (its dirty keys to a log, as the
    changelog gets them); now and then a copy restored from the log joins, and must
    decide every later event as the original does and hold the same quota."""
    state, copy = PartitionState(dedup_window=window), None
    log: list[tuple[str, bytes | None]] = []
    for item in events:
        outcome = step(item, state)
        if copy is not None:
            assert step(item, copy) == outcome, (seed, item.event_id)
        if rng.random() < 0.3:  # end of a batch
            log += [(key, state.dump(key)) for key in sorted(state.dirty_keys())]
            state.clear_dirty()
            if copy is not None:
                copy.clear_dirty()
            if rng.random() < 0.3:
                copy = PartitionState(dedup_window=window)
                for key, value in log:
                    copy.load(key, value)
                copy.clear_dirty()
                assert copy.quota.instances() == state.quota.instances(), seed
                assert copy.quota.usages() == state.quota.usages(), seed
