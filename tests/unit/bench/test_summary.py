"""How a run's rounds are summed up: medians, ratios paired by round, the targets."""

from __future__ import annotations

from bench.report import target_lines
from bench.results import Result
from bench.summary import find, median_ratio, paired_ratio, summarise


def row(contender: str, rate: float, round_number: int, *, processed: int = 1000,
        complete: bool = True) -> Result:
    return Result(contender=contender, events=1000, seconds=processed / rate,
                  complete=complete, processed=processed, outputs={}, expected_outputs={},
                  round=round_number)


def test_rows_are_grouped_per_contender_in_the_order_they_first_ran() -> None:
    rows = [row("pass-through", 40_000, 1), row("rating", 9_000, 1),
            row("pass-through", 50_000, 2), row("rating", 10_000, 2),
            row("faust (exactly_once)", 400, 2)]
    summaries = summarise(rows)
    assert [s.contender for s in summaries] == ["pass-through", "rating",
                                                "faust (exactly_once)"]
    assert [len(s.rows) for s in summaries] == [2, 2, 1]
    assert [r.round for r in summaries[1].rows] == [1, 2]


def test_the_rate_is_the_median_over_the_rounds() -> None:
    [rating] = summarise([row("rating", rate, n)
                          for n, rate in enumerate([9_000, 30_000, 10_000], start=1)])
    assert rating.median_rate == 10_000  # one fast outlier does not move it


def test_each_round_is_compared_with_the_same_rounds_baseline() -> None:
    # Round 1's pass-through ran on a cold broker: the ratio of the medians (9,500 over
    # 45,000) and the paired median differ, and the paired one leaves the slow round out
    # of every other round's comparison.
    summaries = summarise([row("pass-through", 12_000, 1), row("rating", 6_800, 1),
                           row("pass-through", 45_000, 2), row("rating", 9_500, 2),
                           row("pass-through", 50_000, 3), row("rating", 10_000, 3)])
    base, rating = find(summaries, "pass-through"), find(summaries, "rating")
    assert base is not None
    assert rating is not None
    ratio = paired_ratio(rating, base)
    assert ratio is not None
    assert round(ratio, 4) == round(9_500 / 45_000, 4)  # the median of .567, .211, .2
    assert target_lines(summaries)[0] == "target rating >= 50% of pass-through: 21% -> NOT MET"


def test_a_round_missing_on_one_side_is_left_out_of_the_pairing() -> None:
    summaries = summarise([row("pass-through", 40_000, 1), row("rating", 30_000, 1),
                           row("pass-through", 40_000, 2),
                           row("rating", 10_000, 3)])  # no pass-through in round 3
    base, rating = find(summaries, "pass-through"), find(summaries, "rating")
    assert base is not None
    assert rating is not None
    assert paired_ratio(rating, base) == 0.75
    assert target_lines(summaries)[0].endswith("75% -> MET")


def test_a_failed_row_has_no_rate_and_a_fallback_row_is_found_instead() -> None:
    summaries = summarise([row("faust (exactly_once)", 1, 1, processed=0, complete=False),
                           row("faust (at_least_once fallback)", 500, 1),
                           row("rating", 10_000, 1)])
    faust = find(summaries, "faust")
    assert faust is not None
    assert faust.contender == "faust (at_least_once fallback)"
    assert summaries[0].rates == []
    assert summaries[0].median_rate == 0.0
    assert not summaries[0].verified
    rating = find(summaries, "rating")
    assert rating is not None
    assert median_ratio(rating, faust) == 20.0
    assert "target rating >= 10x faust (at_least_once fallback): 20.0x -> MET" in \
        target_lines(summaries)


def test_faust_in_the_last_round_is_compared_with_the_rating_median() -> None:
    summaries = summarise([row("rating", 8_000, 1), row("rating", 9_000, 2),
                           row("rating", 20_000, 3), row("faust (exactly_once)", 450, 3)])
    rating, faust = find(summaries, "rating"), find(summaries, "faust")
    assert rating is not None
    assert faust is not None
    assert median_ratio(rating, faust) == 20.0  # 9,000 / 450, not round 3's 20,000 / 450


def test_cpu_per_event_is_the_median_of_the_rounds_that_measured_it() -> None:
    rows = [row("rating", 9_000, n) for n in (1, 2, 3)]
    rows[0].extra.update(cpu_us_per_event=90.0, broker_cpu_us_per_event=30.0)
    rows[1].extra.update(cpu_us_per_event=110.0)  # the broker was not the local stack's
    rows[2].extra.update(cpu_us_per_event=100.0, broker_cpu_us_per_event=40.0)
    [rating] = summarise(rows)
    assert rating.median_cpu_us == 100.0
    assert rating.median_broker_cpu_us == 35.0
    [unmeasured] = summarise([row("faust", 400, 1)])
    assert unmeasured.median_cpu_us is None
    assert unmeasured.median_broker_cpu_us is None
