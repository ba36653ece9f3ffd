"""Each contender's rows over the rounds of a run, summed up by medians.

One round's figures swing by a third or more on the shared 2-core machine, and the
swings hit contenders run minutes apart differently. So the targets compare each
round's rating with the same round's pass-through (run a minute apart at most), and
take the median of those ratios; the rates shown are medians over the rounds too.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.results import Result


@dataclass(frozen=True)
class Summary:
    contender: str  # the rows' label ("rating (router+rater)", "faust (exactly_once)")
    rows: tuple[Result, ...]  # one per round it ran in, in round order

    @property
    def rates(self) -> list[float]:
        """Events per second of the rows that processed something."""
        return [row.events_per_s for row in self.rows if row.processed]

    @property
    def median_rate(self) -> float:
        rates = self.rates
        return statistics.median(rates) if rates else 0.0

    @property
    def verified(self) -> bool:
        return all(row.verified for row in self.rows)

    @property
    def median_cpu_us(self) -> float | None:
        """This process's CPU µs per event, median over the rounds that measured it."""
        return self._median_extra("cpu_us_per_event")

    @property
    def median_broker_cpu_us(self) -> float | None:
        """The local broker's CPU µs per event, median over the rounds that measured it."""
        return self._median_extra("broker_cpu_us_per_event")

    def _median_extra(self, key: str) -> float | None:
        values = [row.extra[key] for row in self.rows if row.extra.get(key)]
        return statistics.median(values) if values else None

    def in_round(self, round_number: int) -> Result | None:
        return next((row for row in self.rows if row.round == round_number and row.processed),
                    None)


def summarise(results: Sequence[Result]) -> list[Summary]:
    """The rows grouped by contender, in the order the contenders first ran."""
    grouped: dict[str, list[Result]] = {}
    for result in results:
        grouped.setdefault(result.contender, []).append(result)
    return [Summary(contender, tuple(rows)) for contender, rows in grouped.items()]


def find(summaries: Sequence[Summary], name: str) -> Summary | None:
    """The first contender whose label starts with ``name`` and that processed something
    (faust's fallback row, say), else the first so named."""
    named = [summary for summary in summaries if summary.contender.startswith(name)]
    return next((summary for summary in named if summary.rates), named[0] if named else None)


def paired_ratio(numerator: Summary, denominator: Summary) -> float | None:
    """The median over the rounds both ran in of numerator / denominator, each round's
    rows against each other; None when they share no round with a rate."""
    ratios = []
    for row in numerator.rows:
        other = denominator.in_round(row.round)
        if row.processed and other is not None and other.events_per_s:
            ratios.append(row.events_per_s / other.events_per_s)
    return statistics.median(ratios) if ratios else None


def median_ratio(numerator: Summary, denominator: Summary) -> float | None:
    """The ratio of the two median rates: for rating over faust, which runs once (in the
    last round), so the rating side takes every round into account."""
    if numerator.median_rate and denominator.median_rate:
        return numerator.median_rate / denominator.median_rate
    return None
