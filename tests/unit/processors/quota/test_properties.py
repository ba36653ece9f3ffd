"""Random create / resize / delete sequences against the seed's VM agreement."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.quota import QuotaState, UsageKey
from tests.unit.processors.quota.factories import CATALOG, Clock, run

OUS = ("eng/data", "eng/platform", "eng/platform/k8s")
IDS = [f"vm-{n}" for n in range(6)]
steps = st.lists(
    st.tuples(
        st.sampled_from(("Create", "Resize", "Delete")),
        st.sampled_from(IDS),
        st.integers(min_value=0, max_value=9),
        st.sampled_from(OUS),
    ),
    max_size=40,
)


def _replay(sequence: list[tuple[str, str, int, str]]) -> tuple[QuotaState, list[object]]:
    state, clock, alerts = QuotaState(), Clock(), []
    for operation, item_id, vcpu, ou in sequence:
        numbers = {} if operation == "Delete" else {"vcpu": vcpu}
        decision = run(clock.event(operation, item_id, home_ou=ou, **numbers), state)
        alerts.append(decision)
    return state, alerts


@settings(max_examples=200, deadline=None)
@given(steps)
def test_used_is_the_sum_over_live_instances_and_never_over_the_limit(
    sequence: list[tuple[str, str, int, str]],
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
        limit = CATALOG.agreements[key.agreement].quotas[key.quota].limit
        assert Decimal(0) <= usage.used <= limit


@settings(max_examples=200, deadline=None)
@given(steps)
def test_alerts_fire_exactly_once_per_upward_crossing(
    sequence: list[tuple[str, str, int, str]],
) -> None:
    state, clock = QuotaState(), Clock()
    for operation, item_id, vcpu, ou in sequence:
        numbers = {} if operation == "Delete" else {"vcpu": vcpu}
        before = state.usages()
        decision = run(clock.event(operation, item_id, home_ou=ou, **numbers), state)
        fired = {(a.agreement_id, a.quota_id, a.threshold_percent) for a in decision.alerts}
        assert len(fired) == len(decision.alerts)
        expected = set()
        for key, usage in state.usages().items():
            agreement = CATALOG.agreements[key.agreement]
            limit = agreement.quotas[key.quota].limit
            old = before.get(key)
            old_used = old.used if old is not None else Decimal(0)
            for threshold in agreement.policy.thresholds:
                line = limit * threshold.percent / 100
                if (old_used == 0 or old_used < line) and usage.used >= line and usage.used > 0:
                    expected.add((key.agreement, key.quota, threshold.percent))
        assert fired == expected


@settings(max_examples=100, deadline=None)
@given(steps)
def test_dump_load_round_trip_is_exact(sequence: list[tuple[str, str, int, str]]) -> None:
    state, _ = _replay(sequence)
    copy = QuotaState()
    for key in state.all_keys():
        copy.load(key, state.dump(key))
    assert copy.usages() == state.usages()
    assert copy.instances() == state.instances()
    assert {k: copy.dump(k) for k in copy.all_keys()} == {
        k: state.dump(k) for k in state.all_keys()
    }
