"""librdkafka's lines while a broker is down: each kind shown once, then a count per interval."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from stream.clients import KAFKA_LOG
from stream.kafka_log_flood import KafkaLogFloodFilter
from stream.logs import TEXT_FORMAT, JsonFormatter

REFUSED = ("[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap: Connect to "
           "ipv4#127.0.0.1:9092 failed: Connection refused (after {ms}ms in state CONNECT)")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Every record that got through, formatted."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _logger(clock: FakeClock, formatter: logging.Formatter) -> tuple[logging.Logger, Lines]:
    """A logger of its own with the filter, as the ``librdkafka`` logger has it."""
    logger = logging.Logger("librdkafka")
    logger.addFilter(KafkaLogFloodFilter(interval_s=30.0, clock=clock))
    lines = Lines(formatter)
    logger.addHandler(lines)
    return logger, lines


def _kafka_line(logger: logging.Logger, text: str, facility: str = "FAIL",
                client: str = "rdkafka#producer-1", level: int = logging.ERROR) -> None:
    logger.log(level, "%s [%s] %s", facility, client, text)  # as confluent_kafka logs it


def test_a_flood_shows_the_first_line_then_one_count_per_interval(clock: FakeClock) -> None:
    logger, out = _logger(clock, logging.Formatter("%(message)s"))
    for _ in range(90):  # 20 a second for a minute and a half
        for n in range(20):
            _kafka_line(logger, REFUSED.format(ms=n % 3))
        clock.now += 1.0
    first, *counts = out.lines
    assert first == "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0)
    # At 30 s and 60 s: the occurrence of that moment, with how many were held back.
    assert counts == [
        "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0)
        + " (599 more like this in the last 30 s were not logged)"] * 2


def test_other_lines_and_a_new_kind_pass_at_once(clock: FakeClock) -> None:
    logger, out = _logger(clock, logging.Formatter("%(message)s"))
    for _ in range(5):
        _kafka_line(logger, REFUSED.format(ms=0))
    _kafka_line(logger, "[thrd:main]: Cluster connection up", facility="CONNECT",
                level=logging.INFO)
    _kafka_line(logger, REFUSED.format(ms=0), client="rdkafka#consumer-2")
    _kafka_line(logger, REFUSED.format(ms=0).replace("state CONNECT", "state APIVERSION_QUERY"))
    _kafka_line(logger, REFUSED.format(ms=7))  # numbers only: the same kind, held back
    assert [line.split(" ", 2)[:2] for line in out.lines] == [
        ["FAIL", "[rdkafka#producer-1]"], ["CONNECT", "[rdkafka#producer-1]"],
        ["FAIL", "[rdkafka#consumer-2]"], ["FAIL", "[rdkafka#producer-1]"]]
    assert "APIVERSION_QUERY" in out.lines[-1]


def test_a_kind_back_after_a_quiet_interval_is_shown_plain(clock: FakeClock) -> None:
    logger, out = _logger(clock, logging.Formatter("%(message)s"))
    _kafka_line(logger, REFUSED.format(ms=0))
    clock.now += 29.9
    _kafka_line(logger, REFUSED.format(ms=0))  # held back
    clock.now += 600
    _kafka_line(logger, REFUSED.format(ms=0))  # the count of the last stretch, late
    clock.now += 600
    _kafka_line(logger, REFUSED.format(ms=0))  # nothing held back since: a plain line
    assert out.lines[1].endswith("(1 more like this in the last 630 s were not logged)")
    assert out.lines[2] == out.lines[0] == "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0)


def test_the_count_is_a_json_field_and_every_line_stays_one_json_object(
        clock: FakeClock) -> None:
    logger, out = _logger(clock, JsonFormatter())
    for _ in range(4):
        _kafka_line(logger, REFUSED.format(ms=0) + " 50% done")  # a % in the text
    clock.now += 30
    _kafka_line(logger, REFUSED.format(ms=0) + " 50% done")
    first, count = (json.loads(line) for line in out.lines)
    assert "unlogged" not in first
    assert count["logger"] == "librdkafka"
    assert count["level"] == "ERROR"
    assert count["unlogged"] == 3
    assert count["message"].endswith("50% done (3 more like this in the last 30 s were not "
                                     "logged)")


def test_text_format_shows_the_count(clock: FakeClock) -> None:
    logger, out = _logger(clock, logging.Formatter(TEXT_FORMAT))
    for _ in range(3):
        _kafka_line(logger, REFUSED.format(ms=0))
    clock.now += 45
    _kafka_line(logger, REFUSED.format(ms=0))
    assert len(out.lines) == 2
    assert out.lines[1].endswith(" ERROR librdkafka: FAIL [rdkafka#producer-1] "
                                 + REFUSED.format(ms=0) + " (2 more like this in the last "
                                 "45 s were not logged)")


@pytest.fixture
def kafka_lines() -> Iterator[Lines]:
    lines = Lines(logging.Formatter("%(message)s"))
    KAFKA_LOG.addHandler(lines)
    level = KAFKA_LOG.level
    KAFKA_LOG.setLevel(logging.INFO)
    yield lines
    KAFKA_LOG.removeHandler(lines)
    KAFKA_LOG.setLevel(level)


def test_a_real_producer_at_a_closed_port_logs_a_bounded_number_of_lines(
        kafka_lines: Lines) -> None:
    # Unfiltered, this producer logs about a dozen "Connect to ... failed" lines a second.
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "logger": KAFKA_LOG,
                         "message.timeout.ms": 10_000})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        producer.produce("flood-test", b"x")  # wanting a connection, it keeps retrying
        producer.poll(0.05)
    producer.purge()
    producer.flush(1)
    refused = [line for line in kafka_lines.lines if "Connection refused" in line]
    assert 1 <= len(refused) <= 2, kafka_lines.lines
    assert len(kafka_lines.lines) <= 5, kafka_lines.lines
