"""What rating remembers between events, for one partition of the account-keyed topic.

Three kinds of entry, each persisted under a string key with a type prefix:

- ``acc|<account>|<billing period>|<rate table>|<rate code>`` -> quantity
  accumulated in the period (tiers are priced against it);
- ``cred|<account>|<billing period>`` -> usage credit used in the period;
- ``seenb|<block number>`` -> the event ids first seen in one batch, each with its
  payload fingerprint and event time (duplicates): ``{"seen":{"<event id>":
  ["<fingerprint>",<event time, µs since the epoch>],...}}``. One record per batch
  (more when its ids exceed SEEN_BLOCK_BYTES), not one per event: a third of the
  records the rater wrote, and a restore reads one record for a batch's ids. A block
  is deleted (a tombstone) once its newest event has left the dedup window. Block
  numbers rise by one per block written; a restored state goes on from the highest
  it read.
- ``seen|<event id>`` -> payload fingerprint and event time of one id: the format
  before blocks. Still read, and deleted when its id leaves the window or is seen
  again, so a changelog written by an older version restores and then drains;
  never written with a value any more.

The stream layer writes ``dump(key)`` for every ``dirty_keys()`` to a
compacted changelog in the same transaction as the outputs (``None`` is a
tombstone), then ``clear_dirty()``; on partition assignment it replays the
changelog through ``load``. Values are compact JSON with decimals as strings,
so a restored state rates the next event exactly as the original would.

Names inside keys cannot contain ``|``: the catalog only accepts plain names.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json  # what json.dumps escapes with
from typing import NamedTuple, TypeVar

from processors.dedup import DEFAULT_WINDOW, DedupWindow, OlderIds, SeenEvent
from processors.errors import RatingError
from processors.events import iso_text, utc
from processors.money import ZERO

ACC = "acc"
CRED = "cred"
SEEN = "seen"  # one id per record: read, then deleted (see the module docstring)
SEEN_BLOCK = "seenb"
# A block's value stays far below Kafka's default 1 MB record limit, whatever the batch
# size and the ids' length: a batch's ids fill as many blocks as they need.
SEEN_BLOCK_BYTES = 256 * 1024


K = TypeVar("K", "AccumulationKey", "CreditKey")


class StateError(RatingError):
    """A changelog entry this version cannot read."""


# State keys are NamedTuples, not dataclasses: they are dict keys looked up several
# times per event, and a tuple hashes and compares in C (a frozen dataclass calls
# Python-level __hash__ and __eq__, about 2 µs per lookup). Immutable and ordered alike.
class AccumulationKey(NamedTuple):
    account: str
    billing_period: str
    rate_table: str
    rate_code: str

    def encode(self) -> str:
        return "|".join((ACC, self.account, self.billing_period, self.rate_table, self.rate_code))


class CreditKey(NamedTuple):
    account: str
    billing_period: str

    def encode(self) -> str:
        return "|".join((CRED, self.account, self.billing_period))


@dataclass(slots=True, init=False)  # one per event: see processors/events.py
class StateChange:
    """Everything rating one event changes, computed before anything is applied."""

    event_id: str
    fingerprint: str
    event_time: datetime
    accumulation: tuple[AccumulationKey, Decimal] | None  # the new total
    credit: tuple[CreditKey, Decimal] | None  # the new amount used

    def __init__(self, event_id: str, fingerprint: str, event_time: datetime,
                 accumulation: tuple[AccumulationKey, Decimal] | None,
                 credit: tuple[CreditKey, Decimal] | None) -> None:
        self.event_id = event_id
        self.fingerprint = fingerprint
        self.event_time = event_time
        self.accumulation = accumulation
        self.credit = credit


def billing_period(moment: datetime) -> str:
    """The calendar month of ``moment`` in UTC, ``YYYY-MM``."""
    in_utc = utc(moment)
    month = _MONTHS.get((in_utc.year, in_utc.month))
    if month is None:  # strftime once per month: it is called several times per event
        if len(_MONTHS) >= 1000:
            _MONTHS.clear()
        month = _MONTHS[(in_utc.year, in_utc.month)] = in_utc.strftime("%Y-%m")
    return month


_MONTHS: dict[tuple[int, int], str] = {}


class RatingState:
    def __init__(self, dedup_window: timedelta = DEFAULT_WINDOW,
                 older_ids: OlderIds | None = None,
                 memory_span: timedelta | None = None) -> None:
        """``older_ids`` and ``memory_span``: where the dedup window keeps the ids older
        than the span (``DedupWindow``); their blocks then keep their ids as one string."""
        self.dedup = DedupWindow(dedup_window, older_ids, memory_span)
        self._accumulated: dict[AccumulationKey, Decimal] = {}
        self._credit_used: dict[CreditKey, Decimal] = {}
        self._dirty: set[str] = set()
        # Billing periods before this one have been dropped (see _expire_periods).
        self._kept_from = ""
        # Seen-id blocks in the changelog (module docstring): key -> (newest event time
        # in µs, its ids), and the same keys by newest time, oldest first, for expiry.
        # The ids of a block behind the window's memory horizon are one JSON string
        # (_pack_blocks): kept as a list, they would keep the ids on disk in memory.
        self._blocks: dict[str, tuple[int, list[str] | str]] = {}
        self._block_heap: list[tuple[int, str]] = []
        self._unpacked_heap: list[tuple[int, str]] = []  # blocks with lists, by newest
        self._packing = self.dedup.moves_older()
        self._next_block = 0
        self._legacy: set[str] = set()  # ids restored from one-id ``seen|`` records
        # The blocks the ids recorded since clear_dirty() make: key -> (value, newest
        # event time in µs, ids). Built when first asked for, dropped by any change.
        self._pending: dict[str, tuple[bytes, int, list[str]]] | None = None

    # -- reading ----------------------------------------------------------
    def accumulated(self, key: AccumulationKey) -> Decimal:
        return self._accumulated.get(key, ZERO)

    def credit_used(self, key: CreditKey) -> Decimal:
        return self._credit_used.get(key, ZERO)

    def is_late(self, event_time: datetime) -> bool:
        """True when the event is older than the dedup window: park it, do not rate it."""
        horizon = self.dedup.horizon
        return horizon is not None and event_time < horizon

    # -- changing ---------------------------------------------------------
    def apply(self, change: StateChange) -> None:
        if change.accumulation is not None:
            key, total = change.accumulation
            self._accumulated[key] = total
            self._dirty.add(key.encode())
        if change.credit is not None:
            credit_key, used = change.credit
            self._credit_used[credit_key] = used
            self._dirty.add(credit_key.encode())
        self.remember(change.event_id, change.fingerprint, change.event_time)

    def remember(self, event_id: str, fingerprint: str, event_time: datetime) -> None:
        """Record an event that changed state without being rated (e.g. a quota release),
        so that its re-publication is recognised as a duplicate too. The id goes into
        this batch's seen-id block (``dirty_keys``)."""
        expired = self.dedup.record(event_id, fingerprint, event_time)
        self._pending = None
        legacy = self._legacy
        if legacy:  # one-id records of an older version: delete them as their ids go
            for gone in [event_id, *expired]:
                if gone in legacy:  # expired, or seen again (its new block has it now)
                    legacy.discard(gone)
                    self._dirty.add(_seen_key(gone))
        self._expire_blocks()
        self._expire_periods()
        if self._packing:
            self._pack_blocks()

    def _pack_blocks(self) -> None:
        """Turn the id lists of blocks wholly behind the memory horizon into strings."""
        heap = self._unpacked_heap
        memory_horizon_us = self.dedup.memory_horizon_us
        if not heap or memory_horizon_us is None or heap[0][0] >= memory_horizon_us:
            return  # the usual case
        while heap and heap[0][0] < memory_horizon_us:
            newest, key = heapq.heappop(heap)
            block = self._blocks.get(key)
            if block is not None and block[0] == newest and isinstance(block[1], list):
                self._blocks[key] = (newest, json.dumps(block[1], separators=(",", ":")))

    def _expire_blocks(self) -> None:
        """Delete the seen-id blocks whose newest event has left the dedup window: every
        id in them is out of the window, so a state restored without them is the same."""
        heap = self._block_heap
        horizon_us = self.dedup.horizon_us
        if not heap or horizon_us is None or heap[0][0] >= horizon_us:
            return  # the usual case
        while heap and heap[0][0] < horizon_us:
            newest, key = heapq.heappop(heap)
            block = self._blocks.get(key)
            if block is not None and block[0] == newest:  # else deleted at restore
                del self._blocks[key]
                self._dirty.add(key)

    def _expire_periods(self) -> None:
        """Drop tiers and credits of months wholly behind the dedup horizon.

        Every event of such a month is late (parked, never rated), so nothing
        can read them again; without this the state would grow forever.
        """
        horizon = self.dedup.horizon
        if horizon is None or billing_period(horizon) <= self._kept_from:
            return
        self._kept_from = billing_period(horizon)
        for acc in [k for k in self._accumulated if k.billing_period < self._kept_from]:
            del self._accumulated[acc]
            self._dirty.add(acc.encode())
        for cred in [k for k in self._credit_used if k.billing_period < self._kept_from]:
            del self._credit_used[cred]
            self._dirty.add(cred.encode())

    # -- persistence ------------------------------------------------------
    def all_keys(self) -> set[str]:
        """Every key that currently has a value."""
        keys = (
            {key.encode() for key in self._accumulated}
            | {key.encode() for key in self._credit_used}
            | {_seen_key(event_id) for event_id in self._legacy}
            | set(self._blocks)
        )
        keys.update(self._pending_blocks())
        return keys

    def dirty_keys(self) -> set[str]:
        """The keys to write: changed entries, deletions, and this batch's seen-id blocks."""
        keys = set(self._dirty)
        keys.update(self._pending_blocks())
        return keys

    def clear_dirty(self) -> None:
        """The dirty keys are written: this batch's seen ids are blocks of the changelog."""
        pending = self._pending_blocks()
        for key, (_, newest, ids) in pending.items():
            self._blocks[key] = (newest, ids)
            heapq.heappush(self._block_heap, (newest, key))
            if self._packing:
                heapq.heappush(self._unpacked_heap, (newest, key))
        self._next_block += len(pending)
        self._pending = None
        self._dirty.clear()
        self.dedup.forget_recent()

    def _pending_blocks(self) -> dict[str, tuple[bytes, int, list[str]]]:
        """The ids recorded since ``clear_dirty`` as the blocks to write, numbered on from
        the last one: in the order recorded, each block up to SEEN_BLOCK_BYTES (an id
        longer than that alone in its own)."""
        if self._pending is not None:
            return self._pending
        blocks: dict[str, tuple[bytes, int, list[str]]] = {}
        entries: list[str] = []
        ids: list[str] = []
        size = newest = 0
        for event_id, (fingerprint, event_us) in self.dedup.recent().items():
            entry = _block_entry(event_id, fingerprint, event_us)  # ASCII: len = bytes
            if entries and size + len(entry) > SEEN_BLOCK_BYTES:
                blocks[f"{SEEN_BLOCK}|{self._next_block + len(blocks)}"] = (
                    _block_value(entries), newest, ids)
                entries, ids, size = [], [], 0
            newest = event_us if not entries or event_us > newest else newest
            entries.append(entry)
            ids.append(event_id)
            size += len(entry) + 1
        if entries:
            blocks[f"{SEEN_BLOCK}|{self._next_block + len(blocks)}"] = (
                _block_value(entries), newest, ids)
        self._pending = blocks
        return blocks

    def dump(self, key: str) -> bytes | None:
        """The value to write for ``key``; None when it no longer exists (a tombstone).

        The JSON is ``json.dumps(value, separators=(",", ":"), sort_keys=True)``
        of a one- or two-field object of strings, written out directly (one per
        rated event, every batch): the same bytes, a fraction of the cost.
        """
        kind, rest = _split(key)
        if kind == SEEN_BLOCK:
            return self._dump_block(key)
        if kind == SEEN:
            seen = self.dedup.get(rest) if rest in self._legacy else None
            if seen is None:
                return None
            return (f'{{"event_time":{_json(iso_text(seen.event_time))},'
                    f'"fingerprint":{_json(seen.fingerprint)}}}').encode()
        if kind == ACC:
            quantity = self._accumulated.get(_acc_key(rest, key))
            return None if quantity is None else f'{{"quantity":{_json(str(quantity))}}}'.encode()
        used = self._credit_used.get(_cred_key(rest, key))
        return None if used is None else f'{{"used":{_json(str(used))}}}'.encode()

    def _dump_block(self, key: str) -> bytes | None:
        pending = self._pending_blocks().get(key)
        if pending is not None:
            return pending[0]
        block = self._blocks.get(key)
        if block is None:
            return None  # deleted: a tombstone
        return _block_value([_block_entry(event_id, *entry)
                             for event_id, entry in self._still_held(block)])

    def _still_held(self, block: tuple[int, list[str] | str]
                    ) -> list[tuple[str, tuple[str, int]]]:
        """The ids of a block the window still holds as the block has them, with their
        entries: not those forgotten since, nor those seen again later (a newer block
        has them)."""
        newest, ids = block
        held = []
        for event_id in (ids if isinstance(ids, list) else _packed_ids(ids)):
            entry = self.dedup.entry(event_id)
            if entry is not None and entry[1] <= newest:
                held.append((event_id, entry))
        return held

    def load(self, key: str, value: bytes | None) -> None:
        """Restore one changelog entry (None deletes). Does not mark anything dirty."""
        kind, rest = _split(key)
        self._pending = None
        if kind == SEEN_BLOCK:
            self._load_block(key, rest, value)
            return
        fields = _decode(key, value)
        try:
            if kind == ACC:
                _store(self._accumulated, _acc_key(rest, key), fields, "quantity")
            elif kind == CRED:
                _store(self._credit_used, _cred_key(rest, key), fields, "used")
            elif fields is None:
                if rest in self._legacy:  # else a block holds the id now (seen again)
                    self._legacy.discard(rest)
                    self.dedup.remove(rest)
            else:
                moment = datetime.fromisoformat(fields["event_time"])
                self.dedup.put(rest, SeenEvent(fields["fingerprint"], moment))
                self._legacy.add(rest)
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise StateError(f"state entry {key!r} is unreadable: {exc!r}") from None

    def _forget_block(self, key: str) -> None:
        """A block's tombstone, at restore: its ids go too (they are out of the window, so
        ``check`` would call them new anyway), except those held with a later time (seen
        again: a newer block has them) or by an older version's one-id record read since."""
        block = self._blocks.pop(key, None)
        if block is None:
            return
        for event_id, _ in self._still_held(block):
            if event_id not in self._legacy:
                self.dedup.remove(event_id)

    def _load_block(self, key: str, rest: str, value: bytes | None) -> None:
        if not rest.isdigit() or not rest.isascii():
            raise StateError(f"malformed seen-id block key {key!r}")
        self._next_block = max(self._next_block, int(rest) + 1)
        if value is None:  # deleted once its ids left the window (_expire_blocks)
            self._forget_block(key)
            return
        try:
            seen = json.loads(value)["seen"]
            if not isinstance(seen, dict) or not seen:
                raise ValueError("no seen ids")
            newest: int | None = None
            legacy = self._legacy
            for event_id, entry in seen.items():
                fingerprint, event_us = entry
                if not isinstance(fingerprint, str) or type(event_us) is not int:
                    raise ValueError(f"{event_id!r}: not [fingerprint, µs]")
                self.dedup.put_micros(event_id, fingerprint, event_us)
                newest = event_us if newest is None or event_us > newest else newest
                if legacy:  # seen again after an older version's record: the block has it
                    legacy.discard(event_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"state entry {key!r} is unreadable: {exc!r}") from None
        assert newest is not None  # seen is not empty
        self._blocks[key] = (newest, list(seen))
        heapq.heappush(self._block_heap, (newest, key))
        if self._packing:  # also while restoring: memory never holds more than the span
            heapq.heappush(self._unpacked_heap, (newest, key))
            self._pack_blocks()


def _packed_ids(packed: str) -> list[str]:
    ids: list[str] = json.loads(packed)
    return ids


def _block_entry(event_id: str, fingerprint: str, event_us: int) -> str:
    """One id of a seen-id block's JSON (``_block_value``), ASCII-only."""
    return f'{_json(event_id)}:["{fingerprint}",{event_us}]'


def _block_value(entries: list[str]) -> bytes:
    return f'{{"seen":{{{",".join(entries)}}}}}'.encode()


def _seen_key(event_id: str) -> str:
    return f"{SEEN}|{event_id}"


def _split(key: str) -> tuple[str, str]:
    kind, separator, rest = key.partition("|")
    if not separator or kind not in (ACC, CRED, SEEN, SEEN_BLOCK):
        raise StateError(f"unknown state key {key!r}")
    return kind, rest


def _acc_key(rest: str, key: str) -> AccumulationKey:
    parts = rest.split("|")
    if len(parts) != 4:  # account, period, table, code
        raise StateError(f"malformed accumulation key {key!r}")
    return AccumulationKey(*parts)


def _cred_key(rest: str, key: str) -> CreditKey:
    parts = rest.split("|")
    if len(parts) != 2:  # account, period
        raise StateError(f"malformed credit key {key!r}")
    return CreditKey(*parts)


def _decode(key: str, value: bytes | None) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        raise StateError(f"state entry {key!r} is not JSON") from None
    if not isinstance(decoded, dict):
        raise StateError(f"state entry {key!r} is not a JSON object")
    return {str(name): str(field) for name, field in decoded.items()}


def _store(table: dict[K, Decimal], key: K, fields: dict[str, str] | None, name: str) -> None:
    if fields is None:
        table.pop(key, None)
    else:
        table[key] = Decimal(fields[name])
