"""The benchmark harness on the real broker with tiny numbers.

Checks that every contender processed exactly all input events, once: its
loop committed every input record, the outputs that depend only on the input
(re-keyed events, dead letters, late events) hold exactly the records the
pure engine predicts, and no event id was rated twice. Quota outcomes depend
on the order an account's events arrive in, which re-keying interleaves, so
those counts are not compared. Timing is not checked either: a loaded CI
machine says nothing about speed. Faust runs too (about 25 s): it drives our compiled
stages through its own adapter objects, which the other lanes do not.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.broker_cpu import broker_cpu_reader
from bench.harness import BenchConfig, run_benchmark
from bench.report import method, print_report
from stream.settings import Connections

pytestmark = pytest.mark.integration

CONTENDERS = ("passthrough", "rating", "rating-no-quota", "faust")
LABELS = {"passthrough": "pass-through", "rating": "rating", "rating-no-quota": "no-quota",
          "faust": "faust"}


def test_every_contender_processes_exactly_all_input_events(connections: Connections,
                                                            tmp_path: Path) -> None:
    progress: list[str] = []
    report = run_benchmark(connections, BenchConfig(events=300, contenders=CONTENDERS,
                                                    limit_s=60.0, faust_cap_s=60.0,
                                                    rounds=2, warm_up=True,
                                                    work_dir=tmp_path),
                           say=progress.append)

    expected = report.expected
    assert expected.events == 300
    # The workload exercises every path: rated, skipped and dead-lettered events.
    assert expected.rated > 0
    assert expected.skipped > 0
    assert expected.dead_letters > 0
    # Two rounds, each contender on its own lanes; faust only in the last one. The
    # warm-up lane is not reported.
    assert any(line.startswith("warm-up (untimed, not reported): rating (router+rater) 300 "
                               "events")
               for line in progress), progress
    assert [(r.round, r.contender.split(" ")[0]) for r in report.results] == [
        *((1, LABELS[c]) for c in CONTENDERS if c != "faust"),
        *((2, LABELS[c]) for c in CONTENDERS)]
    for result in report.results:
        assert result.mismatches == [], f"{result.contender}: {result.note}"
        assert result.processed == result.events == expected.events
    for result in report.results:
        if result.contender == "pass-through":
            assert result.outputs == {"by_account": expected.events}
            continue
        assert result.outputs["by_account"] == expected.routed
        assert result.outputs["dlq"] == expected.dead_letters
        assert result.outputs["rated"] > 0
        assert result.rated_twice == 0
    by_label = {r.contender.split(" ")[0]: r for r in report.results}
    # Without agreements nothing is blocked: more is rated, nothing lands on usage.rejected.
    assert by_label["no-quota"].outputs.get("rejected", 0) == 0
    assert by_label["no-quota"].outputs["rated"] >= by_label["rating"].outputs["rated"]
    # The table has one row per contender, with the rounds it ran in.
    table = io.StringIO()
    print_report(report, method(report, {}, {"cores": 2, "load_1m": 0.0}), table)
    rows = {line.split("  ")[0]: line.split() for line in table.getvalue().splitlines()
            if line.startswith(("pass-through ", "rating ", "faust "))}
    assert set(rows) == {"pass-through", "rating (router+rater)", "faust"}, \
        table.getvalue()
    assert rows["pass-through"][1:3] == ["300", "2"]
    assert rows["rating (router+rater)"][2:4] == ["300", "2"]
    assert rows["faust"][1:3] == ["300", "1"]
    assert "  pass-through (the same in all 2 rounds): by_account 300\n" in table.getvalue()
    # Against the local stack's broker, its CPU is read over the same commits as ours
    # (first to last: a lane of 300 events may be one batch, then neither is measured).
    local_broker = broker_cpu_reader(connections) is not None
    measured = [r for r in report.results if r.extra.get("cpu_us_per_event") is not None]
    assert measured, "no lane committed more than one batch"
    for result in measured:
        broker = result.extra["broker_cpu_us_per_event"]
        assert (broker is not None) is local_broker, result.contender


def test_the_yardstick_lanes_and_one_process_per_core_process_all_input(
        connections: Connections, tmp_path: Path) -> None:
    contenders = ("passthrough-avro", "passthrough-2hop", "parallel")
    report = run_benchmark(connections, BenchConfig(events=300, contenders=contenders,
                                                    limit_s=60.0, processes=2,
                                                    work_dir=tmp_path))

    expected = report.expected
    avro, two_hop, per_core = report.results
    assert avro.contender == "Avro pass-through"
    assert avro.mismatches == []
    assert avro.outputs == {"by_account": expected.events}
    assert two_hop.mismatches == []
    assert two_hop.outputs == {"by_account": expected.events, "rated": expected.events}
    assert per_core.contender == "per-core rating (2 processes)"
    assert per_core.mismatches == [], per_core.note
    assert per_core.processed == expected.events
    assert per_core.outputs["by_account"] == expected.routed
    assert per_core.outputs["dlq"] == expected.dead_letters
    assert per_core.rated_twice == 0
    assert [timing["complete"] for timing in per_core.extra["per_process"]] == [True, True]
