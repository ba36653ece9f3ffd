"""Dead letters are all written, but a flood of them is not logged line by line."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Message

from bench import offline
from stream import dead_letters
from stream.dead_letters import LogBudget

FIXTURE = offline.fixture(events=50, seed=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_admits_the_first_ones_of_a_window_then_counts_the_rest() -> None:
    clock = FakeClock()
    budget = LogBudget(per_window=3, window_s=60.0, clock=clock)
    key = ("router", "UNDECODABLE")
    assert [budget.admit(key) for _ in range(5)] == [
        (True, False, 0), (True, False, 0), (True, True, 0), (False, False, 0),
        (False, False, 0)]
    # Another key has a budget of its own.
    assert budget.admit(("rater", "NO_RATE_GROUP")) == (True, False, 0)
    clock.now += 59.9
    assert budget.admit(key) == (False, False, 0)  # still the same window
    clock.now += 0.1
    # A new window: logged again, and the 3 unlogged of the last window are told once.
    assert budget.admit(key) == (True, False, 3)
    assert budget.admit(key) == (True, False, 0)
    clock.now += 600
    assert budget.admit(key) == (True, False, 0)  # nothing went unlogged in that one


def test_a_flood_of_garbage_is_all_dead_lettered_and_logged_within_the_budget(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(dead_letters, "_BUDGET", LogBudget(per_window=4, clock=clock))
    topics = FIXTURE.settings.topics
    garbage = [Message(topic=topics.events.name, partition=0, offset=offset, key=b"k",
                       value=b"not avro at all", timestamp=(1, 1_795_000_000_000))
               for offset in range(30)]
    lane = offline.new_lane(FIXTURE.codecs, FIXTURE.settings, FIXTURE.catalog)
    with caplog.at_level(logging.WARNING, logger="stream.dead_letters"):
        outputs = offline.run_stage(lane.router, garbage[:20])
        clock.now += 60
        outputs += offline.run_stage(lane.router, garbage[20:])
    assert [o.topic for o in outputs] == [topics.dlq.name] * 30
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.dead_letters"]
    one_by_one = [line for line in lines if "@" in line]
    assert [line.split("@")[1].split()[0] for line in one_by_one] == [
        "0", "1", "2", "3", "20", "21", "22", "23"]
    (reason,) = {line.split()[1] for line in one_by_one}
    notices = [line for line in lines if line not in one_by_one]
    assert notices == [
        f"dead-letter {reason}: 4 at stage router within a minute; more in this minute are "
        "counted, not logged one by one",
        f"dead-letter {reason}: 16 more at stage router in the previous minute were not "
        f"logged one by one (each is on {topics.dlq.name} with its origin)",
        f"dead-letter {reason}: 4 at stage router within a minute; more in this minute are "
        "counted, not logged one by one"]
