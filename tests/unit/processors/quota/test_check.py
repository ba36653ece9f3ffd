"""The quota decision on hand-checked numbers (the seed's VM example)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from processors.catalog.model import MissingPolicy
from processors.errors import ReasonCode
from processors.quota import QuotaState, check_quota
from processors.quota.alerts import alert_id
from processors.quota.model import InstanceKey, UnknownInstances, UsageKey
from tests.unit.processors.quota.factories import (
    CATALOG,
    VM_COUNT,
    VM_VCPU,
    Clock,
    account_of,
    decide,
    run,
    usage,
    used,
)

ADOPT = UnknownInstances.ADOPT


def test_create_counts_one_vm_and_its_vcpus() -> None:
    state, clock = QuotaState(), Clock()
    decision = run(clock.event("Create", "vm-1", vcpu=4), state)
    assert decision.allowed
    assert decision.rejection is None
    assert decision.missing is None
    assert used(state, "eng", VM_COUNT) == 1
    assert used(state, "eng", VM_VCPU) == 4
    run(clock.event("Create", "vm-2", vcpu=2), state)
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (2, 6)


def test_sub_ou_consumption_counts_against_sub_and_master() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=3, home_ou="eng/platform/k8s"), state)
    run(clock.event("Create", "vm-2", vcpu=5, home_ou="eng/data"), state)
    assert (used(state, "eng-platform", VM_COUNT), used(state, "eng-platform", VM_VCPU)) == (1, 3)
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (2, 8)


def test_resize_changes_the_sum_by_the_difference_up_and_down() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4, home_ou="eng/platform"), state)
    run(clock.event("Resize", "vm-1", vcpu=7, home_ou="eng/platform"), state)
    assert used(state, "eng", VM_VCPU) == 7
    assert used(state, "eng-platform", VM_VCPU) == 7
    run(clock.event("Resize", "vm-1", vcpu=2, home_ou="eng/platform"), state)
    assert used(state, "eng", VM_VCPU) == 2
    assert used(state, "eng-platform", VM_VCPU) == 2
    assert used(state, "eng", VM_COUNT) == 1  # a resize is not a new instance
    # A resize that does not name vcpu leaves it as it was.
    run(clock.event("Resize", "vm-1", memory_gb=64, home_ou="eng/platform"), state)
    assert used(state, "eng", VM_VCPU) == 2


def test_delete_releases_what_the_instance_held_everywhere() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4, home_ou="eng/platform"), state)
    run(clock.event("Create", "vm-2", vcpu=1), state)
    run(clock.event("Resize", "vm-1", vcpu=6, home_ou="eng/platform"), state)
    decision = run(clock.event("Delete", "vm-1", home_ou="eng/platform"), state)
    assert decision.allowed
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (1, 1)
    assert (used(state, "eng-platform", VM_COUNT), used(state, "eng-platform", VM_VCPU)) == (0, 0)
    assert state.instance(InstanceKey("acct-eng", "VirtualMachine", "vm-1")) is None


def test_delete_releases_its_holdings_even_if_the_requester_moved() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4, home_ou="eng/platform"), state)
    run(clock.event("Delete", "vm-1", home_ou="eng/data"), state)
    assert state.usages() == {}


def test_delete_of_an_unknown_instance_is_rejected_and_changes_nothing() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4), state)
    before = state.usages()
    decision = run(clock.event("Delete", "vm-404"), state)
    assert not decision.allowed
    assert decision.rejection is not None
    assert decision.rejection.reason is ReasonCode.UNKNOWN_INSTANCE
    assert decision.rejection.details["service_item_id"] == "vm-404"
    assert state.usages() == before
    # Remembered as deleted all the same: its create delivered later holds nothing.
    assert state.all_keys() == {"qi|acct-eng|VirtualMachine|vm-1", "qu|acct-eng|eng|" + VM_COUNT,
                                "qu|acct-eng|eng|" + VM_VCPU, "qi|acct-eng|VirtualMachine|vm-404"}
    resize = decide(clock.event("Resize", "vm-404", vcpu=1), state)
    assert resize.rejection is not None
    assert resize.rejection.reason is ReasonCode.RELEASED_INSTANCE


def test_adopting_a_delete_of_an_unknown_instance_gives_nothing_back_and_is_remembered(
) -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=4), state)
    before = state.usages()
    decision = run(clock.event("Delete", "vm-404"), state, unknown_instances=ADOPT)
    assert decision.allowed
    assert decision.missing is ReasonCode.UNKNOWN_INSTANCE  # on the record
    assert state.usages() == before
    resize = decide(clock.event("Resize", "vm-404", vcpu=1), state, unknown_instances=ADOPT)
    assert resize.rejection is not None
    assert resize.rejection.reason is ReasonCode.RELEASED_INSTANCE
    assert resize.rejection.details["service_item_id"] == "vm-404"


def test_exactly_at_the_limit_is_allowed_one_over_is_blocked() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=12), state)
    at_limit = run(clock.event("Create", "vm-2", vcpu=8), state)  # 12 + 8 = 20 = the quota
    assert at_limit.allowed
    assert used(state, "eng", VM_VCPU) == 20
    before, dirty = state.usages(), state.dirty_keys()
    over = run(clock.event("Create", "vm-3", vcpu=1), state)
    assert not over.allowed
    assert over.alerts == ()
    assert over.change is not None
    assert over.change.usage == ()
    assert over.rejection is not None
    assert over.rejection.reason is ReasonCode.QUOTA_EXCEEDED
    assert over.rejection.details == {
        "agreement": "eng",
        "quota": VM_VCPU,
        "used": "20",
        "requested": "1",
        "limit": "20",
        "threshold_percent": "100",
    }
    assert state.usages() == before
    assert state.dirty_keys() == dirty | {"qi|acct-eng|VirtualMachine|vm-3"}
    assert state.instance(InstanceKey("acct-eng", "VirtualMachine", "vm-3")) is None


def test_resize_past_the_limit_is_blocked_resize_down_never_is() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "vm-1", vcpu=20), state)
    up = decide(clock.event("Resize", "vm-1", vcpu=21), state)
    assert up.rejection is not None
    assert up.rejection.details["requested"] == "1"
    assert run(clock.event("Resize", "vm-1", vcpu=3), state).allowed


def test_the_sub_agreement_blocks_while_the_master_has_room() -> None:
    state, clock = QuotaState(), Clock()
    for n in range(4):
        run(clock.event("Create", f"vm-{n}", vcpu=1, home_ou="eng/platform"), state)
    fifth = decide(clock.event("Create", "vm-5", vcpu=1, home_ou="eng/platform"), state)
    assert fifth.rejection is not None
    assert fifth.rejection.details["agreement"] == "eng-platform"
    assert fifth.rejection.details["quota"] == VM_COUNT
    # Outside the sub-OU, the master still has 6 VMs of room.
    assert decide(clock.event("Create", "vm-6", vcpu=1, home_ou="eng/data"), state).allowed


def test_the_master_blocks_a_sub_ou_when_others_used_it_up() -> None:
    state, clock = QuotaState(), Clock()
    run(clock.event("Create", "big", vcpu=19, home_ou="eng/data"), state)
    blocked = decide(clock.event("Create", "vm-1", vcpu=2, home_ou="eng/platform"), state)
    assert blocked.rejection is not None
    assert blocked.rejection.details["agreement"] == "eng"
    assert blocked.rejection.details["used"] == "19"


def test_a_threshold_fires_once_re_arms_below_and_fires_again() -> None:
    state, clock = QuotaState(), Clock()
    alerts = []
    for n in range(7):  # 7 VMs of 10: below 80 %
        alerts += run(clock.event("Create", f"vm-{n}", vcpu=1), state).alerts
    assert alerts == []
    eighth = run(clock.event("Create", "vm-7", vcpu=1), state)  # 8 of 10 = 80 %
    assert [(a.quota_id, a.threshold_percent, a.action) for a in eighth.alerts] == [
        (VM_COUNT, 80, "notify")
    ]
    assert run(clock.event("Create", "vm-8", vcpu=1), state).alerts == ()  # 9: already fired
    assert run(clock.event("Delete", "vm-8"), state).alerts == ()  # 8: still reached
    assert usage(state, "eng", VM_COUNT).fired == {80}
    assert run(clock.event("Delete", "vm-7"), state).alerts == ()  # 7: re-armed
    assert usage(state, "eng", VM_COUNT).fired == frozenset()
    again = run(clock.event("Create", "vm-9", vcpu=1), state)  # 8 again: fires again
    assert [(a.threshold_percent, a.used, a.limit) for a in again.alerts] == [
        (80, Decimal(8), Decimal(10))
    ]
    assert again.alerts[0].alert_id != eighth.alerts[0].alert_id


def test_reaching_the_block_threshold_alerts_with_action_block() -> None:
    state, clock = QuotaState(), Clock()
    decision = run(clock.event("Create", "vm-1", vcpu=20), state)
    assert [(a.quota_id, a.threshold_percent, a.action) for a in decision.alerts] == [
        (VM_VCPU, 80, "notify"),
        (VM_VCPU, 100, "block"),
    ]


def test_a_custom_policy_alerts_at_50_90_and_100_percent() -> None:
    state, clock = QuotaState(), Clock()
    fired = []
    for vcpu, name in ((4, "a"), (3, "b"), (1, "c")):  # 8 vCPU quota: 4 = 50 %, 7.2 = 90 %
        decision = run(clock.event("Create", name, vcpu=vcpu, home_ou="eng/platform"), state)
        fired.append(
            [
                a.threshold_percent
                for a in decision.alerts
                if (a.agreement_id, a.quota_id) == ("eng-platform", VM_VCPU)
            ]
        )
    assert fired == [[50], [], [90, 100]]


def test_alert_mirrors_the_schema_with_a_deterministic_id() -> None:
    state, clock = QuotaState(), Clock()
    for n in range(7):
        run(clock.event("Create", f"vm-{n}", vcpu=1), state)
    event = clock.event("Create", "vm-7", vcpu=1)
    raised = datetime(2026, 3, 2, tzinfo=UTC)
    first = check_quota(event, account_of(event), CATALOG, state, raised_at=raised)
    again = check_quota(event, account_of(event), CATALOG, state)
    alert = first.alerts[0]
    assert alert.alert_id == again.alerts[0].alert_id
    assert alert.alert_id == alert_id(UsageKey("acct-eng", "eng", VM_COUNT), 80, event.event_id)
    assert (alert.account_id, alert.agreement_id, alert.event_id) == ("acct-eng", "eng", "e-8")
    assert (alert.event_time, alert.raised_at) == (event.event_time, raised)
    assert again.alerts[0].raised_at == event.event_time


def test_no_agreement_is_allowed_and_tracked_under_the_allow_policy() -> None:
    state, clock = QuotaState(), Clock()
    event = clock.event("Create", "vm-1", vcpu=4, account_id="proj-x")
    decision = run(event, state)
    assert decision.allowed
    assert decision.missing is ReasonCode.NO_AGREEMENT
    assert decision.alerts == ()
    assert state.usages() == {}
    assert run(clock.event("Delete", "vm-1", account_id="proj-x"), state).allowed


def test_no_agreement_is_rejected_under_the_reject_policy() -> None:
    clock = Clock()
    event = clock.event("Create", "vm-1", vcpu=4, account_id="proj-x")
    decision = check_quota(
        event, account_of(event), CATALOG, QuotaState(), no_agreement=MissingPolicy.REJECT
    )
    assert decision.rejection is not None
    assert decision.rejection.reason is ReasonCode.NO_AGREEMENT
    assert decision.rejection.details == {"account_id": "proj-x"}


def test_no_quota_is_allowed_and_counted_when_the_agreement_allows_it() -> None:
    state, clock = QuotaState(), Clock()
    decision = run(clock.event("Create", "vm-1", vcpu=4, home_ou="sales"), state)
    assert decision.allowed
    assert decision.missing is ReasonCode.NO_QUOTA
    assert used(state, "sales", VM_COUNT, account="acct-sales") == 1
    assert used(state, "sales", VM_VCPU, account="acct-sales") == 4
    run(clock.event("Delete", "vm-1", home_ou="sales"), state)
    assert state.usages() == {}


def test_no_quota_is_rejected_by_default() -> None:
    clock = Clock()
    decision = decide(clock.event("Create", "vm-1", vcpu=4, home_ou="ops"), QuotaState())
    assert decision.rejection is not None
    assert decision.rejection.reason is ReasonCode.NO_QUOTA
    assert decision.rejection.details == {"agreement": "ops", "service_item_type": "VirtualMachine"}


def test_events_without_quota_effect_pass_through() -> None:
    state, clock = QuotaState(), Clock()
    for event in (
        clock.event("Create", "b-1", item="Bucket", stored_gb=5),  # nothing quota-managed
        clock.event("Start", "vm-1"),  # an operation that neither takes nor gives back
    ):
        decision = run(event, state)
        assert decision.allowed
        assert decision.change is None
        assert decision.missing is None
    assert state.all_keys() == set()


def test_count_quota_on_storage_blocks_the_second_instance() -> None:
    state, clock = QuotaState(), Clock()
    assert run(
        clock.event("Create", "s-1", item="Storage", size_gb=1, home_ou="ops"), state
    ).allowed
    second = decide(clock.event("Create", "s-2", item="Storage", size_gb=1, home_ou="ops"), state)
    assert second.rejection is not None
    assert second.rejection.details["limit"] == "1"


def test_a_create_delivered_twice_is_counted_once() -> None:
    state, clock = QuotaState(), Clock()
    event = clock.event("Create", "vm-1", vcpu=4)
    run(event, state)
    again = run(event, state)
    assert again.allowed
    assert again.alerts == ()
    assert (used(state, "eng", VM_COUNT), used(state, "eng", VM_VCPU)) == (1, 4)


def test_bad_quota_attributes_are_rejected_with_the_reason() -> None:
    clock = Clock()
    missing = decide(clock.event("Create", "vm-1"), QuotaState())
    assert missing.rejection is not None
    assert missing.rejection.reason is ReasonCode.BAD_ATTRIBUTE
    negative = decide(clock.event("Create", "vm-1", vcpu=-1), QuotaState())
    assert negative.rejection is not None
    assert negative.rejection.reason is ReasonCode.NEGATIVE_QUANTITY
