"""Rating behaviour that only shows on a live stream: period boundaries, catalog hot-swap,
late events parked."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.events import NOVEMBER, money, vm
from tests.integration.harness import EXAMPLE_CATALOG, Pipeline

pytestmark = pytest.mark.integration
FY2027_STARTS = datetime(2026, 7, 1, tzinfo=UTC)


def test_rate_group_change_applies_from_the_fiscal_period_boundary(pipeline: Pipeline) -> None:
    # acct-data (eng/data) moves from standard to enterprise prices at FY2027-H1.
    pipeline.load_catalog()
    last_old = vm(2, home_ou="eng/data", item_id="vm-old",
                  when=FY2027_STARTS - timedelta(milliseconds=1))
    first_new = vm(2, home_ou="eng/data", item_id="vm-new", when=FY2027_STARTS)
    pipeline.publish([last_old, first_new])
    pipeline.start_processor()
    pipeline.wait_caught_up()
    rated = {r.value["event_id"]: r.value for r in pipeline.rated()}
    old, new = rated[last_old.event_id], rated[first_new.event_id]
    assert (old["fiscal_period"], old["rate_group"], old["rate_code"], old["net_amount"]) == (
        "FY2026-H2", "standard", "VM-STD", "50.00")
    assert (new["fiscal_period"], new["rate_group"], new["rate_code"], new["net_amount"]) == (
        "FY2027-H1", "enterprise", "VM-ENT-USE-LNX", "39.00")


def _catalog_with_new_vm_rate(tmp_path: Path, version: str) -> Path:
    directory = tmp_path / "catalog-v2"
    shutil.copytree(EXAMPLE_CATALOG, directory)
    catalog_file = directory / "catalog.yaml"
    text = catalog_file.read_text()
    catalog_file.write_text(text.replace('version: "2026.11-demo.1"', f'version: "{version}"'))
    rates = directory / "rates-standard.yaml"
    rates.write_text(rates.read_text().replace(
        '{rate_code: VM-STD, unit: vcpu, rate: "25.00"}',
        '{rate_code: VM-STD, unit: vcpu, rate: "23.75"}'))
    return directory


def _wait_for_log(pipeline: Pipeline, needle: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(needle in p.log_path.read_text(errors="replace") for p in pipeline.processes):
            return
        time.sleep(0.1)
    raise AssertionError(f"no processor logged {needle!r}")


def test_a_new_catalog_version_is_used_mid_stream_without_restart(
        pipeline: Pipeline, tmp_path: Path) -> None:
    first_version = pipeline.load_catalog()
    before = vm(4, item_id="vm-before")
    pipeline.publish([before])
    processor = pipeline.start_processor()
    pipeline.wait_caught_up()

    second_version = pipeline.load_catalog(_catalog_with_new_vm_rate(tmp_path, "2026.11-demo.2"))
    _wait_for_log(pipeline, f"catalog version {second_version} in use")
    after = vm(4, item_id="vm-after")
    pipeline.publish([after])
    pipeline.wait_caught_up()
    processor.check_alive()

    rated = {r.value["event_id"]: r.value for r in pipeline.rated()}
    assert (rated[before.event_id]["catalog_version"], rated[before.event_id]["net_amount"]) == (
        first_version, "100.00")
    assert (rated[after.event_id]["catalog_version"], rated[after.event_id]["net_amount"]) == (
        second_version, "95.00")
    assert len(processor.log_path.read_text().split("processor 0 running")) == 2  # no restart


def test_an_event_older_than_the_dedup_window_is_parked_as_late(pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    recent = vm(1, item_id="vm-recent")
    pipeline.publish([recent])
    pipeline.start_processor()
    pipeline.wait_caught_up()
    stale = vm(1, item_id="vm-stale", when=NOVEMBER - timedelta(days=36))
    pipeline.publish([stale])
    pipeline.wait_caught_up()

    assert [r.value["event_id"] for r in pipeline.rated()] == [recent.event_id]
    late = [r.value for r in pipeline.late()]
    assert [(r["event_id"], r["reason_code"], r["stage"]) for r in late] == [
        (stale.event_id, "LATE", "rater")]
    assert late[0]["original_value"] is not None
    assert money(late[0]["source_offset"]) >= 0
