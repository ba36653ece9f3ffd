"""What the subscription stage remembers, for one partition of the subscriptions topic.

Three kinds of entry, each persisted under a string key:

- ``lic|<campus>|<record number>`` -> the licence (holder, since when, from a
  transfer or not, ended or not);
- ``paid|<fiscal year>|<campus>|<record number>`` -> which run billed it.
  A licence is billed at most once per fiscal year: this mark is what makes
  a billing run idempotent (a re-run finds every licence already paid).
- ``billed|newest`` -> ``{"fiscal_year": N}``, the newest fiscal year a run has
  billed. Paid marks of the years before N - 1 are dropped (the changelog stays
  bounded), so runs for those years are refused: they could bill a licence twice.

Same persistence protocol as the rater's state (``processors/state.py``):
``dirty_keys`` / ``dump`` (None = tombstone) / ``clear_dirty`` to write the
compacted changelog inside the batch's transaction, ``load`` to restore.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any, TypeVar

from processors.errors import RatingError
from processors.licences.model import Licence, PaidMark

LIC = "lic"
PAID = "paid"
NEWEST_BILLED = "billed|newest"
K = TypeVar("K")
V = TypeVar("V")


class LicenceStateError(RatingError):
    """A changelog entry this version cannot read."""


class SubscriptionState:
    def __init__(self) -> None:
        self._licences: dict[tuple[str, str], Licence] = {}
        self._paid: dict[tuple[int, str, str], PaidMark] = {}
        self._newest_billed: int | None = None
        self._dirty: set[str] = set()

    # -- reads ------------------------------------------------------------------------

    def licence(self, campus: str, record_number: str) -> Licence | None:
        return self._licences.get((campus, record_number))

    def campuses(self) -> list[str]:
        return sorted({campus for campus, _ in self._licences})

    def licences_of(self, campus: str) -> list[Licence]:
        return [licence for (owner, _), licence in sorted(self._licences.items())
                if owner == campus]

    def paid(self, fiscal_year: int, campus: str, record_number: str) -> PaidMark | None:
        return self._paid.get((fiscal_year, campus, record_number))

    def newest_billed_year(self) -> int | None:
        """The newest fiscal year a billing run has billed (None before the first run).

        State written before ``billed|newest`` existed has none: the newest year with a
        paid mark stands in for it (its runs dropped the marks of the years before the
        one before it, so those years must be closed too)."""
        if self._newest_billed is not None:
            return self._newest_billed
        return max((year for year, _, _ in self._paid), default=None)

    # -- writes -----------------------------------------------------------------------

    def put(self, licence: Licence) -> None:
        self._licences[(licence.campus, licence.record_number)] = licence
        self._dirty.add(_licence_key(licence.campus, licence.record_number))

    def mark_paid(self, mark: PaidMark) -> None:
        self._paid[(mark.fiscal_year, mark.campus, mark.record_number)] = mark
        self._dirty.add(_paid_key(mark.fiscal_year, mark.campus, mark.record_number))

    def note_billed(self, fiscal_year: int) -> None:
        known = self.newest_billed_year()
        newest = fiscal_year if known is None else max(known, fiscal_year)
        if newest != self._newest_billed:
            self._newest_billed = newest
            self._dirty.add(NEWEST_BILLED)

    def forget_before(self, fiscal_year: int, first_day: date) -> None:
        """Drop paid marks of fiscal years before ``fiscal_year`` and licences ended before
        ``first_day``: no run can bill them any more, and the changelog stays bounded."""
        for paid in [key for key in self._paid if key[0] < fiscal_year]:
            del self._paid[paid]
            self._dirty.add(_paid_key(*paid))
        for held, licence in list(self._licences.items()):
            if licence.ended_on is not None and licence.ended_on < first_day:
                del self._licences[held]
                self._dirty.add(_licence_key(*held))

    # -- persistence ------------------------------------------------------------------

    def all_keys(self) -> set[str]:
        newest = {NEWEST_BILLED} if self._newest_billed is not None else set()
        return ({_licence_key(*key) for key in self._licences}
                | {_paid_key(*key) for key in self._paid} | newest)

    def dirty_keys(self) -> set[str]:
        return set(self._dirty)

    def clear_dirty(self) -> None:
        self._dirty.clear()

    def dump(self, key: str) -> bytes | None:
        if key == NEWEST_BILLED:
            return (None if self._newest_billed is None
                    else json.dumps({"fiscal_year": self._newest_billed},
                                       separators=(",", ":")).encode())
        kind, *parts = key.split("|")
        value: Licence | PaidMark | None
        if kind == LIC:
            value = self._licences.get((parts[0], parts[1]))
        elif kind == PAID:
            value = self._paid.get((int(parts[0]), parts[1], parts[2]))
        else:
            raise LicenceStateError(f"unknown state key {key!r}")
        if value is None:
            return None
        return json.dumps(asdict(value), default=_iso, separators=(",", ":"),
                          sort_keys=True).encode()

    def load(self, key: str, value: bytes | None) -> None:
        kind, *parts = key.split("|")
        try:
            if key == NEWEST_BILLED:
                self._newest_billed = (None if value is None
                                       else int(json.loads(value)["fiscal_year"]))
            elif kind == LIC:
                _set(self._licences, (parts[0], parts[1]), value, _licence_from)
            elif kind == PAID:
                _set(self._paid, (int(parts[0]), parts[1], parts[2]), value, _paid_from)
            else:
                raise LicenceStateError(f"unknown state key {key!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise LicenceStateError(f"unreadable state entry {key!r}: {exc}") from None


def _licence_key(campus: str, record_number: str) -> str:
    return "|".join((LIC, campus, record_number))


def _paid_key(fiscal_year: int, campus: str, record_number: str) -> str:
    return "|".join((PAID, str(fiscal_year), campus, record_number))


def _iso(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the licence state")


def _set(store: dict[K, V], key: K, value: bytes | None,
         build: Callable[[dict[str, Any]], V]) -> None:
    if value is None:
        store.pop(key, None)  # a tombstone: the entry was dropped
    else:
        store[key] = build(json.loads(value))


def _licence_from(raw: dict[str, Any]) -> Licence:
    ended = raw.get("ended_on")
    return Licence(
        campus=raw["campus"], record_number=raw["record_number"], user=raw["user"],
        product=raw["product"], provisioned_on=date.fromisoformat(raw["provisioned_on"]),
        holder_since=date.fromisoformat(raw["holder_since"]),
        from_transfer=bool(raw["from_transfer"]), last_event_id=raw["last_event_id"],
        previous_user=raw.get("previous_user"),
        unit_billing_target=raw.get("unit_billing_target"),
        ended_on=date.fromisoformat(ended) if ended else None)


def _paid_from(raw: dict[str, Any]) -> PaidMark:
    return PaidMark(fiscal_year=int(raw["fiscal_year"]), campus=raw["campus"],
                    record_number=raw["record_number"], run=raw["run"],
                    event_id=raw["event_id"])
