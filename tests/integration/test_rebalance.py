"""Two processor instances share the partitions; one joins and one leaves mid-stream."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline, ProcessorProcess
from tests.integration.test_crash_recovery import assert_exactly_as_without_crash

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

    assert_exactly_as_without_crash(pipeline, waves)
    restored = [int(n) for n in re.findall(r"restored \S+\[[^\]]*\]: (\d+) records",
                                           second.log_path.read_text())]
    assert len(restored) >= 2, "the second instance must have been assigned twice"
    assert max(restored) > 0, "state must really move between instances"
