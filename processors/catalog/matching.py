"""Choosing a rate row: the most specific row whose values all match.

A row's pattern gives, per lookup attribute, a value or ``None`` ("*", any
value). Specificity is the number of concrete values. Rows are grouped by
*which* attributes they fix (their mask) so a lookup is one dictionary probe
per mask, most specific masks first.

Two rows of equal specificity that can match the same event would make the
choice depend on row order, so the loader refuses them -- unless a row that
fixes the union of their values exists, which then wins for every event both
could match (see ``ambiguous_pairs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import combinations
from typing import Generic, Protocol, TypeVar

from processors.events import AttributeValue

Pattern = tuple[AttributeValue | None, ...]
Mask = tuple[bool, ...]


class Matchable(Protocol):
    @property
    def match(self) -> Pattern: ...


R = TypeVar("R", bound=Matchable)


def _mask(pattern: Pattern) -> Mask:
    return tuple(value is not None for value in pattern)


def _key(values: Sequence[AttributeValue | None], mask: Mask) -> Pattern:
    return tuple(value for value, fixed in zip(values, mask, strict=True) if fixed)


def _compatible(a: Pattern, b: Pattern) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _union(a: Pattern, b: Pattern) -> Pattern:
    return tuple(x if x is not None else y for x, y in zip(a, b, strict=True))


class DuplicateRowError(Exception, Generic[R]):
    """Two rows with the same pattern; carries both for the error message."""

    def __init__(self, first: R, second: R) -> None:
        super().__init__("duplicate rate row pattern")
        self.first = first
        self.second = second


class RowIndex(Generic[R]):
    def __init__(self, rows: Iterable[R]) -> None:
        self.rows: tuple[R, ...] = tuple(rows)
        by_mask: dict[Mask, dict[Pattern, R]] = {}
        for row in self.rows:
            mask = _mask(row.match)
            bucket = by_mask.setdefault(mask, {})
            key = _key(row.match, mask)
            if key in bucket:
                raise DuplicateRowError(bucket[key], row)
            bucket[key] = row
        # Most specific first; ties keep a fixed order (validated unambiguous anyway).
        self._masks = sorted(by_mask.items(), key=lambda item: (-sum(item[0]), item[0]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowIndex) and self.rows == other.rows

    def __hash__(self) -> int:
        return hash(self.rows)

    def __repr__(self) -> str:
        return f"RowIndex({list(self.rows)!r})"

    def find(self, values: Sequence[AttributeValue]) -> R | None:
        for mask, bucket in self._masks:
            row = bucket.get(_key(values, mask))
            if row is not None:
                return row
        return None

    def has_pattern(self, pattern: Pattern) -> bool:
        mask = _mask(pattern)
        return any(m == mask and _key(pattern, mask) in bucket for m, bucket in self._masks)

    def ambiguous_pairs(self) -> Iterator[tuple[R, R]]:
        """Equally specific rows that could both match an event no more specific row takes."""
        for (mask_a, rows_a), (mask_b, rows_b) in combinations(self._masks, 2):
            if sum(mask_a) != sum(mask_b):
                continue
            for row_a in rows_a.values():
                for row_b in rows_b.values():
                    if _compatible(row_a.match, row_b.match) and not self.has_pattern(
                        _union(row_a.match, row_b.match)
                    ):
                        yield row_a, row_b
