"""Seen ids through the changelog, as the stream layer writes and Kafka compacts it.

Any sequence of events (re-sent, conflicting, seen again after leaving the window, time
jumping past the window), cut into batches at any point, written as the store writes
(sorted dirty keys, then ``clear_dirty``), optionally compacted (the last record per key,
with or without its tombstones) and replayed into a fresh state: the restored state
tells new, duplicate and conflict exactly as the original does, now and for every event
after. A changelog begun by an older version (one ``seen|<id>`` record per id) too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from processors.dedup import Verdict
from processors.state import RatingState

WINDOW = timedelta(hours=48)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
IDS = [f"e{n}" for n in range(6)]

Record = tuple[str, bytes | None]
Step = tuple[int, int, int, bool]  # id index, payload variant, hours on, batch ends


def _fingerprint(payload: int) -> str:
    return hashlib.sha256(str(payload).encode()).hexdigest()


def _offer(state: RatingState, event_id: str, payload: int, at: datetime) -> Verdict:
    """What the rater does with an event's id: late ones are parked, new ones remembered."""
    if state.is_late(at):
        return Verdict.NEW  # parked, never looked up
    verdict = state.dedup.check(event_id, _fingerprint(payload))
    if verdict is Verdict.NEW:
        state.remember(event_id, _fingerprint(payload), at)
    return verdict


def _write_batch(state: RatingState) -> list[Record]:
    records = [(key, state.dump(key)) for key in sorted(state.dirty_keys())]
    state.clear_dirty()
    return records


def _compacted(log: list[Record], drop_tombstones: bool) -> list[Record]:
    """What log compaction may leave: each key's last record, in log order."""
    last = {key: index for index, (key, _) in enumerate(log)}
    return [(key, value) for index, (key, value) in enumerate(log)
            if last[key] == index and not (drop_tombstones and value is None)]


def _replayed(log: list[Record]) -> RatingState:
    state = RatingState(dedup_window=WINDOW)
    for key, value in log:
        state.load(key, value)
    state.clear_dirty()  # as the store does after a restore
    return state


def _verdicts(state: RatingState) -> dict[tuple[str, int], Verdict]:
    return {(event_id, payload): state.dedup.check(event_id, _fingerprint(payload))
            for event_id in IDS for payload in (0, 1)}


# Time mostly moves on (a day and more: ids leave the window), sometimes back (late
# events, and events still in the window behind the newest).
steps = st.lists(st.tuples(st.integers(0, len(IDS) - 1), st.integers(0, 1),
                           st.integers(-12, 30), st.booleans()),
                 min_size=1, max_size=60)


def _times(sequence: list[Step]) -> list[datetime]:
    hours, times = 0, []
    for _, _, step, _ in sequence:
        hours = max(0, hours + step)
        times.append(T0 + timedelta(hours=hours))
    return times


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, len(IDS)), st.integers(0, 60),
       st.sampled_from(["none", "keep", "drop"]))
# An older version's id seen again once out of the window (its block, then its record's
# tombstone, are written), then a restore.
@example([(1, 0, 60, False), (0, 0, 1, True)], 1, 2, "none")
# An id seen again once out of the window while its block lives on (a newer id in it),
# then that block deleted: restored from the block, the newer one and the tombstone.
@example([(0, 0, 0, False), (1, 0, 40, True), (2, 0, 10, False), (0, 0, 1, True),
          (3, 0, 39, True)], 0, 5, "none")
# Restored, then writing: the next block's number must not be a live block's.
@example([(0, 0, 0, True), (1, 0, 1, True), (2, 0, 1, True)], 0, 1, "keep")
def test_a_replayed_changelog_tells_duplicates_as_the_original(
        sequence: list[Step], legacy_ids: int, restore_at: int, compaction: str) -> None:
    original = RatingState(dedup_window=WINDOW)
    log: list[Record] = []
    for event_id in IDS[:legacy_ids]:  # what an older version left: one record per id
        value = json.dumps({"event_time": T0.isoformat(), "fingerprint": _fingerprint(0)})
        log.append((f"seen|{event_id}", value.encode()))
        original.load(f"seen|{event_id}", value.encode())
    restore_at = min(restore_at, len(sequence))
    times = _times(sequence)
    for (id_index, payload, _, batch_ends), at in zip(sequence[:restore_at], times,
                                                      strict=False):
        _offer(original, IDS[id_index], payload, at)
        if batch_ends:
            log += _write_batch(original)
    log += _write_batch(original)  # the store writes every batch before a restore

    restored = _replayed(_compact(log, compaction))
    assert restored.dedup.horizon == original.dedup.horizon
    assert _verdicts(restored) == _verdicts(original)
    # The restored state takes over (a restart, a rebalance) and writes on.
    for (id_index, payload, _, batch_ends), at in zip(sequence[restore_at:],
                                                      times[restore_at:], strict=True):
        assert (_offer(restored, IDS[id_index], payload, at)
                == _offer(original, IDS[id_index], payload, at))
        if batch_ends:
            log += _write_batch(restored)
    log += _write_batch(restored)
    assert _verdicts(restored) == _verdicts(original)
    # And what it wrote, after what it read, restores the same again.
    assert _verdicts(_replayed(_compact(log, compaction))) == _verdicts(original)


def _compact(log: list[Record], compaction: str) -> list[Record]:
    return log if compaction == "none" else _compacted(log, compaction == "drop")
