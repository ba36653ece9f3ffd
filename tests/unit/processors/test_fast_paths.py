"""The hand-written fast paths of the engine give exactly what the reference code gives.

Each fast path replaced a generic call on the per-event path (json.dumps, a
catalog walk). The stored formats must not move by a byte: fingerprints and
changelog values are in the state of running processors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.accounts import resolve_account
from processors.dedup import SeenEvent, canonical_payload, payload_fingerprint
from processors.errors import EventRejected
from processors.events import UsageEvent, iso_text
from processors.lookups import PerCatalog, account_of
from processors.quota import Holding, Instance, QuotaState, QuotaUsage, UsageKey
from processors.quota.model import InstanceKey, LastAlert
from processors.quota.state import _instance_value, _usage_value
from processors.rating import Rated, rate
from processors.state import AccumulationKey, CreditKey, RatingState, billing_period
from tests.unit.processors.factories import (
    BASE,
    CATALOG,
    ORIGIN,
    RATED_AT,
    RATES,
    catalog,
    event,
)

texts = st.text(max_size=20)
numbers = st.decimals(allow_nan=False, allow_infinity=False)
digests = st.binary(min_size=32, max_size=32).map(bytes.hex)  # what payload_fingerprint gives
values: st.SearchStrategy[Decimal | str] = st.one_of(
    numbers, texts, st.sampled_from([Decimal("4"), Decimal("4.0"), Decimal("-0"),
                                     Decimal("1E+3"), "4"]))
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3))]))


@st.composite
def events(draw: st.DrawFn) -> UsageEvent:
    return UsageEvent(
        event_id=draw(texts), event_time=draw(moments), service_item_type=draw(texts),
        service_item_id=draw(texts), operation=draw(texts),
        attributes=draw(st.dictionaries(texts, values, max_size=4)), requester=draw(texts),
        home_ou=draw(texts), source=draw(texts), account_id=draw(st.none() | texts),
        provider=draw(st.none() | texts), product=draw(st.none() | texts))


def _reference_fingerprint(event: UsageEvent) -> str:
    canonical = json.dumps(canonical_payload(event), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@settings(max_examples=300)
@given(events())
def test_the_fingerprint_is_the_sha256_of_the_reference_json(event: UsageEvent) -> None:
    assert payload_fingerprint(event) == _reference_fingerprint(event)
    assert payload_fingerprint(event) == payload_fingerprint(event)  # memoised parts agree


def test_the_fingerprint_of_a_known_event_has_not_moved() -> None:
    known = UsageEvent(event_id="e-1", event_time=datetime(2026, 11, 3, 10, 30, tzinfo=UTC),
                       service_item_type="VirtualMachine", service_item_id="vm-1",
                       operation="Create", attributes={"vcpu": Decimal("4.0"), "os": "linux"},
                       requester="alice", home_ou="eng/platform", source="test")
    assert payload_fingerprint(known) == hashlib.sha256(
        b'{"account_id":null,"attributes":{"os":["s","linux"],"vcpu":["n","4"]},'
        b'"event_id":"e-1","event_time":"2026-11-03T10:30:00+00:00","home_ou":"eng/platform",'
        b'"operation":"Create","product":null,"provider":null,"requester":"alice",'
        b'"service_item_id":"vm-1","service_item_type":"VirtualMachine","source":"test"}'
    ).hexdigest()


def _reference_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


@given(texts, digests, moments, numbers, numbers)
def test_rating_state_values_are_the_reference_json(event_id: str, fingerprint: str,
                                                    moment: datetime, quantity: Decimal,
                                                    used: Decimal) -> None:
    state = RatingState()
    state.load(f"seen|{event_id}", _reference_json({"fingerprint": fingerprint,
                                                     "event_time": moment.isoformat()}))
    state.load("acc|a|2026-11|t|c", _reference_json({"quantity": str(quantity)}))
    state.load("cred|a|2026-11", _reference_json({"used": str(used)}))
    # Seen times are kept as instants and written in UTC, which is how the processor's
    # event times always are (decoded from Avro timestamps): the same bytes as before.
    assert state.dump(f"seen|{event_id}") == _reference_json(
        {"event_time": moment.astimezone(UTC).isoformat(), "fingerprint": fingerprint})
    assert state.dedup.get(event_id) == SeenEvent(fingerprint, moment)
    assert state.dump("acc|a|2026-11|t|c") == _reference_json({"quantity": str(quantity)})
    assert state.dump("cred|a|2026-11") == _reference_json({"used": str(used)})
    assert state.dump("acc|b|2026-11|t|c") is None
    assert state.accumulated(AccumulationKey("a", "2026-11", "t", "c")) == quantity
    assert state.credit_used(CreditKey("a", "2026-11")) == used


holdings = st.lists(st.builds(Holding, texts, texts, numbers), max_size=3)
alerts = st.none() | st.builds(LastAlert, st.integers(0, 200), texts, moments, texts)


@given(holdings, numbers, st.frozensets(st.integers(0, 200), max_size=4), alerts)
def test_quota_state_values_are_the_reference_json(held: list[Holding], used: Decimal,
                                                   fired: frozenset[int],
                                                   last: LastAlert | None) -> None:
    state = QuotaState()
    instance = Instance(tuple(held))
    usage = QuotaUsage(used, fired, last)
    instance_key = InstanceKey("acct", "VirtualMachine", "vm|1").encode()
    usage_key = UsageKey("acct", "main", "VirtualMachine:count").encode()
    state.load(instance_key, _reference_json(_instance_value(instance)))
    state.load(usage_key, _reference_json(_usage_value(usage)))
    assert state.dump(instance_key) == _reference_json(_instance_value(instance))
    assert state.dump(usage_key) == _reference_json(_usage_value(usage))


@settings(max_examples=500)
@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])
                    | st.none()),
       st.booleans())
def test_iso_text_is_isoformat(moment: datetime, whole_second: bool) -> None:
    # Any year (1 to 9999), UTC or not, aware or naive, with and without microseconds.
    if whole_second:
        moment = moment.replace(microsecond=0)
    assert iso_text(moment) == moment.isoformat()


@given(moments)
def test_billing_period_is_the_utc_month(moment: datetime) -> None:
    assert billing_period(moment) == moment.astimezone(UTC).strftime("%Y-%m")


def test_per_catalog_answers_are_forgotten_when_the_catalog_changes() -> None:
    calls: list[str] = []

    def compute(catalog: object, arg: str) -> str:
        calls.append(arg)
        return f"{catalog.version}:{arg}"  # type: ignore[attr-defined]

    memo: PerCatalog[str, str, str] = PerCatalog(compute, limit=2)
    other = replace(CATALOG, version="other")
    assert memo(CATALOG, "k", "a") == f"{CATALOG.version}:a"
    assert memo(CATALOG, "k", "ignored") == f"{CATALOG.version}:a"  # memoised by key
    assert memo(other, "k", "b") == "other:b"  # another catalog object: asked again
    assert memo(other, "k2", "c") == "other:c"
    assert memo(other, "k3", "d") == "other:d"  # over the limit: forgets, stays correct
    assert memo(other, "k", "e") == "other:e"
    assert calls == ["a", "b", "c", "d", "e"]


def test_account_of_answers_as_resolve_account_and_rejects_each_event_by_name() -> None:
    for home_ou in ("partners/acme", "partners/acme/team", "eng"):
        e = event(home_ou=home_ou, quantity=1)
        assert account_of(e, CATALOG) == resolve_account(e, CATALOG)
    for event_id in ("x-1", "x-2"):
        orphan = event(event_id, home_ou="nowhere", quantity=1)
        with pytest.raises(EventRejected) as reference:
            resolve_account(orphan, CATALOG)
        with pytest.raises(EventRejected) as rejection:
            account_of(orphan, CATALOG)
        assert (rejection.value.reason, rejection.value.message, rejection.value.details) == \
            (reference.value.reason, reference.value.message, reference.value.details)
        assert event_id in rejection.value.message


def test_a_new_catalog_version_prices_with_its_own_rows_and_groups() -> None:
    """Rows and rate groups are memoised by name: a catalog switch must not reuse them."""
    dearer = catalog(RATES.replace('rate: "25.00"', 'rate: "26.00"'),
                     BASE.replace("version: test-1", "version: test-2"))
    vm = event("v-1", item="VM", operation="Create", vcpu=2, memory_gb=4, region="us-east",
               os="linux")
    outcomes = [rate(vm, ORIGIN, version, RatingState(), RATED_AT)
                for version in (CATALOG, dearer, CATALOG)]
    assert all(isinstance(outcome, Rated) for outcome in outcomes)
    assert [(o.record.rate, o.record.catalog_version) for o in outcomes  # type: ignore[union-attr]
            ] == [(Decimal("25.00"), "test-1"), (Decimal("26.00"), "test-2"),
                  (Decimal("25.00"), "test-1")]
