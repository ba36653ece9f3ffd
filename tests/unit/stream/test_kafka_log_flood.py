"""librdkafka's lines while a broker is down: each kind shown once, then a count per interval."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer

from stream.clients import KAFKA_LOG, KAFKA_LOG_FLOOD
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


def _logger(clock: FakeClock, formatter: logging.Formatter
            ) -> tuple[logging.Logger, Lines, KafkaLogFloodFilter]:
    """A logger of its own with the filter, as the ``librdkafka`` logger has it (no timer:
    the clock is a fake one; the test calls ``flush_due`` instead)."""
    logger = logging.Logger("librdkafka")
    flood = KafkaLogFloodFilter(logger, interval_s=30.0, clock=clock, ticker=False)
    logger.addFilter(flood)
    lines = Lines(formatter)
    logger.addHandler(lines)
    return logger, lines, flood


def _kafka_line(logger: logging.Logger, text: str, facility: str = "FAIL",
                client: str = "rdkafka#producer-1", level: int = logging.ERROR) -> None:
    logger.log(level, "%s [%s] %s", facility, client, text)  # as confluent_kafka logs it


def test_a_flood_shows_the_first_line_then_one_count_per_interval(clock: FakeClock) -> None:
    logger, out, _ = _logger(clock, logging.Formatter("%(message)s"))
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
    logger, out, _ = _logger(clock, logging.Formatter("%(message)s"))
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
    logger, out, _ = _logger(clock, logging.Formatter("%(message)s"))
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
    logger, out, _ = _logger(clock, JsonFormatter())
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
    logger, out, _ = _logger(clock, logging.Formatter(TEXT_FORMAT))
    for _ in range(3):
        _kafka_line(logger, REFUSED.format(ms=0))
    clock.now += 45
    _kafka_line(logger, REFUSED.format(ms=0))
    assert len(out.lines) == 2
    assert out.lines[1].endswith(" ERROR librdkafka: FAIL [rdkafka#producer-1] "
                                 + REFUSED.format(ms=0) + " (2 more like this in the last "
                                 "45 s were not logged)")


def _flood(logger: logging.Logger, lines: int, client: str = "rdkafka#producer-1") -> None:
    for n in range(lines):
        _kafka_line(logger, REFUSED.format(ms=n % 3), client=client)


def test_a_flood_then_silence_is_counted_once_its_interval_is_over(clock: FakeClock) -> None:
    logger, out, flood = _logger(clock, logging.Formatter("%(message)s"))
    _flood(logger, 57)  # the broker is down...
    clock.now += 29  # ...and back: not a line more of that kind, ever
    flood.flush_due()
    assert len(out.lines) == 1  # not due yet
    clock.now += 1
    flood.flush_due()
    assert out.lines[1:] == ["56 more like this in the last 30 s were not logged: FAIL "
                             "[rdkafka#producer-1] " + REFUSED.format(ms=2)]  # the last one
    clock.now += 600
    flood.flush_due()
    flood.flush_all()
    assert len(out.lines) == 2  # said once


def test_a_line_of_another_kind_brings_a_due_count_first(clock: FakeClock) -> None:
    logger, out, _ = _logger(clock, logging.Formatter("%(message)s"))
    _flood(logger, 5)
    clock.now += 45
    _kafka_line(logger, "[thrd:main]: Cluster connection up", facility="CONNECT",
                level=logging.INFO)
    _kafka_line(logger, "[thrd:main]: Cluster connection up again", facility="CONNECT",
                level=logging.INFO)
    assert out.lines[1:] == [
        "4 more like this in the last 45 s were not logged: FAIL [rdkafka#producer-1] "
        + REFUSED.format(ms=1),
        "CONNECT [rdkafka#producer-1] [thrd:main]: Cluster connection up",
        "CONNECT [rdkafka#producer-1] [thrd:main]: Cluster connection up again"]


def test_a_held_back_line_of_another_kind_brings_a_due_count_too(clock: FakeClock) -> None:
    logger, out, _ = _logger(clock, logging.Formatter("%(message)s"))
    _flood(logger, 3)
    clock.now += 20
    _flood(logger, 3, client="rdkafka#consumer-2")  # another flood starts
    clock.now += 10
    _flood(logger, 1, client="rdkafka#consumer-2")  # held back, yet the first one is due
    assert [line.split(":")[0] for line in out.lines] == [
        "FAIL [rdkafka#producer-1] [thrd", "FAIL [rdkafka#consumer-2] [thrd",
        "2 more like this in the last 30 s were not logged"]
    assert "[rdkafka#producer-1]" in out.lines[2]


def test_at_shutdown_flush_all_reports_every_count_due_or_not(clock: FakeClock) -> None:
    logger, out, flood = _logger(clock, logging.Formatter("%(message)s"))
    _flood(logger, 10)
    _flood(logger, 4, client="rdkafka#consumer-2")
    _flood(logger, 1, client="rdkafka#admin-3")  # nothing held back: nothing to say
    clock.now += 5
    flood.flush_all()
    flood.flush_all()
    clock.now += 60
    flood.flush_due()
    assert sorted(out.lines[3:]) == [
        "3 more like this in the last 5 s were not logged: FAIL [rdkafka#consumer-2] "
        + REFUSED.format(ms=0),
        "9 more like this in the last 5 s were not logged: FAIL [rdkafka#producer-1] "
        + REFUSED.format(ms=0)]


def test_every_line_is_shown_or_counted_exactly_once(clock: FakeClock) -> None:
    logger, out, flood = _logger(clock, JsonFormatter())
    sent = 0
    for second in range(200):  # a flood with gaps, flushed now and then, at any moment
        if second % 50 < 35:
            _flood(logger, 7)
            sent += 7
        if second % 13 == 0:
            flood.flush_due()
        clock.now += 1.0
    flood.flush_all()
    records = [json.loads(line) for line in out.lines]
    shown = [record for record in records if record["message"].startswith("FAIL ")]
    assert len(shown) + sum(record.get("unlogged", 0) for record in records) == sent
    assert len(records) <= 2 * (200 // 30 + 1)  # still about one line each interval


def test_the_count_line_is_json_at_the_level_of_the_lines_it_counts(clock: FakeClock) -> None:
    logger, out, flood = _logger(clock, JsonFormatter())
    for _ in range(4):
        _kafka_line(logger, REFUSED.format(ms=0) + " 50% done", level=logging.WARNING)
    clock.now += 31
    flood.flush_due()
    count = json.loads(out.lines[-1])
    assert count["logger"] == "librdkafka"
    assert count["level"] == "WARNING"
    assert count["unlogged"] == 3
    assert count["message"] == ("3 more like this in the last 31 s were not logged: FAIL "
                                "[rdkafka#producer-1] " + REFUSED.format(ms=0) + " 50% done")


def test_the_count_line_is_not_held_back_or_counted_itself(clock: FakeClock) -> None:
    logger, out, flood = _logger(clock, logging.Formatter("%(message)s"))
    for _ in range(3):  # count lines alike but for their numbers, one right after another
        _flood(logger, 2)
        clock.now += 1
        flood.flush_all()
    clock.now += 100
    flood.flush_all()
    assert out.lines == [
        "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0),
        "1 more like this in the last 1 s were not logged: FAIL [rdkafka#producer-1] "
        + REFUSED.format(ms=1),
        *["2 more like this in the last 1 s were not logged: FAIL [rdkafka#producer-1] "
          + REFUSED.format(ms=1)] * 2]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _timers() -> int:
    return sum(thread.name == "kafka-log-flood" for thread in threading.enumerate())


def test_the_timer_reports_a_due_count_with_no_call_and_stops_when_nothing_is_held(
        ) -> None:
    timers = _timers()
    logger = logging.Logger("librdkafka")
    logger.addFilter(KafkaLogFloodFilter(logger, interval_s=0.2))  # the real clock
    out = Lines(logging.Formatter("%(message)s"))
    logger.addHandler(out)
    _flood(logger, 5)
    assert _wait_for(lambda: len(out.lines) == 2)
    assert out.lines[1].startswith("4 more like this in the last 0 s were not logged: FAIL ")
    assert _wait_for(lambda: _timers() == timers)  # nothing held back: no timer left
    time.sleep(0.5)
    assert len(out.lines) == 2
    _flood(logger, 3)  # the first one shown, two held back: the timer again
    assert _wait_for(lambda: len(out.lines) == 4)
    assert out.lines[2] == "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0)
    assert out.lines[3].startswith("2 more like this in the last 0 s were not logged: FAIL ")
    assert _wait_for(lambda: _timers() == timers)


@pytest.fixture
def kafka_lines() -> Iterator[Lines]:
    """The process's ``librdkafka`` logger, its filter's counts of other tests said before
    and this test's after (to nobody: the timer and the exit have nothing left)."""
    KAFKA_LOG_FLOOD.flush_all()
    lines = Lines(logging.Formatter("%(message)s"))
    KAFKA_LOG.addHandler(lines)
    level = KAFKA_LOG.level
    KAFKA_LOG.setLevel(logging.INFO)
    yield lines
    KAFKA_LOG.removeHandler(lines)
    KAFKA_LOG_FLOOD.flush_all()
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


def test_a_real_producer_s_last_stretch_is_counted_after_it_is_closed(
        kafka_lines: Lines) -> None:
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "logger": KAFKA_LOG,
                         "message.timeout.ms": 10_000})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        producer.produce("flood-test", b"x")
        producer.poll(0.05)
    producer.purge()
    producer.flush(1)
    producer.close()
    shown = len(kafka_lines.lines)
    KAFKA_LOG_FLOOD.flush_all()  # as at the process's exit
    counts = kafka_lines.lines[shown:]
    refused = [line for line in counts if "Connection refused" in line]
    assert len(refused) == 1, counts
    held_back, rest = refused[0].split(" ", 1)
    assert int(held_back) >= 5, refused  # about a dozen a second, one shown
    assert rest.startswith("more like this in the last 3 s were not logged: FAIL "), refused
