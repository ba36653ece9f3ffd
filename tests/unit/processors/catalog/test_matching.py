from dataclasses import dataclass
from decimal import Decimal

import pytest

from processors.catalog.matching import DuplicateRowError, Pattern, RowIndex


@dataclass(frozen=True)
class Row:
    name: str
    match: Pattern


def test_most_specific_row_wins_and_star_matches_anything() -> None:
    index = RowIndex(
        [
            Row("any", (None, None)),
            Row("windows", (None, "windows")),
            Row("eu-windows", ("eu", "windows")),
        ]
    )
    assert _name(index.find(["eu", "windows"])) == "eu-windows"
    assert _name(index.find(["us", "windows"])) == "windows"
    assert _name(index.find(["us", "linux"])) == "any"


def test_no_matching_row() -> None:
    index = RowIndex([Row("eu", ("eu",))])
    assert index.find(["us"]) is None


def test_numbers_match_by_value() -> None:
    index = RowIndex([Row("four", (Decimal(4),))])
    assert _name(index.find([Decimal("4.0")])) == "four"


def test_duplicate_patterns_are_refused() -> None:
    with pytest.raises(DuplicateRowError):
        RowIndex([Row("a", ("eu", None)), Row("b", ("eu", None))])


def test_equally_specific_overlapping_rows_are_ambiguous() -> None:
    index = RowIndex([Row("eu", ("eu", None)), Row("win", (None, "windows"))])
    assert [(a.name, b.name) for a, b in index.ambiguous_pairs()] in (
        [("eu", "win")],
        [("win", "eu")],
    )


def test_rows_that_cannot_meet_are_not_ambiguous() -> None:
    index = RowIndex([Row("eu", ("eu", None)), Row("us", ("us", None))])
    assert list(index.ambiguous_pairs()) == []


def test_a_row_for_the_overlap_settles_the_ambiguity() -> None:
    index = RowIndex(
        [
            Row("eu", ("eu", None)),
            Row("win", (None, "windows")),
            Row("eu-win", ("eu", "windows")),
        ]
    )
    assert list(index.ambiguous_pairs()) == []


def _name(row: Row | None) -> str | None:
    return None if row is None else row.name
