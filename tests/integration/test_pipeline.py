"""The processor on the real broker and registry: exact rated records, dead letters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.integration.events import hard_disk, marketplace, money, vm
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def test_rates_avro_events_into_exactly_the_expected_records(pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    disk = hard_disk(2)                                        # seed: 10 USD x 2
    linux = vm(4, item_id="vm-a")                              # VM-STD 25.00 x 4
    windows_eu = vm(2, region="eu-west", os="windows", item_id="vm-b")  # 34.50 x 2
    started = vm(4, operation="Start", item_id="vm-a")         # not billable
    enterprise = vm(2, home_ou="sales/emea", item_id="vm-c")   # VM-ENT-USE-LNX 19.50 x 2
    partner = marketplace("acme-backup-pro", "acme")           # net 90, +20% markup
    pipeline.publish([disk, linux, windows_eu, started, enterprise, partner])
    pipeline.start_processor()
    pipeline.wait_caught_up()

    rated = {r.value["event_id"]: r.value for r in pipeline.rated()}
    assert set(rated) == {disk.event_id, linux.event_id, windows_eu.event_id,
                          enterprise.event_id, partner.event_id}
    expected = {
        disk.event_id: ("acct-eng", "standard", "HD-UNIT", "20.00", "20.00"),
        linux.event_id: ("acct-eng", "standard", "VM-STD", "100.00", "100.00"),
        windows_eu.event_id: ("acct-eng", "standard", "VM-STD-EU-WIN", "69.00", "69.00"),
        enterprise.event_id: ("acct-sales", "enterprise", "VM-ENT-USE-LNX", "39.00", "39.00"),
        partner.event_id: ("acct-partner-acme", "standard", "MP-ACME-PRO", "90.00", "108.00"),
    }
    for event_id, (account, group, code, net, gross) in expected.items():
        record = rated[event_id]
        assert (record["account_id"], record["rate_group"], record["rate_code"],
                record["net_amount"], record["gross_amount"]) == (account, group, code, net,
                                                                  gross)
        assert record["currency"] == "USD"
        assert record["origin_topic"] == pipeline.settings.topics.by_account.name
    # The partner's gold credit (7,000 USD a month) absorbs the whole gross amount.
    assert money(rated[partner.event_id]["credit_applied"]) == money("108.00")
    assert money(rated[partner.event_id]["charged_amount"]) == 0
    assert money(rated[partner.event_id]["credit_remaining"]) == money("6892.00")
    assert rated[linux.event_id]["memo"] == {"memory_gb": "16"}
    assert pipeline.dead_letters() == []


def test_garbage_and_unknown_items_are_dead_lettered_between_rated_events(
        pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    before, after = hard_disk(1, item_id="hd-before"), hard_disk(3, item_id="hd-after")
    unknown = replace(vm(2, item_id="tp-1"), service_item_type="Teleporter")
    garbage = b"\x00\x00\x00\x00\x07definitely not avro"
    with pipeline.publisher() as publisher:
        publisher.publish(before)
        publisher.publish_raw(b"hd-x", garbage)
        publisher.publish(unknown)
        publisher.publish(after)
    pipeline.start_processor()
    pipeline.wait_caught_up()

    rated = sorted(r.value["event_id"] for r in pipeline.rated())
    assert rated == sorted([before.event_id, after.event_id])
    dead = {r.value["reason_code"]: r.value for r in pipeline.dead_letters()}
    assert set(dead) == {"UNDECODABLE", "UNKNOWN_SERVICE_ITEM"}
    assert dead["UNDECODABLE"]["original_value"] == garbage
    assert dead["UNDECODABLE"]["original_key"] == b"hd-x"
    assert dead["UNDECODABLE"]["source_topic"] == pipeline.settings.topics.events.name
    assert dead["UNDECODABLE"]["event_id"] is None
    assert dead["UNDECODABLE"]["stage"] == "router"
    assert dead["UNKNOWN_SERVICE_ITEM"]["event_id"] == unknown.event_id
    assert "Teleporter" in dead["UNKNOWN_SERVICE_ITEM"]["message"]
    assert dead["UNKNOWN_SERVICE_ITEM"]["original_value"] is not None
