"""The `rating` CLI run as a user runs it: real subprocesses, real exit codes.

Error paths need no services; the main paths (marked integration) run against
the session's live Kafka, registry and Redis on topics of their own.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from processors.licences.model import BillingRunRequest
from sinks.history import HistoryFilter, open_history_store
from stream.licence_publisher import LicencePublisher
from stream.serde import SCHEMA_FILES, parsed_schema
from stream.settings import REPO_ROOT, Connections

EXAMPLE = REPO_ROOT / "config" / "catalog"
SUBCOMMANDS = {
    "stack": "--with", "topics": "--help", "schemas": "--help", "catalog": "--against",
    "process": "--idle-exit", "produce": "--item-type", "simulate": "--events",
    "sink": "--replay", "tail": "--follow", "demo": "--keep-running",
    "report": "--period", "api": "--tokens", "billing-run": "--fiscal-year",
    "licences": "invoices",
}


def rating(*args: str, env: dict[str, str] | None = None,
           timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], cwd=REPO_ROOT,
                          env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _no_services() -> dict[str, str]:
    """Every connection pointed at a closed port: a command that must fail before it
    connects to anything shows it."""
    port = _closed_port()
    # Its own free metrics port: with the default one taken (a parallel test's process),
    # the command would warn that it moved, a second line on stderr.
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{port}",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "RATING_METRICS_PORT": str(_closed_port())}


def _one_sentence(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The error of a command that exited 2 with one line on stderr, and nothing else."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"rating {command}: ")
    return lines[0]


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLE, target)
    return target


def test_help_lists_every_command() -> None:
    result = rating("--help")
    assert result.returncode == 0
    for command in SUBCOMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(("command", "option"), SUBCOMMANDS.items())
def test_subcommand_help_mentions_its_options(command: str, option: str) -> None:
    result = rating(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: rating {command}" in result.stdout
    assert option in result.stdout


def test_validate_broken_catalog_names_file_and_line(tmp_path: Path) -> None:
    broken = _copy(tmp_path, "broken")
    rates = broken / "rates-standard.yaml"
    rates.write_text(rates.read_text().replace('rate: "25.00"}', 'rate: "abc"}'))
    result = rating("catalog", "validate", "--dir", str(broken))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "rates-standard.yaml:18:" in lines[0]
    assert "expected a decimal number, got 'abc'" in lines[0]
    assert "Traceback" not in result.stderr


def test_validate_good_catalog() -> None:
    result = rating("catalog", "validate", "--dir", str(EXAMPLE))
    assert result.returncode == 0
    assert "is valid: version" in result.stdout


def test_produce_without_services_fails_fast_and_clearly() -> None:
    port = _closed_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
           "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{port}",
           "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    result = rating("produce", "--item-type", "HardDisk", "--item-id", "hd-1",
                    "--operation", "Order", "--attr", "quantity=2", "--requester", "alice",
                    "--home-ou", "eng/platform", env=env, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rating produce: ")
    assert f"127.0.0.1:{port}" in last
    assert "unreachable" in last


def test_produce_missing_flag_is_named() -> None:
    result = rating("produce", "--item-type", "HardDisk", "--item-id", "hd-1",
                    "--operation", "Order", "--requester", "alice")
    assert result.returncode == 2
    assert result.stderr.strip() == "rating produce: missing --home-ou (or give --file)"


def test_catalog_diff_of_two_folders(tmp_path: Path) -> None:
    same, changed = _copy(tmp_path, "same"), _copy(tmp_path, "changed")
    rates = changed / "rates-standard.yaml"
    rates.write_text(rates.read_text().replace('rate: "25.00"}', 'rate: "26.00"}'))

    identical = rating("catalog", "diff", "--dir", str(same), "--against", str(EXAMPLE))
    assert identical.returncode == 0, identical.stderr
    assert identical.stdout.startswith("no changes: version 2026.11-demo.1")

    different = rating("catalog", "diff", "--dir", str(changed), "--against", str(same))
    assert different.returncode == 1, different.stderr
    assert "  rate table vm-standard: row VM-STD: rate 25.00 -> 26.00" in \
        different.stdout.splitlines()


def test_catalog_diff_of_content_that_bills_the_same_says_it_differs(tmp_path: Path) -> None:
    """"25.00" written "25.000": nothing billed changes, but `catalog load` would refuse the
    folder under the same version, so "no changes" (exit 0) would mislead."""
    rewritten = _copy(tmp_path, "rewritten")
    rates = rewritten / "rates-standard.yaml"
    rates.write_text(rates.read_text().replace('rate: "25.00"}', 'rate: "25.000"}'))
    result = rating("catalog", "diff", "--dir", str(rewritten), "--against", str(EXAMPLE))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("no change in what is billed, but the content differs")
    assert "`catalog load` would refuse it: set a new version" in result.stdout


def test_catalog_diff_against_a_broken_folder_is_an_error(tmp_path: Path) -> None:
    broken = _copy(tmp_path, "broken")
    (broken / "catalog.yaml").write_text("version: [\n")
    result = rating("catalog", "diff", "--dir", str(EXAMPLE), "--against", str(broken))
    assert result.returncode == 2
    assert "catalog.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_with_a_bad_period_names_it() -> None:
    error = _one_sentence(rating("report", "summary", "--period", "2026-13"), "report")
    assert error == ("rating report: --period must be a month as YYYY-MM (e.g. 2024-05), "
                     "got '2026-13'")


def test_summary_of_an_empty_history_is_an_empty_report_that_passes(tmp_path: Path) -> None:
    # Nothing billed in the month: the file has the header alone, and the control check
    # (0 records in the report, 0 in the history) passes.
    url = f"sqlite:///{tmp_path / 'empty-history.db'}"
    open_history_store(url).close()  # what the sink creates before its first record
    result = rating("report", "summary", "--period", "2026-11", "--history-url", url,
                    "--out", str(tmp_path), env=_no_services())
    assert result.returncode == 0, result.stderr
    written = tmp_path / "summary-2026-11.csv"
    assert result.stdout.splitlines() == [
        f"wrote {written}",
        "control OK: records: 0 in this report, 0 in the billing history for 2026-11",
        "control OK: the grand totals are the revenue to record for 2026-11"]
    header, *rest = written.read_text().splitlines()
    assert header.startswith("line,provider,product,account_id,currency,")
    assert [line for line in rest if line] == [
        '"control OK: records: 0 in this report, 0 in the billing history for 2026-11"',
        "control OK: the grand totals are the revenue to record for 2026-11"]


def test_report_on_a_missing_history_file_is_an_error_not_an_empty_report(
        tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    error = _one_sentence(rating("report", "summary", "--period", "2026-11", "--history-url",
                                 f"sqlite:///{missing}", "--out", str(tmp_path),
                                 env=_no_services()), "report")
    assert error.startswith(f"rating report: no billing history at {missing}")
    assert not missing.exists()


def test_billing_history_sink_refuses_an_unknown_url_before_connecting() -> None:
    result = rating("sink", "billing-history", "--url", "nosuch://x", env=_no_services())
    error = _one_sentence(result, "sink")
    assert "unknown billing-history URL 'nosuch://x'" in error
    assert "sqlite:///PATH" in error


def test_api_with_a_missing_token_file_names_it() -> None:
    result = rating("api", "--tokens", "/nonexistent.yaml", env=_no_services())
    error = _one_sentence(result, "api")
    assert error.startswith("rating api: /nonexistent.yaml: cannot read the API token file")


def test_billing_run_options_are_checked_by_the_parser() -> None:
    # The run names come from the catalog (checked against the published version, see the
    # live test below); the parser checks what it can: a fiscal year is a number, and given.
    for args in (["--type", "bogus"], ["--fiscal-year", "twenty", "--type", "annual"]):
        result = rating("billing-run", *args, env=_no_services())
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("usage: rating billing-run")
        assert "--fiscal-year" in result.stderr.splitlines()[-1]


def _live_env(connections: Connections, suffix: str) -> dict[str, str]:
    """The session's services, topics of their own (``suffix``), any free metrics port."""
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": connections.kafka_bootstrap,
            "SCHEMA_REGISTRY_URL": connections.schema_registry_url,
            "REDIS_URL": connections.redis_url, "RATING_TOPIC_SUFFIX": suffix,
            "RATING_GROUP_ID": f"rating-cli{suffix}", "RATING_METRICS_PORT": "0"}


@pytest.mark.integration
def test_main_paths_against_the_live_stack(connections: Connections, tmp_path: Path) -> None:
    suffix = f"-cli{uuid.uuid4().hex[:10]}"
    env = _live_env(connections, suffix)

    topics = rating("topics", env=env)
    assert topics.returncode == 0, topics.stderr
    assert f"usage.events{suffix}" in topics.stdout
    assert "created" in topics.stdout

    schemas = rating("schemas", env=env)
    assert schemas.returncode == 0, schemas.stderr
    assert f"usage.events{suffix}-value" in schemas.stdout

    load = rating("catalog", "load", env=env)
    assert load.returncode == 0, load.stderr
    assert "catalog version 2026.11-demo.1 published" in load.stdout

    diff = rating("catalog", "diff", "--dir", str(EXAMPLE), env=env)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout.startswith("no changes: version 2026.11-demo.1")

    produce = rating("produce", "--item-type", "HardDisk", "--item-id", "hd-1",
                     "--operation", "Order", "--attr", "quantity=2", "--attr", "model=text:x",
                     "--requester", "alice", "--home-ou", "eng/platform", env=env)
    assert produce.returncode == 0, produce.stderr
    event_id = produce.stdout.split()[1]
    assert produce.stdout.strip() == f"published {event_id} HardDisk/Order"

    # The same kind of event from an Avro container file (3 disks: 30.00).
    avro_file = tmp_path / "events.avro"
    avro_id = f"avro-{uuid.uuid4().hex[:8]}"
    _write_avro_events(avro_file, [_avro_disk_order(avro_id, quantity="3")])
    from_file = rating("produce", "--file", str(avro_file), env=env)
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == f"published {avro_id} HardDisk/Order"

    process = rating("process", "--idle-exit", "5", env=env, timeout=180)
    assert process.returncode == 0, process.stderr[-2000:]

    tail = rating("tail", "rated", env=env)
    assert tail.returncode == 0, tail.stderr
    rated = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted((r["event_id"], r["net_amount"]) for r in rated) == sorted(
        [(event_id, "20.00"), (avro_id, "30.00")])

    # The billing history, then the month's summary from it.
    url = f"sqlite:///{tmp_path / 'history.db'}"
    _store_history(url, env, expected_rows=2)
    period = str(rated[0]["billing_period"])
    summary = rating("report", "summary", "--period", period, "--history-url", url,
                     "--out", str(tmp_path), env=env)
    assert summary.returncode == 0, summary.stderr
    assert f"control OK: the grand totals are the revenue to record for {period}" in \
        summary.stdout.splitlines()
    lines = list(csv.reader((tmp_path / f"summary-{period}.csv").open()))
    assert [line for line in lines if line and line[0] == "total"] == [
        ["total", "", "", "", "USD", "disk", "2", "5", "50.00", "0.00", "50.00", "0.00",
         "50.00"]]

    # A billing run the catalog does not define: refused before anything is published.
    run = rating("billing-run", "--fiscal-year", "2027", "--type", "bogus", "--history-url",
                 url, "--out", str(tmp_path / "invoices"), env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (  # after the catalog reader's log line
        "rating billing-run: unknown run 'bogus' (catalog 2026.11-demo.1 has annual, "
        "true-up-january, true-up-june)")
    assert not (tmp_path / "invoices").exists()


@pytest.mark.integration
def test_tail_shows_licence_events_and_billing_run_reports(connections: Connections) -> None:
    suffix = f"-cli{uuid.uuid4().hex[:10]}"
    env = _live_env(connections, suffix)
    for command in (("topics",), ("catalog", "load")):
        done = rating(*command, env=env)
        assert done.returncode == 0, done.stderr
    produce = rating("licences", "produce", "--action", "provisioned", "--campus", "boulder",
                     "--record-number", "B-1", "--user", "alice", "--product",
                     "sf-sales-cloud", "--effective-date", "2025-02-01", env=env)
    assert produce.returncode == 0, produce.stderr
    # What `rating billing-run` publishes first (it then waits for a history sink): the
    # request in every partition; the subscription stage answers with one report each.
    request = BillingRunRequest(request_id=f"run-{uuid.uuid4().hex[:8]}", fiscal_year=2027,
                                run="annual", event_time=datetime.now(UTC), source="cli-test")
    topic = f"licence.events{suffix}"
    with LicencePublisher.connect(connections, topic) as publisher:
        landed = publisher.request_run(request)
    process = rating("process", "--stages", "subscriptions", "--idle-exit", "5", env=env,
                     timeout=180)
    assert process.returncode == 0, process.stderr[-2000:]

    tail = rating("tail", "subscriptions", env=env)
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    [change] = [record for record in records if record["billing_run"] is None]
    requests = [record for record in records if record["billing_run"] is not None]
    assert (change["event_type"], change["licence"]["campus"],
            change["licence"]["record_number"], change["licence"]["user"],
            change["licence"]["product"], change["licence"]["effective_date"],
            change["billing_run"], change["source"]) == (
        "LICENCE_PROVISIONED", "boulder", "B-1", "alice", "sf-sales-cloud", "2025-02-01",
        None, "rating-cli")
    assert sorted((r["partition"], r["offset"]) for r in requests) == sorted(landed.items())
    assert {(r["event_type"], r["billing_run"]["request_id"], r["billing_run"]["run"],
             r["billing_run"]["fiscal_year"], r["licence"]) for r in requests} == {
        ("BILLING_RUN_REQUESTED", request.request_id, "annual", 2027, None)}

    runs = rating("tail", "licence_runs", env=env)
    assert runs.returncode == 0, runs.stderr
    reports = [json.loads(line) for line in runs.stdout.splitlines()]
    assert sorted((r["request_partition"], r["request_offset"]) for r in reports) == sorted(
        landed.items())
    assert {(r["request_id"], r["request_topic"], r["partition"], r["error"])
            for r in reports} == {(request.request_id, topic, 0, None)}
    assert len({r["offset"] for r in reports}) == len(reports)  # licence.runs's own
    billed = [charge for report in reports for charge in report["billed"]]
    assert [(c["event_id"], c["user"], c["amount"], c["currency"]) for c in billed] == [
        ("licence:FY2027:annual:boulder:B-1", "alice", "1500.00", "USD")]  # 12 x 125.00


def _avro_disk_order(event_id: str, quantity: str, requester: str = "alice") -> dict[str, Any]:
    return {"event_id": event_id, "event_time": datetime.now(UTC),
            "service_item_type": "HardDisk", "service_item_id": f"hd-{event_id}",
            "operation": "Order",
            "attributes": [{"name": "quantity", "number": quantity, "text": None},
                           {"name": "model", "number": None, "text": "x"}],
            "requester": requester, "home_ou": "eng/platform", "account_id": None,
            "provider": None, "product": None, "source": "avro-file-test"}


def _write_avro_events(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("wb") as file:
        fastavro.writer(file, parsed_schema(SCHEMA_FILES["events"]), records)


def test_produce_from_an_avro_file_names_the_bad_record(tmp_path: Path) -> None:
    avro_file = tmp_path / "bad.avro"
    _write_avro_events(avro_file, [_avro_disk_order("ok-1", "1"),
                                   _avro_disk_order("bad-2", "1", requester=" ")])
    error = _one_sentence(rating("produce", "--file", str(avro_file), env=_no_services()),
                          "produce")
    assert error == f"rating produce: {avro_file}#1: event bad-2: field 'requester' is empty"


def test_produce_checks_every_event_of_a_json_file_before_publishing_any(
        tmp_path: Path) -> None:
    """The third event is out of range: refused before anything connects (the services
    here are closed ports), so the first two are not published now and again once the
    file is fixed (without ids they get new ones: billed twice)."""
    disk = {"service_item_type": "HardDisk", "operation": "Order", "requester": "alice",
            "home_ou": "eng/platform", "attributes": {"quantity": 1, "model": "x"}}
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{**disk, "service_item_id": "hd-1"},
                                {**disk, "service_item_id": "hd-2"},
                                {**disk, "service_item_id": "hd-3",
                                 "attributes": {"quantity": 1e25, "model": "x"}}]))
    error = _one_sentence(rating("produce", "--file", str(path), env=_no_services()),
                          "produce")
    assert error.startswith(f"rating produce: {path}#2: invalid event: ")
    assert "'quantity'" in error
    assert error.endswith("; nothing was published")


def _store_history(url: str, env: dict[str, str], expected_rows: int) -> None:
    """`rating sink billing-history --url URL` until it has stored the rows; SIGTERM stops it
    cleanly (exit 0)."""
    sink = subprocess.Popen([sys.executable, "-m", "stream.cli", "sink", "billing-history",
                             "--url", url], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored < expected_rows and time.monotonic() < deadline:
            assert sink.poll() is None, sink.communicate()[0][-2000:]
            time.sleep(0.5)
            store = open_history_store(url)
            try:
                stored = store.count(HistoryFilter())
            finally:
                store.close()
        assert stored == expected_rows, f"{stored} rows stored within 60 s"
    finally:
        sink.send_signal(signal.SIGTERM)
        output = sink.communicate(timeout=30)[0]
    assert sink.returncode == 0, output[-2000:]


@pytest.mark.parametrize("command", [("schemas",), ("sink", "aggregates"),
                                     ("sink", "billing-history", "--url", "sqlite:///:memory:")])
def test_an_unreachable_schema_registry_is_one_sentence(command: tuple[str, ...]) -> None:
    error = _one_sentence(rating(*command, env=_no_services()), command[0])
    assert "schema registry unreachable registering" in error, error
