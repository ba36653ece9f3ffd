"""Random create / resize / delete sequences against the seed's VM agreement.

Resizes and deletes of instances the account does not hold are part of the mix (some
resizes without a vcpu): a resize of an instance never seen adopts it, one of a blocked or
deleted instance is refused, and a delete of one never seen gives nothing back. "sales"
has no VM quota: its VMs are counted without a limit (NO_QUOTA).
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.errors import ReasonCode
from processors.quota import QuotaState, UsageKey
from processors.quota.model import UnknownInstances
from tests.unit.processors.quota.factories import CATALOG, VM_COUNT, VM_VCPU, Clock, run

OUS = ("eng/data", "eng/platform", "eng/platform/k8s", "sales")
IDS = [f"vm-{n}" for n in range(6)]
steps = st.lists(
    st.tuples(
        st.sampled_from(("Create", "Resize", "Delete")),
        st.sampled_from(IDS),
        st.one_of(st.none(), st.integers(min_value=0, max_value=9)),  # None: no vcpu
        st.sampled_from(OUS),
    ),
    max_size=40,
)
Step = tuple[str, str, int | None, str]


def _numbers(operation: str, vcpu: int | None) -> dict[str, int]:
    if operation == "Delete":
        return {}
    if operation == "Create":  # a create without its quota-managed vcpu is a bad event
        return {"vcpu": 0 if vcpu is None else vcpu}
    return {"memory_gb": 8} if vcpu is None else {"vcpu": vcpu}


def _replay(sequence: list[Step]) -> tuple[QuotaState, list[object]]:
    state, clock, alerts = QuotaState(), Clock(), []
    for operation, item_id, vcpu, ou in sequence:
        decision = run(
            clock.event(operation, item_id, home_ou=ou, **_numbers(operation, vcpu)), state
        )
        alerts.append(decision)
    return state, alerts


def _limit(key: UsageKey) -> Decimal | None:
    quota = CATALOG.agreements[key.agreement].quotas.get(key.quota)
    return None if quota is None else quota.limit


@settings(max_examples=200, deadline=None)
@given(steps)
def test_used_is_the_sum_over_live_instances_and_never_over_the_limit(
    sequence: list[Step],
) -> None:
    state, _ = _replay(sequence)
    totals: dict[UsageKey, Decimal] = {}
    for key, instance in state.instances().items():
        for holding in instance.holdings:
            usage_key = UsageKey(key.account, holding.agreement, holding.quota)
            totals[usage_key] = totals.get(usage_key, Decimal(0)) + holding.amount
    assert {k: u.used for k, u in state.usages().items()} == {
        k: v for k, v in totals.items() if v != 0
    }
    for key, usage in state.usages().items():
        limit = _limit(key)
        assert Decimal(0) <= usage.used
        assert limit is None or usage.used <= limit


@settings(max_examples=200, deadline=None)
@given(steps)
def test_alerts_fire_exactly_once_per_upward_crossing(
    sequence: list[Step],
) -> None:
    state, clock = QuotaState(), Clock()
    for operation, item_id, vcpu, ou in sequence:
        before = state.usages()
        decision = run(
            clock.event(operation, item_id, home_ou=ou, **_numbers(operation, vcpu)), state
        )
        fired = {(a.agreement_id, a.quota_id, a.threshold_percent) for a in decision.alerts}
        assert len(fired) == len(decision.alerts)
        expected = set()
        for key, usage in state.usages().items():
            agreement = CATALOG.agreements[key.agreement]
            limit = _limit(key)
            if limit is None:  # counted without a limit: nothing to alert on
                continue
            old = before.get(key)
            old_used = old.used if old is not None else Decimal(0)
            for threshold in agreement.policy.thresholds:
                line = limit * threshold.percent / 100
                if (old_used == 0 or old_used < line) and usage.used >= line and usage.used > 0:
                    expected.add((key.agreement, key.quota, threshold.percent))
        assert fired == expected


@settings(max_examples=100, deadline=None)
@given(steps)
def test_dump_load_round_trip_is_exact(sequence: list[Step]) -> None:
    state, _ = _replay(sequence)
    copy = QuotaState()
    for key in state.all_keys():
        copy.load(key, state.dump(key))
    assert copy.usages() == state.usages()
    assert copy.instances() == state.instances()
    assert {k: copy.dump(k) for k in copy.all_keys()} == {
        k: state.dump(k) for k in state.all_keys()
    }


def _agreements(ou: str) -> tuple[str, ...]:
    """The agreements an instance acquired by a requester of ``ou`` counts against."""
    if ou == "sales":
        return ("sales",)
    return ("eng", "eng-platform") if ou.startswith("eng/platform") else ("eng",)


@settings(max_examples=500, deadline=None)
@given(steps, st.sampled_from(UnknownInstances))
def test_each_live_instance_counts_once_with_its_latest_vcpu(
        sequence: list[Step], unknown: UnknownInstances) -> None:
    # The model: an allowed create, or resize of an instance never seen (adopt; with
    # reject, a resize or delete of an instance never seen is refused, and a delete is
    # remembered all the same), takes
    # one VM and its vcpu (0 if the event has none) from the agreements of the OU it was in;
    # a resize of a live instance sets the vcpu it carries; a delete gives it all back. An
    # instance whose create was refused, or which was deleted, is remembered: a resize or
    # delete of it is refused (BLOCKED_INSTANCE, RELEASED_INSTANCE); a delete of a blocked
    # one makes it deleted; a create takes it anew.
    state, clock = QuotaState(), Clock()
    live: dict[tuple[str, str], tuple[tuple[str, ...], int]] = {}
    gone: dict[tuple[str, str], ReasonCode] = {}
    for operation, item_id, drawn, ou in sequence:
        numbers = _numbers(operation, drawn)
        decision = run(clock.event(operation, item_id, home_ou=ou, **numbers), state,
                       unknown_instances=unknown)
        key, vcpu = (decision.account_id, item_id), numbers.get("vcpu")
        if (key not in live and key not in gone and operation != "Create"
                and unknown is UnknownInstances.REJECT):
            assert decision.rejection is not None
            assert decision.rejection.reason is ReasonCode.UNKNOWN_INSTANCE
            # A delete is refused, but remembered as deleted.
            gone.update({key: ReasonCode.RELEASED_INSTANCE} if operation == "Delete" else {})
            continue
        if key not in live and key in gone and operation != "Create":
            assert decision.rejection is not None
            assert decision.rejection.reason is gone[key]
            if operation == "Delete":
                gone[key] = ReasonCode.RELEASED_INSTANCE
            continue
        if not decision.allowed:
            assert decision.rejection is not None
            if operation == "Create":
                gone[key] = ReasonCode.BLOCKED_INSTANCE
            continue
        # Not seen before: the record says so, unless it already says NO_QUOTA ("sales").
        unseen = ReasonCode.NO_QUOTA if ou == "sales" else ReasonCode.UNKNOWN_INSTANCE
        if operation == "Delete":
            assert (key in live) == (decision.missing is not unseen) or ou == "sales"
            live.pop(key, None)
            gone[key] = ReasonCode.RELEASED_INSTANCE
        elif key in live:
            agreements, held = live[key]
            live[key] = (agreements, held if vcpu is None else vcpu)
        else:
            assert operation == "Create" or decision.missing is unseen
            live[key] = (_agreements(ou), vcpu or 0)
            gone.pop(key, None)
    expected: dict[UsageKey, Decimal] = {}
    for (account, _), (agreements, held) in live.items():
        for agreement in agreements:
            for quota, amount in ((VM_COUNT, 1), (VM_VCPU, held)):
                usage_key = UsageKey(account, agreement, quota)
                expected[usage_key] = expected.get(usage_key, Decimal(0)) + amount
    assert {k: u.used for k, u in state.usages().items() if k.quota in (VM_COUNT, VM_VCPU)} == {
        k: v for k, v in expected.items() if v != 0
    }
