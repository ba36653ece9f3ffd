"""The quota view's pure formatting: keys, percent, the hash fields, changelog decoding;
and its writes, on an in-memory Redis, for keys that must not collide."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import redis

from processors.catalog import Catalog, load_catalog_dir
from processors.catalog.source import IDENTIFIER
from processors.quota.model import UsageKey
from sinks.base import SinkRecord
from sinks.quota_view import (
    QuotaViewStore,
    catalog_fields,
    decode_changelog,
    hash_key,
    index_key,
    offsets_key,
    parse_usage_key,
    percent_of,
    quota_fields,
)
from stream.settings import REPO_ROOT
from tests.unit.sinks.fake_redis import FakeRedis

PLATFORM_VCPU = UsageKey("acct-eng", "eng-platform", "VirtualMachine:sum:vcpu")
# Valid catalog identifiers (they may contain ':') whose unescaped parts join alike.
MINE = UsageKey("acct-eng", "main:vm", "VirtualMachine:count")
THEIRS = UsageKey("acct-eng:main", "vm", "VirtualMachine:count")
CHANGELOG = "rater.changelog"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog_dir(REPO_ROOT / "config" / "catalog")


def test_usage_keys_are_parsed_and_everything_else_is_not() -> None:
    assert parse_usage_key("qu|acct-eng|eng-platform|VirtualMachine:sum:vcpu") == PLATFORM_VCPU
    assert parse_usage_key("qi|acct-eng|VirtualMachine|vm-1") is None
    assert parse_usage_key("seen|0|abc") is None
    assert parse_usage_key("qu|acct-eng|eng-main") is None
    assert parse_usage_key("qu|acct-eng||VirtualMachine:count") is None


def test_redis_keys() -> None:
    assert hash_key("rating", PLATFORM_VCPU) == \
        "rating:quota:acct-eng:eng-platform:VirtualMachine%3Asum%3Avcpu"
    assert index_key("rating", "acct-eng") == "rating:quota-index:acct-eng"
    assert index_key("rating", "acct:50%") == "rating:quota-index:acct%3A50%25"
    assert offsets_key("rating") == "rating:quota-view:offsets"


def test_two_accounts_quotas_get_two_hashes() -> None:
    assert all(IDENTIFIER.match(part) for part in (*MINE, *THEIRS))
    assert hash_key("rating", MINE) != hash_key("rating", THEIRS)
    assert index_key("rating", MINE.account) != index_key("rating", THEIRS.account)


def changelog_record(partition: int, offset: int, key: UsageKey,
                     state: dict[str, Any] | None) -> SinkRecord:
    value = None if state is None else json.dumps(state).encode()
    return decode_changelog(CHANGELOG, partition, offset, key.encode().encode(), value)


def test_another_accounts_tombstone_leaves_my_quota_intact() -> None:
    client = FakeRedis()
    store = QuotaViewStore(client, CHANGELOG, lambda: None)  # type: ignore[arg-type]
    store.write_batch([changelog_record(0, 0, MINE, {"used": "3", "fired": []}),
                       changelog_record(1, 0, THEIRS, {"used": "5", "fired": []})])
    for key, used in ((MINE, "3"), (THEIRS, "5")):
        fields = client.hgetall(hash_key("rating", key))
        assert (fields["account"], fields["agreement"], fields["used"]) == \
            (key.account, key.agreement, used)
        assert client.smembers(index_key("rating", key.account)) == \
            {hash_key("rating", key)}
    store.write_batch([changelog_record(1, 1, THEIRS, None)])
    assert client.hgetall(hash_key("rating", THEIRS)) == {}
    assert client.smembers(index_key("rating", THEIRS.account)) == set()
    assert client.hgetall(hash_key("rating", MINE))["used"] == "3"
    assert client.smembers(index_key("rating", MINE.account)) == {hash_key("rating", MINE)}


def fake_quota_view(*changes: tuple[UsageKey, dict[str, Any] | None]) -> redis.Redis:
    """A FakeRedis holding what the quota view writes for ``changes`` (in order)."""
    client = FakeRedis()
    store = QuotaViewStore(client, CHANGELOG, lambda: None)  # type: ignore[arg-type]
    store.write_batch([changelog_record(0, offset, key, state)
                       for offset, (key, state) in enumerate(changes)])
    return client  # type: ignore[return-value]


@pytest.mark.parametrize(("used", "limit", "expected"), [
    ("24", "32", "75.00"),
    ("1", "3", "33.33"),
    ("2", "3", "66.67"),
    ("1", "8", "12.50"),
    ("1", "16", "6.25"),
    ("1", "800", "0.13"),  # 0.125: half-up, not half-even
    ("0", "20", "0.00"),
    ("40", "32", "125.00"),
    ("2.5", "10", "25.00"),
])
def test_percent_has_two_decimals_half_up(used: str, limit: str, expected: str) -> None:
    assert percent_of(Decimal(used), Decimal(limit)) == expected


def test_percent_without_a_limit_is_empty() -> None:
    assert percent_of(Decimal(3), None) == ""
    assert percent_of(Decimal(3), Decimal(0)) == ""


def test_fields_of_a_sub_agreement_quota(catalog: Catalog) -> None:
    last = {"percent": 90, "action": "notify", "raised_at": "2026-11-03T10:05:00+00:00",
            "event_id": "e-9"}
    fields = quota_fields(PLATFORM_VCPU, {"used": "24", "fired": [90, 50], "last_alert": last},
                          catalog, "rater.changelog:3:17")
    assert fields == {
        "account": "acct-eng", "agreement": "eng-platform", "quota": "VirtualMachine:sum:vcpu",
        "used": "24", "limit": "32", "percent": "75.00",
        "thresholds": "50:notify,90:notify,100:block", "thresholds_fired": "50,90",
        "last_alert_percent": "90", "last_alert_action": "notify",
        "last_alert_at": "2026-11-03T10:05:00+00:00", "last_alert_event": "e-9",
        "catalog_version": catalog.version, "updated_from": "rater.changelog:3:17",
    }


def test_fields_with_the_default_policy(catalog: Catalog) -> None:
    key = UsageKey("acct-eng", "eng-main", "VirtualMachine:count")
    fields = quota_fields(key, {"used": "3", "fired": []}, catalog, "c:0:0")
    assert (fields["used"], fields["limit"], fields["percent"]) == ("3", "20", "15.00")
    assert fields["thresholds"] == "80:notify,100:block"
    assert fields["thresholds_fired"] == ""
    assert (fields["last_alert_percent"], fields["last_alert_event"]) == ("", "")


def test_a_quota_not_in_the_catalog_has_no_limit(catalog: Catalog) -> None:
    removed = UsageKey("acct-data", "data-main", "SaasSeat:count")
    fields = quota_fields(removed, {"used": "7", "fired": []}, catalog, "c:1:2")
    assert (fields["used"], fields["limit"], fields["percent"], fields["thresholds"]) == \
        ("7", "", "", "")
    gone = UsageKey("acct-x", "no-such-agreement", "VirtualMachine:count")
    assert catalog_fields(gone, Decimal(1), catalog)["limit"] == ""
    assert catalog_fields(PLATFORM_VCPU, Decimal(1), None) == \
        {"limit": "", "percent": "", "thresholds": "", "catalog_version": ""}


def test_used_is_kept_exactly_as_the_rater_wrote_it(catalog: Catalog) -> None:
    fields = quota_fields(PLATFORM_VCPU, {"used": "8.50", "fired": []}, catalog, "c:0:1")
    assert (fields["used"], fields["percent"]) == ("8.50", "26.56")


def test_decoding_changelog_records() -> None:
    usage = decode_changelog("t", 2, 9, b"qu|a|g|VM:count", b'{"fired":[80],"used":"12"}')
    assert (usage.topic, usage.partition, usage.offset) == ("t", 2, 9)
    assert usage.value == {"key": "qu|a|g|VM:count", "state": {"fired": [80], "used": "12"}}
    tombstone = decode_changelog("t", 2, 10, b"qu|a|g|VM:count", None)
    assert tombstone.value == {"key": "qu|a|g|VM:count", "state": None}
    other = decode_changelog("t", 2, 11, b"qi|a|VM|vm-1", b'{"holds":[]}')
    assert other.value == {"key": "qi|a|VM|vm-1"}
    for bad in (b"not json", b'{"fired":[]}', b'{"used":"x","fired":[]}'):
        assert "error" in decode_changelog("t", 0, 0, b"qu|a|g|VM:count", bad).value
