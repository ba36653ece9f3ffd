"""Operator-facing contract of the CLI when things go wrong (README: "Errors are one
sentence on stderr and exit code 2"; `catalog diff`: "exit 0 same, 1 different", 2 on error).

Every test here but the one marked integration needs no service: connections point at
closed ports (``_no_services``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.settings import REPO_ROOT, Connections
from tests.cli.test_cli import EXAMPLE, _closed_port, _no_services, _one_sentence, rating

DEV_TOKENS = REPO_ROOT / "config" / "api-tokens.dev.yaml"


def _empty_history(tmp_path: Path) -> str:
    from sinks.history import open_history_store

    url = f"sqlite:///{tmp_path / 'history.db'}"
    open_history_store(url).close()
    return url


# -- tracebacks where one sentence is promised ------------------------------------------

def test_process_with_an_unknown_stage_is_one_sentence() -> None:
    error = _one_sentence(rating("process", "--stages", "routr", "--metrics-port", "0",
                                 env=_no_services()), "process")
    assert "routr" in error
    assert "router" in error


def test_api_with_a_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    result = rating("api", "--tokens", str(DEV_TOKENS), "--history-url",
                    _empty_history(tmp_path), "--catalog-dir", str(EXAMPLE), "--port", "70000",
                    env=_no_services())
    assert result.returncode == 2, result.stderr[-300:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "rating api: error: argument --port: 70000 is above 65535")


def test_api_with_its_port_taken_exits_2_not_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = rating("api", "--tokens", str(DEV_TOKENS), "--history-url",
                        _empty_history(tmp_path), "--catalog-dir", str(EXAMPLE),
                        "--port", str(port), env=_no_services())
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert result.stderr.strip().splitlines()[-1].startswith("rating api: ")


def test_api_with_its_port_taken_never_says_it_is_serving(tmp_path: Path) -> None:
    # "api: serving on http://127.0.0.1:PORT" came first, then uvicorn's bind error.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = rating("--log-format", "text", "api", "--tokens", str(DEV_TOKENS),
                        "--history-url", _empty_history(tmp_path), "--catalog-dir",
                        str(EXAMPLE), "--port", str(port), env=_no_services())
    error = _one_sentence(result, "api")
    assert error.startswith(f"rating api: cannot serve on 127.0.0.1:{port}: Address already "
                            "in use"), error
    assert "serving on" not in result.stdout + result.stderr


def test_api_on_port_0_says_the_port_it_serves_on(tmp_path: Path) -> None:
    # It said "serving on http://127.0.0.1:0".
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "--log-format", "json", "api", "--tokens",
         str(DEV_TOKENS), "--history-url", _empty_history(tmp_path), "--catalog-dir",
         str(EXAMPLE), "--port", "0"], cwd=REPO_ROOT, env=_no_services(),
        stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("serving on" in line for line in lines):
            assert server.poll() is None, lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.1)
        serving = next(json.loads(line)["message"] for line in lines if "serving on" in line)
        found = re.match(r"api: serving on http://127\.0\.0\.1:(\d+) ", serving)
        assert found, serving
        assert int(found[1]) != 0, serving
        answer = httpx.get(f"http://127.0.0.1:{found[1]}/healthz", timeout=10)
        assert answer.json() == {"status": "ok"}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
        reader.join(5)
    assert server.returncode == 0, lines[-5:]


def test_settings_file_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_bytes(b"\xff\xfe log_level: INFO\n")
    error = _one_sentence(rating("--settings", str(settings), "catalog", "validate"), "catalog")
    assert str(settings) in error


def test_settings_file_with_broken_yaml_is_one_line(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("topics: [\n")
    error = _one_sentence(rating("--settings", str(settings), "catalog", "validate"), "catalog")
    assert str(settings) in error


def test_api_token_file_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_bytes(b"\xff\xfetokens: []\n")
    error = _one_sentence(rating("api", "--tokens", str(tokens), env=_no_services()), "api")
    assert str(tokens) in error


def test_produce_file_with_bad_entries_names_the_entry(tmp_path: Path) -> None:
    good = {"service_item_type": "HardDisk", "service_item_id": "hd-1", "operation": "Order",
            "requester": "alice", "home_ou": "eng/platform"}
    cases = {"not-an-object.json": [1, 2],
             "bad-time.json": [{**good, "event_time": "yesterday"}],
             "attributes-list.json": [{**good, "attributes": [1]}],
             "number-as-type.json": [{**good, "service_item_type": 123}],
             "null-attribute.json": [{**good, "attributes": {"quantity": None}}],
             "no-utc-offset.json": [{**good, "event_time": "2026-11-03T10:00:00"}],
             "boolean-attribute.json": [{**good, "attributes": {"quantity": True}}]}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        error = _one_sentence(rating("produce", "--file", str(path), env=_no_services()),
                              "produce")
        assert f"{path}#0" in error, (name, error)


def test_produce_file_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b"\xff\xfe[]")
    error = _one_sentence(rating("produce", "--file", str(path), env=_no_services()),
                          "produce")
    assert str(path) in error


def test_report_to_an_unwritable_file_is_one_sentence(tmp_path: Path) -> None:
    error = _one_sentence(rating("report", "summary", "--period", "2026-11", "--history-url",
                                 _empty_history(tmp_path), "--out", "/proc/summary.csv",
                                 env=_no_services()), "report")
    assert "/proc/summary.csv" in error


# -- silent no-ops and wrong answers ----------------------------------------------------

def _may_history(tmp_path: Path) -> str:
    """May 2024 of tests/unit/reports/sample.py: rows of (platform), acme and nimbus."""
    from sinks.base import SinkRecord
    from sinks.history import open_history_store
    from tests.unit.reports.sample import may_values

    url = f"sqlite:///{tmp_path / 'history.db'}"
    store = open_history_store(url)
    store.write_batch([SinkRecord("usage.rated", 0, n, value)
                       for n, value in enumerate(may_values())])
    store.close()
    return url


@pytest.mark.parametrize("kind", ["provider", "export"])
def test_report_of_a_provider_without_rows_is_refused_not_an_empty_statement(
        kind: str, tmp_path: Path) -> None:
    # It wrote "nosuch: no usage in 2024-05, nothing to invoice" and exited 0.
    url = _may_history(tmp_path)
    for period, having in (("2024-05", "its providers in 2024-05: (platform), acme, nimbus"),
                           ("2024-06", "it has no rows at all for 2024-06")):
        error = _one_sentence(rating("report", kind, "--period", period, "--provider", "nosuch",
                                     "--history-url", url, "--out", str(tmp_path),
                                     env=_no_services()), "report")
        assert error == (f"rating report: --provider nosuch: the billing history has no rows "
                         f"of that provider for {period} ({having})")
    assert [path.name for path in tmp_path.iterdir()] == ["history.db"]  # no file written


def test_produce_of_an_empty_file_is_refused_not_a_silent_success(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text("[]")
    error = _one_sentence(rating("produce", "--file", str(path), env=_no_services()),
                          "produce")
    assert str(path) in error


def test_licence_invoices_from_a_mistyped_history_path_are_refused(tmp_path: Path) -> None:
    # `rating report` refuses a history file that does not exist (must_exist): a typo must
    # not give an empty document whose control check passes. The invoices did not.
    missing = tmp_path / "typo.db"
    result = rating("licences", "invoices", "--fiscal-year", "2027", "--type", "annual",
                    "--dir", str(EXAMPLE), "--history-url", f"sqlite:///{missing}",
                    "--out", str(tmp_path / "invoices"), env=_no_services())
    error = _one_sentence(result, "licences")
    assert "no billing history" in error
    assert not missing.exists()
    assert not (tmp_path / "invoices").exists()


# -- exit codes and pipes ---------------------------------------------------------------

def _to_closed_pipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The command with its stdout a pipe whose reader has already gone (`| head -0`)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "stream.cli", *args], cwd=REPO_ROOT,
                              stdout=write, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write)


def test_output_to_a_closed_pipe_is_no_traceback() -> None:
    result = _to_closed_pipe("catalog", "show", "--dir", str(EXAMPLE))
    assert b"Traceback" not in result.stderr, result.stderr.decode()[-300:]


def test_catalog_diff_of_identical_folders_exits_0_even_into_a_closed_pipe() -> None:
    # 1 means "the versions differ" to a script: a broken pipe must not say so.
    result = _to_closed_pipe("catalog", "diff", "--dir", str(EXAMPLE), "--against",
                             str(EXAMPLE))
    assert result.returncode != 1, result.stderr.decode()[-300:]


# -- unreachable Kafka ------------------------------------------------------------------

def test_topics_with_kafka_unreachable_is_one_sentence_not_a_hang() -> None:
    result = rating("topics", env=_no_services(), timeout=90)  # it gives up after 30 s
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rating topics: ")
    assert "Kafka" in last


def test_catalog_diff_with_kafka_unreachable_does_not_say_there_is_no_catalog() -> None:
    result = rating("catalog", "diff", "--dir", str(EXAMPLE), env=_no_services(), timeout=90)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "run `rating catalog load`" not in last, last  # the cause is the broker
    assert "reachable" in last or "unreachable" in last, last


def _read_end_offsets(connections: Connections) -> object:
    from stream import readback

    return readback.end_offsets(connections, "usage.rated", timeout_s=2)


def _read_all(connections: Connections) -> object:
    from stream import readback

    return readback.read_all(connections, "usage.rated", decoder=None,  # type: ignore[arg-type]
                             timeout_s=2)


@pytest.mark.parametrize("read", [_read_end_offsets, _read_all])
def test_reading_a_topic_with_kafka_unreachable_is_one_sentence(
        read: Callable[[Connections], object]) -> None:
    # `rating tail` and the demo's read-backs: a KafkaException traceback before.
    from stream.readback import KafkaErrorOnRead

    connections = Connections(f"127.0.0.1:{_closed_port()}", "http://127.0.0.1:1",
                              "redis://127.0.0.1:1/0")
    with pytest.raises(KafkaErrorOnRead, match=r"^topic usage.rated: Kafka unreachable, no "
                                               r"metadata within 2 s"):
        read(connections)


def test_with_log_format_json_every_line_but_the_error_is_json_kafkas_own_too() -> None:
    # librdkafka wrote "%3|...|FAIL|rdkafka#consumer-1| ..." lines straight to stderr.
    result = rating("--log-format", "json", "catalog", "diff", "--dir", str(EXAMPLE),
                    env=_no_services(), timeout=90)
    *logged, error = result.stderr.strip().splitlines()
    assert error.startswith("rating catalog: "), error
    records = [json.loads(line) for line in logged]  # fails on any line that is not JSON
    assert any(record["logger"] == "librdkafka" and "Connect to" in record["message"]
               for record in records), logged[:3]


def test_an_attribute_flag_without_a_name_is_refused() -> None:
    error = _one_sentence(rating("produce", "--item-type", "HardDisk", "--item-id", "hd-1",
                                 "--operation", "Order", "--requester", "alice",
                                 "--home-ou", "eng/platform", "--attr", "=5",
                                 env=_no_services()), "produce")
    assert "'=5': expected NAME=VALUE" in error


@pytest.mark.parametrize("args", [
    ("simulate", "--events", "-5"),
    ("simulate", "--events", "0"),
    ("simulate", "--bad-fraction", "7"),
    ("simulate", "--rate", "-3"),
    ("simulate", "--rate", "nan"),
    ("demo", "--events", "0"),
    ("licences", "invoices", "--fiscal-year", "-5", "--type", "annual"),
    ("licences", "invoices", "--fiscal-year", "99999", "--type", "annual"),
    ("billing-run", "--fiscal-year", "27", "--type", "annual"),
])
def test_values_a_command_could_only_do_nothing_with_are_refused_before_it_starts(
        args: tuple[str, ...]) -> None:
    # They ran: `simulate --events -5` published nothing and exited 0, and invoices for
    # fiscal year -5 were written.
    result = rating(*args, env=_no_services())
    assert result.returncode == 2, result.stderr[-300:]
    assert "usage: " in result.stderr
    assert args[-1] in result.stderr or args[-3] in result.stderr


@pytest.mark.integration
def test_ctrl_c_while_process_waits_for_a_catalog_stops_it_at_once(
        connections: Connections) -> None:
    # It logged "finishing the current batch, then stopping", waited out the rest of the
    # 60 s catalog wait and exited 2 saying there was no catalog.
    from tests.cli.test_cli import _live_env

    suffix = f"-ctrlc-{uuid.uuid4().hex[:8]}"  # topics nobody made: no catalog arrives
    child = subprocess.Popen([sys.executable, "-m", "stream.cli", "process", "--metrics-port",
                              "0"], cwd=REPO_ROOT, env=_live_env(connections, suffix),
                             stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # start-up, then the catalog wait
        assert child.poll() is None, "it should still be waiting for a catalog"
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=20)  # the wait is 60 s: a hang fails here
    finally:
        child.kill()
    assert child.returncode == 0, stderr[-500:]
    assert "stopped before a catalog arrived" in stderr


def test_against_with_anything_but_diff_is_refused_not_ignored() -> None:
    error = _one_sentence(rating("catalog", "validate", "--dir", str(EXAMPLE), "--against",
                                 str(EXAMPLE), env=_no_services()), "catalog")
    assert error == "rating catalog: --against is for `catalog diff`, not `catalog validate`"


@pytest.mark.integration
def test_a_billing_run_with_a_mistyped_history_path_bills_nothing(
        connections: Connections, tmp_path: Path) -> None:
    # The run was requested (licences billed on Kafka), then the command waited on an
    # empty history it had just created, and failed at its timeout.
    from stream.readback import end_offsets
    from tests.cli.test_cli import _live_env

    suffix = f"-billtypo-{uuid.uuid4().hex[:8]}"
    env = _live_env(connections, suffix)
    assert rating("topics", env=env).returncode == 0
    assert rating("catalog", "load", env=env).returncode == 0
    missing = tmp_path / "histroy.db"
    result = rating("billing-run", "--fiscal-year", "2027", "--type", "annual",
                    "--history-url", f"sqlite:///{missing}", "--out", str(tmp_path),
                    "--timeout", "60", env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-500:]
    error = result.stderr.strip().splitlines()[-1]  # after the catalog feed's log line
    assert error.startswith(f"rating billing-run: no billing history at {missing}"), error
    assert not missing.exists()
    requests = end_offsets(connections, f"licence.events{suffix}")
    assert sum(requests.values()) == 0, requests  # no run was requested


@pytest.mark.integration
def test_a_billing_run_years_ahead_is_refused_before_it_is_requested(
        connections: Connections, tmp_path: Path) -> None:
    """--fiscal-year 2099 for 2027: it would bill every licence for a year to come and close
    the earlier years' late true-ups for good."""
    from stream.readback import end_offsets
    from tests.cli.test_cli import _live_env

    suffix = f"-billahead-{uuid.uuid4().hex[:8]}"
    env = _live_env(connections, suffix)
    assert rating("topics", env=env).returncode == 0
    assert rating("catalog", "load", env=env).returncode == 0
    result = rating("billing-run", "--fiscal-year", "2099", "--type", "annual",
                    "--out", str(tmp_path), "--timeout", "60", env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-500:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("rating billing-run: --fiscal-year 2099 --type annual: the run "
                            "bills as of 2098-07-01, more than 31 days after today"), error
    assert error.endswith("a mistyped year? Nothing was requested")
    requests = end_offsets(connections, f"licence.events{suffix}")
    assert sum(requests.values()) == 0, requests


def test_licence_changes_an_empty_file_and_an_impossible_date_are_refused(
        tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    error = _one_sentence(rating("licences", "produce", "--file", str(empty),
                                 env=_no_services()), "licences")
    assert error.endswith(f"{empty}: no licence changes in the file"), error
    february = tmp_path / "february.json"
    february.write_text(json.dumps([{"action": "provisioned", "campus": "boulder",
                                     "record_number": "r-1", "user": "u-1",
                                     "product": "salesforce", "effective_date": "2026-02-30"}]))
    error = _one_sentence(rating("licences", "produce", "--file", str(february),
                                 env=_no_services()), "licences")
    assert f"{february}: item 0: effective_date must be a date" in error
    assert "day is out of range for month" in error


def test_a_history_url_for_a_redis_sink_is_refused_not_ignored() -> None:
    error = _one_sentence(rating("sink", "aggregates", "--url", "nosuch://x",
                                 env=_no_services()), "sink")
    assert "--url is the billing-history store; the aggregates sink writes to Redis" in error
