"""Seen ids older than the memory span on local disk decide exactly as ids in memory.

The reference is a state holding every id in memory. A state that moves ids older than
a few hours to SQLite (``stream.seen_ids_on_disk``) must tell new, duplicate and
conflict alike, write the same changelog, and restore from it to the same decisions;
memory must hold only the span.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from processors.dedup import DedupWindow, Verdict, micros_since_epoch
from processors.pipeline import PartitionState
from processors.state import RatingState
from stream.seen_ids_on_disk import SeenIdsOnDisk, partition_states
from stream.settings import load_settings
from tests.unit.processors.test_seen_blocks_property import (
    IDS,
    T0,
    WINDOW,
    Record,
    Step,
    _compact,
    _offer,
    _times,
    _verdicts,
    _write_batch,
    steps,
)

SPAN = timedelta(hours=5)


def _on_disk(directory: Path) -> RatingState:
    return RatingState(WINDOW, SeenIdsOnDisk(directory), SPAN)


def _replayed_on_disk(log: list[Record], older: SeenIdsOnDisk) -> RatingState:
    state = RatingState(WINDOW, older, SPAN)
    for key, value in log:
        state.load(key, value)
    state.clear_dirty()
    return state


def _held(state: RatingState) -> dict[str, tuple[str, int]]:
    """The ids held within the window, with their entries (an id out of the window may
    still be held until its minute is dropped: no verdict can tell)."""
    horizon_us = state.dedup.horizon_us
    held = {}
    for event_id in state.dedup.ids():
        entry = state.dedup.entry(event_id)
        assert entry is not None
        if horizon_us is None or entry[1] >= horizon_us:
            held[event_id] = entry
    return held


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 60), st.sampled_from(["none", "keep", "drop"]))
# Seen, moved to disk, seen again out of the window, and again in it.
@example([(0, 0, 0, True), (0, 1, 49, True), (0, 1, 6, False), (0, 0, 1, True)], 2, "none")
def test_ids_on_disk_decide_write_and_restore_as_ids_in_memory(
        tmp_path_factory: object, sequence: list[Step], restore_at: int,
        compaction: str) -> None:
    directory = Path(str(tmp_path_factory.mktemp("seen")))  # type: ignore[attr-defined]
    in_memory, on_disk = RatingState(dedup_window=WINDOW), _on_disk(directory)
    memory_log: list[Record] = []
    disk_log: list[Record] = []
    times = _times(sequence)
    restore_at = min(restore_at, len(sequence))
    for (id_index, payload, _, batch_ends), at in zip(sequence[:restore_at], times,
                                                      strict=False):
        assert (_offer(on_disk, IDS[id_index], payload, at)
                == _offer(in_memory, IDS[id_index], payload, at))
        if batch_ends:
            memory_log += _write_batch(in_memory)
            disk_log += _write_batch(on_disk)
    memory_log += _write_batch(in_memory)
    disk_log += _write_batch(on_disk)
    assert disk_log == memory_log  # the changelog does not know where ids are held
    assert _held(on_disk) == _held(in_memory)

    restored = _replayed_on_disk(_compact(disk_log, compaction), SeenIdsOnDisk(directory))
    assert restored.dedup.horizon == in_memory.dedup.horizon
    assert _verdicts(restored) == _verdicts(in_memory)
    for (id_index, payload, _, batch_ends), at in zip(sequence[restore_at:],
                                                      times[restore_at:], strict=True):
        assert (_offer(restored, IDS[id_index], payload, at)
                == _offer(in_memory, IDS[id_index], payload, at))
        if batch_ends:
            assert _write_batch(restored) == _write_batch(in_memory)
    assert _write_batch(restored) == _write_batch(in_memory)
    assert _verdicts(restored) == _verdicts(in_memory)
    assert _held(restored) == _held(in_memory)


def _fingerprint(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_memory_holds_the_span_and_older_ids_stay_duplicates(tmp_path: Path) -> None:
    window = DedupWindow(timedelta(days=35), SeenIdsOnDisk(tmp_path), timedelta(hours=1))
    for minute in range(6 * 60):  # six hours, ten ids a minute
        for n in range(10):
            at = T0 + timedelta(minutes=minute, seconds=n)
            assert window.check(f"m{minute}-{n}", _fingerprint(n)) is Verdict.NEW
            window.record(f"m{minute}-{n}", _fingerprint(n), at)
    # The last hour (and the minute the span's edge falls in) is in memory, the rest on disk.
    assert 600 <= window.held_in_memory() <= 610
    assert window.older_bytes() > 0
    assert len(window.ids()) == 3600
    assert window.check("m0-3", _fingerprint(3)) is Verdict.DUPLICATE
    assert window.check("m0-3", _fingerprint(4)) is Verdict.CONFLICT
    assert window.knows("m0-3")
    assert not window.knows("m0-10")
    assert window.entry("m0-3") == (_fingerprint(3),
                                    micros_since_epoch(T0 + timedelta(seconds=3)))
    window.remove("m0-3")
    assert window.check("m0-3", _fingerprint(3)) is Verdict.NEW


def test_ids_on_disk_leave_with_the_window(tmp_path: Path) -> None:
    older = SeenIdsOnDisk(tmp_path)
    window = DedupWindow(timedelta(hours=2), older, timedelta(minutes=30))
    expired: list[str] = []
    for minute in range(4 * 60):
        at = T0 + timedelta(minutes=minute)
        expired += window.record(f"m{minute}", _fingerprint(minute), at)
    # Two hours behind the newest (minute 239): minutes 0..118 have left the window.
    assert sorted(expired, key=lambda name: int(name[1:])) == [f"m{n}" for n in range(119)]
    assert older.count() + window.held_in_memory() == 240 - 119
    assert window.check("m0", _fingerprint(0)) is Verdict.NEW


def test_restoring_a_large_changelog_never_holds_more_than_the_span(tmp_path: Path) -> None:
    source = RatingState(WINDOW)
    log: list[Record] = []
    rng = random.Random(3)
    for n in range(5_000):  # 40 hours of ids, a batch every 100
        source.remember(f"id-{n}-{rng.random()}", _fingerprint(n),
                        T0 + timedelta(seconds=n * 29))
        if n % 100 == 99:
            log += _write_batch(source)
    restored = RatingState(WINDOW, SeenIdsOnDisk(tmp_path), SPAN)
    most_in_memory = 0
    for key, value in log:
        restored.load(key, value)
        most_in_memory = max(most_in_memory, restored.dedup.held_in_memory())
    restored.clear_dirty()
    # Five hours of ids at one per 29 s is about 621; a block (100 ids) may arrive in one go.
    assert most_in_memory <= 621 + 100
    assert _held(restored) == _held(source)
    assert _write_batch(restored) == []


def _open_in(directory: Path) -> list[str]:
    """The files this process holds open in ``directory`` (Linux: /proc/self/fd)."""
    opened = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # the directory's own fd, closed since it was listed
        if target.startswith(str(directory)):
            opened.append(target)
    return opened


def test_the_file_is_held_open_unlinked_and_goes_with_the_state(tmp_path: Path) -> None:
    settings_ = load_settings(environ={"RATING_STATE_DIR": str(tmp_path),
                                       "RATING_DEDUP_MEMORY_HOURS": "1"}).processor
    state = partition_states(settings_)()
    assert isinstance(state, PartitionState)
    # Nothing to leave behind, even for a killed process: the file is already unlinked.
    assert list(tmp_path.iterdir()) == []
    [held] = _open_in(tmp_path)
    assert held.endswith(".sqlite3 (deleted)")
    assert state.rating.dedup.older_bytes() > 0
    del state
    gc.collect()
    assert _open_in(tmp_path) == []
    older = SeenIdsOnDisk(tmp_path)
    older.close()
    assert _open_in(tmp_path) == []
    assert older.size_bytes() == 0


def test_a_span_as_long_as_the_window_keeps_every_id_in_memory(tmp_path: Path) -> None:
    every = load_settings(environ={"RATING_STATE_DIR": str(tmp_path),
                                   "RATING_DEDUP_MEMORY_HOURS": str(35 * 24)}).processor
    state = partition_states(every)()
    assert not state.rating.dedup.moves_older()
    assert _open_in(tmp_path) == []  # no file made


def _memory_of(make: object, ids: int) -> int:
    """Bytes Python holds for a state after ``ids`` ids over 40 hours, written in batches."""
    assert callable(make)
    tracemalloc.start()
    try:
        state = make()
        for n in range(ids):
            state.remember(f"event-{n:032d}", _fingerprint(n),
                           T0 + timedelta(seconds=n * 40 * 3600 // ids))
            if n % 500 == 499:
                _write_batch(state)
        _write_batch(state)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(state.dedup.ids()) == ids
    return held


def test_ids_on_disk_cost_memory_a_fraction_of_ids_in_memory(tmp_path: Path) -> None:
    in_memory = _memory_of(lambda: RatingState(WINDOW), 20_000)
    on_disk = _memory_of(lambda: RatingState(WINDOW, SeenIdsOnDisk(tmp_path), SPAN), 20_000)
    # 5 of the 40 hours in memory; the other 35 as one string of ids per block.
    assert on_disk < in_memory / 3, (on_disk, in_memory)


def _seen_again_then_out(state: RatingState) -> list[Record]:
    """An id out of the window seen again in the next minute, then out again before that
    minute has left the window, all in one batch."""
    def at(minute: int, second: int) -> datetime:
        return T0 + timedelta(minutes=minute, seconds=second)
    log: list[Record] = []
    state.remember("x", _fingerprint(0), at(0, 30))
    log += _write_batch(state)
    state.remember("y", _fingerprint(0), at(10, 40))  # horizon 00:40: x is out
    assert state.dedup.check("x", _fingerprint(0)) is Verdict.NEW
    state.remember("x", _fingerprint(0), at(1, 10))
    state.remember("z", _fingerprint(0), at(11, 20))  # horizon 01:20: x is out again
    log += _write_batch(state)
    return log


def test_an_id_put_again_leaves_with_the_minute_of_its_new_time(tmp_path: Path) -> None:
    window, span = timedelta(minutes=10), timedelta(minutes=2)
    assert (_seen_again_then_out(RatingState(window, SeenIdsOnDisk(tmp_path), span))
            == _seen_again_then_out(RatingState(window)))


def test_an_id_moved_behind_what_disk_expired_still_expires(tmp_path: Path) -> None:
    def run(window: DedupWindow) -> list[list[str]]:
        return [window.record("a", _fingerprint(0), T0),
                window.record("b", _fingerprint(0), T0 + timedelta(minutes=4)),
                window.record("c", _fingerprint(0), T0),  # late (callers park these)
                window.record("d", _fingerprint(0), T0 + timedelta(minutes=4))]
    on_disk = DedupWindow(timedelta(minutes=2), SeenIdsOnDisk(tmp_path), timedelta(minutes=1))
    assert run(on_disk) == run(DedupWindow(timedelta(minutes=2))) == [[], ["a"], ["c"], []]
    assert not on_disk.knows("c")


def _statements(older: SeenIdsOnDisk) -> list[str]:
    statements: list[str] = []
    older._db.set_trace_callback(statements.append)  # the SQL the file runs
    return statements


def test_ids_added_before_the_index_is_built_are_held_once_with_their_last_entry(
        tmp_path: Path) -> None:
    older = SeenIdsOnDisk(tmp_path)
    first, last = bytes(32), bytes([7]) * 32
    older.add([("a", 10, first), ("b", 20, first)])
    older.add([("a", 30, last)])  # again, with a newer time: a restore can do this
    statements = _statements(older)
    assert older.find("a") == (30, last)
    assert older.find("b") == (20, first)
    assert older.count() == 2
    # Expiring the first entry's time must not report "a": it is held, with 30.
    assert older.expire(25) == [("b", 20)]
    assert older.find("a") == (30, last)
    older.add([("a", 40, first)])  # with the index: replaced at once
    assert older.find("a") == (40, first)
    assert older.count() == 1
    assert sum("CREATE INDEX" in statement for statement in statements) == 1


def test_a_restore_adds_ids_without_the_index_and_the_first_lookup_builds_it(
        tmp_path: Path) -> None:
    source = RatingState(WINDOW)
    log: list[Record] = []
    for n in range(2_000):  # 40 hours of ids
        source.remember(f"id-{n}", _fingerprint(n), T0 + timedelta(seconds=n * 72))
        if n % 100 == 99:
            log += _write_batch(source)
    older = SeenIdsOnDisk(tmp_path)
    statements = _statements(older)
    restored = _replayed_on_disk(log, older)
    assert any("INSERT" in statement for statement in statements)
    assert not any("seen_by_id" in statement or "DELETE" in statement
                   for statement in statements)
    assert restored.dedup.check("id-0", _fingerprint(0)) is Verdict.DUPLICATE  # on disk
    assert restored.dedup.check("id-0", _fingerprint(1)) is Verdict.CONFLICT
    assert restored.dedup.check("id-new", _fingerprint(0)) is Verdict.NEW
    assert sum("CREATE INDEX seen_by_id" in statement for statement in statements) == 1
