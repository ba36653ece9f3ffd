"""Two processor instances share the partitions; one joins and one leaves mid-stream."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from processors.state import RatingState
from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline, ProcessorProcess, money_state
from tests.integration.test_crash_recovery import expected_totals, observed_totals

pytestmark = pytest.mark.integration


def _wait_for_assignment(process: ProcessorProcess, count: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while process.log_path.read_text().count(" assigned ") < count:
        process.check_alive()
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.1)


def test_rebalances_between_two_instances_keep_exact_totals(pipeline: Pipeline) -> None:
    pipeline.load_catalog()
    waves = order_independent_mix(30_000, seed=23)
    first = pipeline.start_processor("0")
    pipeline.publish(waves[:10_000])
    pipeline.wait_caught_up(timeout_s=180)

    second = pipeline.start_processor("1")   # joins: partitions and their state move to it
    _wait_for_assignment(second, 1)
    pipeline.publish(waves[10_000:20_000])
    pipeline.wait_caught_up(timeout_s=180)

    first.stop()                             # leaves: the second instance takes everything
    _wait_for_assignment(second, 2)
    pipeline.publish(waves[20_000:])
    pipeline.wait_caught_up(timeout_s=180)

    rated = [r.value for r in pipeline.rated()]
    counts = Counter(str(record["event_id"]) for record in rated)
    assert [event_id for event_id, count in counts.items() if count > 1] == []
    uncrashed = RatingState()
    assert observed_totals(rated) == expected_totals(waves, uncrashed)
    assert money_state(pipeline.restored_state()) == money_state(uncrashed)
    restored = [int(n) for n in re.findall(r"restored \S+\[[^\]]*\]: (\d+) records",
                                           second.log_path.read_text())]
    assert len(restored) >= 2, "the second instance must have been assigned twice"
    assert max(restored) > 0, "state must really move between instances"
