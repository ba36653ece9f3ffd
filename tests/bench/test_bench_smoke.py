"""The benchmark harness on the real broker with tiny numbers.

Checks that every contender processed exactly all input events, once: the
loop committed every input record and each output topic holds exactly the
records the pure engine says it should. Timing is not checked (a loaded CI
machine says nothing about speed). Faust joins with BENCH_SMOKE_FAUST=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.harness import BenchConfig, run_benchmark
from stream.settings import Connections

pytestmark = pytest.mark.integration

CONTENDERS = ("passthrough", "rating", *(("faust",) if os.environ.get("BENCH_SMOKE_FAUST")
                                         else ()))


def test_every_contender_processes_exactly_all_input_events(connections: Connections,
                                                            tmp_path: Path) -> None:
    report = run_benchmark(connections, BenchConfig(events=300, contenders=CONTENDERS,
                                                    limit_s=60.0, faust_cap_s=60.0,
                                                    work_dir=tmp_path))

    expected = report.expected
    assert expected.events == 300
    # The workload exercises every path: rated, skipped and dead-lettered events.
    assert expected.rated > 0
    assert expected.skipped > 0
    assert expected.dead_letters > 0
    assert [r.contender.split(" ")[0] for r in report.results] == [
        {"passthrough": "pass-through", "rating": "rating", "faust": "faust"}[c]
        for c in CONTENDERS]
    for result in report.results:
        assert result.complete, f"{result.contender}: {result.note}"
        assert result.processed == result.events == expected.events
        assert result.outputs == result.expected_outputs, result.contender
        assert result.verified
    rating = report.result("rating")
    assert rating is not None
    assert rating.outputs == {"by_account": expected.routed, "rated": expected.rated,
                              "late": expected.late, "dlq": expected.dead_letters}
